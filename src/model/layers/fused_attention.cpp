#include "model/layers/fused_attention.hpp"

#include <cstdio>

#include "core/error.hpp"

#if defined(REWARM_CUDNN)
// cudnn-frontend calls cuDNN through symbols it looks up in the library loaded here (no link
// dependency: a build without cuDNN on the library path runs the GEMM attention).
#define NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING 1
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cudnn_frontend.h>
#include <unordered_map>

namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;  // the frontend's one handle of the loaded library (it declares it)
}
#endif

namespace rewarm::layers {

namespace {
// x (N × c floats) as a Matrix; the emulation's bf16 storage is float.
template <class P>
Matrix<float> rows(P* x, Index n, Index c) {
  return as_matrix(const_cast<float*>(reinterpret_cast<const float*>(x)), n, c);
}
View1<Bf16Storage> storage(Bf16Storage* x, Index n) { return View1<Bf16Storage>(x, n); }
}  // namespace

struct FusedAttention::Impl {
  AttentionShape shape;
  std::size_t workspace = 0;
  // The host emulation: the GEMM attention in bf16. Its workspace holds the fp32 O [N, d] and
  // dqkv [N, 3d] that the GEMM attention writes before they are stored in bf16.
  std::unique_ptr<Gemm<float>> gemm;
  AttentionWorkspace<float> heads;
  void emulate_forward(const Bf16Storage* qkv, Bf16Storage* out, float* lse, void* workspace) const {
    const auto& s = shape;
    const Index N = s.batch * s.seq, d = s.heads * s.hd;
    auto* o = static_cast<float*>(workspace);
    attention_forward(*gemm, rows(o, N, d), as_vector(lse, s.batch * s.heads * s.seq), rows(qkv, N, 3 * d), s, heads);
    store_bf16(storage(out, N * d), o);
  }
  void emulate_backward(const Bf16Storage* qkv, const Bf16Storage* out, const Bf16Storage* dout, const float* lse,
                        Bf16Storage* dqkv, void* workspace) const {
    const auto& s = shape;
    const Index N = s.batch * s.seq, d = s.heads * s.hd;
    auto* dq = static_cast<float*>(workspace) + N * d;
    attention_backward(*gemm, rows(dq, N, 3 * d), rows(dout, N, d), rows(out, N, d),
                       as_vector(const_cast<float*>(lse), s.batch * s.heads * s.seq), rows(qkv, N, 3 * d), s, heads);
    store_bf16(storage(dqkv, N * 3 * d), dq);
  }
#if defined(REWARM_CUDNN)
  cudnnHandle_t handle = nullptr;
  std::shared_ptr<cudnn_frontend::graph::Graph> fwd, bwd;
  ~Impl() {
    if (handle) cudnn_frontend::detail::destroy_handle(handle);
  }
#endif
};

FusedAttention::FusedAttention(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FusedAttention::~FusedAttention() = default;
const AttentionShape& FusedAttention::shape() const { return impl_->shape; }
std::size_t FusedAttention::workspace_bytes() const { return impl_->workspace; }

// ---- the host emulation --------------------------------------------------------------------
std::shared_ptr<FusedAttention> FusedAttention::host_emulation(AttentionShape s) {
  if constexpr (!std::is_same_v<Bf16Storage, float>) {
    throw Error("the fused attention's host emulation runs only in host builds");
  } else {
    auto impl = std::make_unique<Impl>();
    impl->shape = s;
    const std::size_t N = std::size_t(s.batch * s.seq), d = std::size_t(s.heads * s.hd);
    impl->workspace = 4 * N * d * sizeof(float);
    impl->gemm = std::make_unique<Gemm<float>>(GemmPrecision::bf16);
    impl->gemm->reserve(Index(N * d), Index(N * d));  // q, k, v, dO as GEMM inputs: no allocation in a step
    impl->heads = AttentionWorkspace<float>(s, std::size_t(32) << 20, 0, true);
    return std::shared_ptr<FusedAttention>(new FusedAttention(std::move(impl)));
  }
}

#if defined(REWARM_CUDNN)
// ---- cuDNN ----------------------------------------------------------------------------------
namespace fe = cudnn_frontend;
namespace {
struct CudnnLibrary {
  std::string error, path;
  std::size_t version = 0;
};
// Loaded once per process (a library cannot be loaded twice); what was found or why not.
const CudnnLibrary& cudnn_library() {
  static const CudnnLibrary lib = [] {
    CudnnLibrary l;
    const char* name = "libcudnn_graph.so.9";
    void* h = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
      l.error = std::string("cuDNN 9 (") + name + ") is not on the library path: " + dlerror() +
                " (load a cuDNN module, or add the lib/ of PyTorch's nvidia-cudnn-cu13 package to LD_LIBRARY_PATH)";
      return l;
    }
    auto get_version = reinterpret_cast<std::size_t (*)()>(dlsym(h, "cudnnGetVersion"));
    if (!get_version) {
      l.error = std::string(name) + " has no cudnnGetVersion";
      return l;
    }
    Dl_info info{};
    l.path = dladdr(reinterpret_cast<void*>(get_version), &info) && info.dli_fname ? info.dli_fname : name;
    l.version = get_version();
    fe::cudnn_dlhandle = h;
    return l;
  }();
  return lib;
}
std::string version_string(std::size_t v) {
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}
void check(fe::error_t e, const char* what) {
  if (e.is_bad()) throw Error(std::string("cuDNN fused attention: ") + what + ": " + e.get_message());
}
void check(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw Error(std::string("cuDNN fused attention: ") + what + " failed (status " + std::to_string(int(status)) + ")");
}
enum Uid : std::int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV };
// The logical [B, H, T, hd] tensors over rows of `row` elements (3d for qkv, d for O): batch
// stride T·row, head stride hd (times 3 within qkv rows), token stride row.
struct Layout {
  std::int64_t B, H, T, hd;
  std::vector<std::int64_t> dims() const { return {B, H, T, hd}; }
  std::vector<std::int64_t> qkv() const { return {T * 3 * H * hd, 3 * hd, 3 * H * hd, 1}; }
  std::vector<std::int64_t> rows() const { return {T * H * hd, hd, H * hd, 1}; }
  std::vector<std::int64_t> stats_dims() const { return {B, H, T, 1}; }
  std::vector<std::int64_t> stats() const { return {H * T, T, 1, 1}; }
};
std::shared_ptr<fe::graph::Graph> new_graph() {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  return g;
}
std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& g, const char* name, Uid uid,
                                                    std::vector<std::int64_t> dims,
                                                    std::vector<std::int64_t> strides) {
  return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dims).set_stride(strides));
}
void build(fe::graph::Graph& g, cudnnHandle_t h) {
  check(g.validate(), "graph");
  check(g.build_operation_graph(h), "operation graph");
  check(g.create_execution_plans({fe::HeurMode_t::A}), "execution plans");
  check(g.check_support(h), "support for this shape");
  check(g.build_plans(h), "plans");
}
}  // namespace

