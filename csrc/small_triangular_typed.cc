// The small triangular solve for one element type, LXK_ELEMENT_TYPE (set by
// CMakeLists.txt, which compiles this file once per type).
#include <algorithm>
#include <complex>
#include <cstdint>

#include "ffi_common.h"
#include "small_triangular.h"

namespace lxk {

template <typename T>
void SmallTriangularSolveTyped(ffi::ThreadPool& pool, int d, int64_t n, const T* a,
                               int64_t na, const T* b, int64_t nb, T* x, bool upper,
                               bool unit, bool trans, bool conj) {
  const std::ptrdiff_t a_stride = na == 1 ? 0 : int64_t{d} * d;
  const std::ptrdiff_t b_stride = nb == 1 ? 0 : d;
  const int64_t bytes = (na * d * d + nb * d) * int64_t{sizeof(T)};
  const int64_t grain = std::max<int64_t>(
      Lanes<T>::W, kParallelBytes / (int64_t{d} * (d + 1) * int64_t{sizeof(T)}));
  const bool back = upper != trans;  // op(A) is upper triangular
  auto solve = [&]<int D, bool Unit>() {
    if (na == 1 && n > Lanes<T>::W) {
      SharedTriangle<T> shared(d, a, upper, conj);
      RunBatch(pool, n, bytes, grain, [&](int64_t begin, int64_t end) {
        SubstituteRange<T, D>(d, b, b_stride, x, begin, end, [&](auto* bt) {
          if (back) {
            BackTile<D, Unit, false>(d, shared.l.data(), shared.inv.data(), bt);
          } else {
            ForwardTile<D, Unit>(d, shared.l.data(), shared.inv.data(), bt);
          }
        });
      });
    } else {
      RunBatch(pool, n, bytes, grain, [&](int64_t begin, int64_t end) {
        TriangularSolveRange<T, D, Unit>(d, a, a_stride, b, b_stride, x, begin, end,
                                         upper, trans, conj);
      });
    }
    return ffi::Error::Success();
  };
  DispatchSize(d, [&]<int D>() {
    return unit ? solve.template operator()<D, true>()
                : solve.template operator()<D, false>();
  });
}

template void SmallTriangularSolveTyped<LXK_ELEMENT_TYPE>(
    ffi::ThreadPool&, int, int64_t, const LXK_ELEMENT_TYPE*, int64_t,
    const LXK_ELEMENT_TYPE*, int64_t, LXK_ELEMENT_TYPE*, bool, bool, bool, bool);

}  // namespace lxk
