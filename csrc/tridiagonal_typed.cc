// The tridiagonal solve for one element type, LXK_ELEMENT_TYPE (set by
// CMakeLists.txt, which compiles this file once per type so that the four
// instantiations build in parallel).
#include <algorithm>
#include <complex>
#include <cstdint>
#include <utility>

#include "ffi_common.h"
#include "tridiagonal.h"

namespace lxk {

template <typename T>
void TridiagonalSolveTyped(ffi::ThreadPool& pool, int64_t n, int64_t systems,
                           const T* diag, int64_t nd, const T* lower, int64_t nl,
                           const T* upper, int64_t nu, const T* b, int64_t nb, T* x,
                           bool pivoting, bool trans, bool conj) {
  std::ptrdiff_t lower_stride = nl == 1 ? 0 : n - 1;
  std::ptrdiff_t upper_stride = nu == 1 ? 0 : n - 1;
  // A^T has the same diagonal and the off-diagonals exchanged; it is factorised
  // as it stands (pivoting on its own columns), so that the transposed solve
  // pivots exactly as a fresh solve with A^T would.
  if (trans) {
    std::swap(lower, upper);
    std::swap(lower_stride, upper_stride);
  }
  const TriBatch<T> p{n,     diag,  nd == 1 ? 0 : n, lower, lower_stride,
                      upper, upper_stride, b,         nb == 1 ? 0 : n, conj};
  auto dispatch = [&](auto pivot) {
    constexpr bool kPivot = decltype(pivot)::value;
    if (systems == 1) {
      TridiagonalSolveSingle<T, kPivot>(p, x);
      return;
    }
    const int64_t bytes = systems * n * 4 * int64_t{sizeof(T)};
    auto range = [&](int64_t begin, int64_t end) {
      TridiagonalSolveRange<T, kPivot>(p, x, begin, end);
    };
    if (bytes < kParallelBytes) {
      range(0, systems);
    } else {
      // Chunks are whole tiles.
      const int64_t w = Lanes<T>::W;
      const int64_t tiles = (systems + w - 1) / w;
      const int64_t grain = std::max<int64_t>(
          1, kParallelBytes / (w * n * 4 * int64_t{sizeof(T)}));
      ParallelFor(pool, tiles, grain, [&](int64_t t0, int64_t t1) {
        range(t0 * w, std::min(systems, t1 * w));
      });
    }
  };
  if (pivoting) {
    dispatch(std::true_type{});
  } else {
    dispatch(std::false_type{});
  }
}

template void TridiagonalSolveTyped<LXK_ELEMENT_TYPE>(
    ffi::ThreadPool&, int64_t, int64_t, const LXK_ELEMENT_TYPE*, int64_t,
    const LXK_ELEMENT_TYPE*, int64_t, const LXK_ELEMENT_TYPE*, int64_t,
    const LXK_ELEMENT_TYPE*, int64_t, LXK_ELEMENT_TYPE*, bool, bool, bool);

}  // namespace lxk