FusedAttentionSupport fused_attention_support() {
  const auto& lib = cudnn_library();
  if (!lib.error.empty()) return {lib.error, ""};
  FusedAttentionSupport s{"", "cuDNN " + version_string(lib.version) + " (" + lib.path + ")"};
  if (lib.version < kMinCudnnVersion || lib.version / 10000 != CUDNN_MAJOR) {
    s.why_not = s.library + " is too old: rewarm needs cuDNN " + version_string(kMinCudnnVersion) + " or a newer 9.x" +
                " (earlier releases compute the bf16 backward wrongly)";
    return s;
  }
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, ExecSpace().cuda_device()) != cudaSuccess) {
    s.why_not = "cannot query the CUDA device";
  } else if (p.major < 8) {
    s.why_not = std::string("device ") + p.name + " (sm_" + std::to_string(p.major * 10 + p.minor) +
                ") has no bf16 fused attention in cuDNN (needs sm_80 or newer)";
  }
  return s;
}

// cudnn-frontend also throws std::runtime_error (a libcudart it cannot load, no implementation for
// the attributes): as an Error, so that "auto" takes the GEMM attention and says why.
FusedAttention::FusedAttention(AttentionShape s) try : impl_(std::make_unique<Impl>()) {
  const auto support = fused_attention_support();
  if (!support.why_not.empty()) throw Error(support.why_not);
  impl_->shape = s;
  check(fe::detail::create_handle(&impl_->handle), "cudnnCreate");
  check(fe::detail::set_stream(impl_->handle, ExecSpace().cuda_stream()), "cudnnSetStream");
  const Layout x{s.batch, s.heads, s.seq, s.hd};
  const float scale = float(1.0 / std::sqrt(double(s.hd)));

  auto& f = impl_->fwd = new_graph();
  auto [O, stats] = f->sdpa(input(*f, "Q", kQ, x.dims(), x.qkv()), input(*f, "K", kK, x.dims(), x.qkv()),
                            input(*f, "V", kV, x.dims(), x.qkv()),
                            fe::graph::SDPA_attributes()
                                .set_name("rewarm_attention")
                                .set_generate_stats(true)
                                .set_causal_mask(true)
                                .set_attn_scale(scale));
  O->set_output(true).set_uid(kO).set_dim(x.dims()).set_stride(x.rows());
  stats->set_output(true).set_uid(kStats).set_data_type(fe::DataType_t::FLOAT).set_dim(x.stats_dims()).set_stride(
      x.stats());
  build(*f, impl_->handle);

  // Deterministic: dQ summed over key blocks in a fixed order, no atomics (docs/numerics.md: no
  // floating-point atomics), so a run repeats bit for bit.
  auto& b = impl_->bwd = new_graph();
  auto [dQ, dK, dV] = b->sdpa_backward(
      input(*b, "Q", kQ, x.dims(), x.qkv()), input(*b, "K", kK, x.dims(), x.qkv()),
      input(*b, "V", kV, x.dims(), x.qkv()), input(*b, "O", kO, x.dims(), x.rows()),
      input(*b, "dO", kDO, x.dims(), x.rows()),
      b->tensor(fe::graph::Tensor_attributes()
                    .set_name("stats")
                    .set_uid(kStats)
                    .set_dim(x.stats_dims())
                    .set_stride(x.stats())
                    .set_data_type(fe::DataType_t::FLOAT)),
      fe::graph::SDPA_backward_attributes()
          .set_name("rewarm_attention_backward")
          .set_causal_mask(true)
          .set_attn_scale(scale)
          .set_deterministic_algorithm(true));
  dQ->set_output(true).set_uid(kDQ).set_dim(x.dims()).set_stride(x.qkv());
  dK->set_output(true).set_uid(kDK).set_dim(x.dims()).set_stride(x.qkv());
  dV->set_output(true).set_uid(kDV).set_dim(x.dims()).set_stride(x.qkv());
  build(*b, impl_->handle);

  std::int64_t wf = 0, wb = 0;
  check(f->get_workspace_size(wf), "forward workspace");
  check(b->get_workspace_size(wb), "backward workspace");
  impl_->workspace = std::size_t(std::max(wf, wb));
} catch (const Error&) {
  throw;
} catch (const std::exception& e) {
  throw Error(std::string("cuDNN fused attention: ") + e.what());
}

