// The small dense QR least-squares solve for one element type, LXK_ELEMENT_TYPE
// (set by CMakeLists.txt, which compiles this file once per type).
#include <algorithm>
#include <complex>
#include <cstdint>

#include "ffi_common.h"
#include "small_qr.h"

namespace lxk {

template <typename T>
void SmallQrSolveTyped(ffi::ThreadPool& pool, int m, int n, int64_t systems,
                       const T* a, int64_t na, const T* b, int64_t nb, T* x,
                       bool trans, bool conj) {
  const QrShape shape(m, n, trans, conj);
  const int64_t per_system = int64_t{m} * n + shape.rows;
  const std::ptrdiff_t a_stride = na == 1 ? 0 : int64_t{m} * n;
  const std::ptrdiff_t b_stride = nb == 1 ? 0 : shape.rows;
  const int64_t bytes = (na * m * n + nb * shape.rows) * int64_t{sizeof(T)};
  const int64_t grain = std::max<int64_t>(
      Lanes<T>::W, kParallelBytes / (per_system * int64_t{sizeof(T)}));
  DispatchSize(shape.q, [&]<int Q>() {
    if (na == 1 && systems > Lanes<T>::W) {
      QrFactored<T> factored;
      factored.template Factor<Q>(shape, a);
      RunBatch(pool, systems, bytes, grain, [&](int64_t begin, int64_t end) {
        factored.template SolveRange<Q>(b, b_stride, x, begin, end);
      });
    } else {
      RunBatch(pool, systems, bytes, grain, [&](int64_t begin, int64_t end) {
        QrSolveRange<T, Q>(shape, a, a_stride, b, b_stride, x, begin, end);
      });
    }
    return ffi::Error::Success();
  });
}

template void SmallQrSolveTyped<LXK_ELEMENT_TYPE>(ffi::ThreadPool&, int, int, int64_t,
                                                  const LXK_ELEMENT_TYPE*, int64_t,
                                                  const LXK_ELEMENT_TYPE*, int64_t,
                                                  LXK_ELEMENT_TYPE*, bool, bool);

}  // namespace lxk
