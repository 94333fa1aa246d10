#include "parallel/runtime.hpp"

#include <cstdio>
#include <cstdlib>

#include "core/device.hpp"
#include "core/launch.hpp"
#include "core/error.hpp"

namespace rewarm {
namespace {

const char* env(const char* name) { return std::getenv(name); }

// Tasks the launcher says it started, or 0 if it says nothing.
long launched_tasks() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS"})
    if (const char* s = env(v)) return std::strtol(s, nullptr, 10);
  return 0;
}

// MPI_Init and MPI_Finalize, when launched by mpirun/srun.
class MpiSession {
 public:
  MpiSession() {
    if (!launched_by_mpi()) return;
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw Error("MPI_Init_thread failed");
    active_ = true;
  }
  ~MpiSession() {
    if (active_) MPI_Finalize();
  }
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

bool device_chosen_by_user(const std::vector<std::string>& args) {
  for (const auto& a : args)
    for (const char* opt : {"--kokkos-device-id", "--kokkos-map-device-id-by", "--kokkos-num-devices"})
      if (a.rfind(opt, 0) == 0) return true;
  return env("KOKKOS_DEVICE_ID") || env("KOKKOS_MAP_DEVICE_ID_BY") || env("KOKKOS_NUM_DEVICES");
}

// The device id the user gave Kokkos, or -1.
int requested_device(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a.rfind("--kokkos-device-id=", 0) == 0) return std::atoi(a.c_str() + 19);
  const char* e = env("KOKKOS_DEVICE_ID");
  return e ? std::atoi(e) : -1;
}

// Kokkos on this rank's device: GPU local_rank mod the GPUs it sees, unless told otherwise.
class KokkosSession {
 public:
  KokkosSession(const std::vector<std::string>& kokkos_args, const Comm& comm) {
    const DeviceProbe probe = probe_devices();
    comm.agree([&] {
      if (!probe.error.empty())
        throw Error("this rewarm build computes on " + probe.backend + " and found no usable GPU (" + probe.error +
                    "); info, convert, tokenize and synth need none");
      const auto wrong = probe.gpu ? device_id_problem(requested_device(kokkos_args), probe.count) : "";
      if (!wrong.empty()) throw Error(wrong);
    });
    std::vector<std::string> args{"rewarm"};
    args.insert(args.end(), kokkos_args.begin(), kokkos_args.end());
    if (probe.gpu && !device_chosen_by_user(kokkos_args))
      args.push_back("--kokkos-device-id=" + std::to_string(comm.local_rank() % probe.count));
    // Kokkos' start-up warnings (say, cores oversubscribed) from rank 0 alone: the other ranks'
    // copies, written at the same moment to the job's stderr, would cut into rank 0's lines.
    // (Not where the variable says otherwise: Kokkos 3.4 refuses the two disagreeing.)
    if (!comm.root() && !std::getenv("KOKKOS_DISABLE_WARNINGS")) args.push_back("--kokkos-disable-warnings");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    int argc = int(argv.size());
    argv.push_back(nullptr);  // argv[argc], as main's: Kokkos moves what follows an argument it takes, this too
    kx::no_tool_fences();
    Kokkos::initialize(argc, argv.data());
  }
  ~KokkosSession() { Kokkos::finalize(); }
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "PALS_RANKID"})
    if (env(v)) return true;
  return launched_tasks() > 1;  // srun of several tasks
}

void run_on_device(const std::vector<std::string>& kokkos_args, const std::function<void(Comm&)>& body) {
  int status = 0;
  {
    MpiSession mpi;
    std::unique_ptr<Comm> comm = mpi.active() ? std::make_unique<Comm>(MPI_COMM_WORLD, false) : std::make_unique<Comm>();
    auto report = [&](const std::exception& e, bool everyone_agrees) {
      if (everyone_agrees) {
        if (comm->root()) std::fprintf(stderr, "rewarm: error: %s\n", e.what());
      } else {  // this rank alone: name it, and end the job so that no other rank waits for it
        std::fprintf(stderr, "rewarm: error: rank %d: %s (ending the job)\n", comm->rank(), e.what());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      status = 1;
    };
    try {
      comm->agree([&] {  // srun without a PMI that MPI understands starts N one-rank jobs
        const long tasks = launched_tasks();
        if (tasks > 1 && comm->size() != tasks)
          throw Error("the launcher started " + std::to_string(tasks) + " tasks but MPI sees " +
                      std::to_string(comm->size()) + " (srun: pass --mpi=pmix or your site's PMI)");
      });
      KokkosSession kokkos(kokkos_args, *comm);
      comm->agree([] { check_team_size(); });
      try {
        body(*comm);
      } catch (const CollectiveError& e) {
        report(e, true);
      } catch (const std::exception& e) {
        report(e, comm->size() == 1);
      }
    } catch (const CollectiveError& e) {
      report(e, true);
    }
  }
  if (status != 0) throw ExitStatus{status};
}

}  // namespace rewarm
