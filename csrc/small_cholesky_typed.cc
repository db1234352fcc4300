// The small dense Cholesky solve for one element type, LXK_ELEMENT_TYPE (set by
// CMakeLists.txt, which compiles this file once per type).
#include <algorithm>
#include <complex>
#include <cstdint>

#include "ffi_common.h"
#include "small_cholesky.h"

namespace lxk {

template <typename T>
void SmallCholeskySolveTyped(ffi::ThreadPool& pool, int d, int64_t n, const T* a,
                             int64_t na, const T* b, int64_t nb, T* x, bool conj,
                             bool negate) {
  const std::ptrdiff_t a_stride = na == 1 ? 0 : int64_t{d} * d;
  const std::ptrdiff_t b_stride = nb == 1 ? 0 : d;
  const int64_t bytes = (na * d * d + nb * d) * int64_t{sizeof(T)};
  const int64_t grain = std::max<int64_t>(
      Lanes<T>::W, kParallelBytes / (int64_t{d} * (d + 1) * int64_t{sizeof(T)}));
  DispatchSize(d, [&]<int D>() {
    if (na == 1 && n > Lanes<T>::W) {
      SharedCholesky<T> shared;
      shared.template Factor<D>(d, a, conj, negate);
      RunBatch(pool, n, bytes, grain, [&](int64_t begin, int64_t end) {
        SubstituteRange<T, D>(d, b, b_stride, x, begin, end, [&](auto* bt) {
          CholeskySubstituteTile<D>(d, shared.l.data(), shared.inv.data(), bt, negate);
        });
      });
    } else {
      RunBatch(pool, n, bytes, grain, [&](int64_t begin, int64_t end) {
        CholeskySolveRange<T, D>(d, a, a_stride, b, b_stride, x, begin, end, conj,
                                 negate);
      });
    }
    return ffi::Error::Success();
  });
}

template void SmallCholeskySolveTyped<LXK_ELEMENT_TYPE>(
    ffi::ThreadPool&, int, int64_t, const LXK_ELEMENT_TYPE*, int64_t,
    const LXK_ELEMENT_TYPE*, int64_t, LXK_ELEMENT_TYPE*, bool, bool);

}  // namespace lxk