void FusedAttention::forward(const Bf16Storage* qkv, Bf16Storage* out, float* lse, void* workspace) const {
  if (impl_->gemm) return impl_->emulate_forward(qkv, out, lse, workspace);
  const Index hd = impl_->shape.hd;
  auto* q = const_cast<Bf16Storage*>(qkv);
  std::unordered_map<std::int64_t, void*> pack{{kQ, q}, {kK, q + hd}, {kV, q + 2 * hd}, {kO, out}, {kStats, lse}};
  check(impl_->fwd->execute(impl_->handle, pack, workspace), "forward");
}

void FusedAttention::backward(const Bf16Storage* qkv, const Bf16Storage* out, const Bf16Storage* dout,
                              const float* lse, Bf16Storage* dqkv, void* workspace) const {
  if (impl_->gemm) return impl_->emulate_backward(qkv, out, dout, lse, dqkv, workspace);
  const Index hd = impl_->shape.hd;
  auto* q = const_cast<Bf16Storage*>(qkv);
  std::unordered_map<std::int64_t, void*> pack{{kQ, q},
                                               {kK, q + hd},
                                               {kV, q + 2 * hd},
                                               {kO, const_cast<Bf16Storage*>(out)},
                                               {kDO, const_cast<Bf16Storage*>(dout)},
                                               {kStats, const_cast<float*>(lse)},
                                               {kDQ, dqkv},
                                               {kDK, dqkv + hd},
                                               {kDV, dqkv + 2 * hd}};
  check(impl_->bwd->execute(impl_->handle, pack, workspace), "backward");
}

#else
// ---- builds without cuDNN --------------------------------------------------------------------
FusedAttentionSupport fused_attention_support() {
#if defined(KOKKOS_ENABLE_CUDA)
  return {"this CUDA build has no cuDNN fused attention (configured without cudnn-frontend: README, "
          "\"Building on a cluster\")",
          ""};
#else
  return {std::string("this build runs on ") + ExecSpace::name() +
              ", not an NVIDIA GPU (cuDNN's fused attention needs a CUDA build with cudnn-frontend)",
          ""};
#endif
}

FusedAttention::FusedAttention(AttentionShape) { throw Error(fused_attention_support().why_not); }

void FusedAttention::forward(const Bf16Storage* qkv, Bf16Storage* out, float* lse, void* workspace) const {
  impl_->emulate_forward(qkv, out, lse, workspace);
}

void FusedAttention::backward(const Bf16Storage* qkv, const Bf16Storage* out, const Bf16Storage* dout,
                              const float* lse, Bf16Storage* dqkv, void* workspace) const {
  impl_->emulate_backward(qkv, out, dout, lse, dqkv, workspace);
}
#endif

}  // namespace rewarm::layers
