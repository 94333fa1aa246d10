// How kernels are launched and how buffers are cut: the 2-D ranges' order and tiles, and the
// checks that stand in for Kokkos' bounds checks where a raw pointer into a buffer is made.
#include "core/gemm.hpp"
#include "core/launch.hpp"
#include "testing.hpp"

using namespace rewarm;

TEST_CASE("2-D ranges run right-major in tiles one row high and every element once", "[launch]") {
  static_assert(kRowMajorRange<Range2>);
  const Range2 r = rows_cols(5, 700);
  CHECK(r.m_tile[0] == 1);
  CHECK(r.m_tile[1] == kTileColumns);
  CHECK(rows_cols(3, 40).m_tile[1] == 40);
  View1<int> hits("hits", 5 * 700);
  for_each_element(
      "test::rows_cols", r, KOKKOS_LAMBDA(Index n, Index j) { hits(n * 700 + j) += 1; });
  for (int h : testing::to_vec(hits)) REQUIRE(h == 1);
}

TEST_CASE("a matrix cut out of a buffer must end inside it, batch and all", "[launch]") {
  View1<float> buf("buf", 100);
  CHECK(batch_matrix(buf, 10, 3, 30).data() == buf.data() + 10);             // ends at 100
  CHECK(batch_matrix(buf, 0, 2, 5, 45, 3).extent(1) == 5);                  // the third ends at 100
  CHECK_THROWS_WITH(batch_matrix(buf, 11, 3, 30), Catch::Contains("end at 101, past its 100 elements"));
  CHECK_THROWS_WITH(batch_matrix(buf, 0, 2, 5, 46, 3), Catch::Contains("3 matrices of 2 x 5"));
  CHECK_THROWS(batch_matrix(buf, -1, 1, 1));
}

// A column block of a row-major matrix: Kokkos 4 types it LayoutRight with a row stride (then
// it must be refused at run time), Kokkos 3.4 LayoutStride (then it does not compile, as the
// compile_fail tests show for LayoutLeft).
template <class V>
void column_block_is_refused(const V& a) {
  auto block = Kokkos::subview(a, Kokkos::ALL, std::make_pair(1, 3));
  if constexpr (std::is_same_v<typename decltype(block)::array_layout, Kokkos::LayoutRight>) {
    CHECK_THROWS_WITH(as_matrix(block), Catch::Contains("is strided"));
    Gemm<float> gemm;
    View2<float> b("b", 2, 2), c("c", 4, 2);
    CHECK_THROWS_WITH(gemm('N', 'N', 1.0f, block, as_matrix(b), 0.0f, as_matrix(c)),
                      Catch::Contains("strided sub-matrix (row stride 6 for 2 columns)"));
  } else {
    CHECK(std::is_same_v<typename decltype(block)::array_layout, Kokkos::LayoutStride>);
  }
}

TEST_CASE("strided views are refused where they would be read as contiguous", "[launch]") {
  View2<float> a("a", 4, 6);
  auto rows = Kokkos::subview(a, std::make_pair(1, 3), Kokkos::ALL);  // whole rows: contiguous
  CHECK(as_matrix(rows).data() == a.data() + 6);
  column_block_is_refused(a);
}
