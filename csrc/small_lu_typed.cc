// The small dense LU solve for one element type, LXK_ELEMENT_TYPE (set by
// CMakeLists.txt, which compiles this file once per type so that the four
// instantiations build in parallel).
#include <algorithm>
#include <complex>
#include <cstdint>

#include "ffi_common.h"
#include "small_lu.h"

namespace lxk {

template <typename T>
void SmallLuSolveTyped(ffi::ThreadPool& pool, int d, int64_t n, const T* a,
                       int64_t na, const T* b, int64_t nb, T* x, bool trans,
                       bool conj) {
  const std::ptrdiff_t a_stride = na == 1 ? 0 : int64_t{d} * d;
  const std::ptrdiff_t b_stride = nb == 1 ? 0 : d;
  const int64_t bytes = (na * d * d + nb * d) * int64_t{sizeof(T)};
  const int64_t grain = std::max<int64_t>(
      Lanes<T>::W, kParallelBytes / (int64_t{d} * (d + 1) * int64_t{sizeof(T)}));
  auto run = [&](auto&& range) {
    if (bytes < kParallelBytes) {
      range(int64_t{0}, n);
    } else {
      ParallelFor(pool, n, grain, range);
    }
  };
  DispatchSize(d, [&]<int D>() {
    if (na == 1 && n > Lanes<T>::W) {
      LuFactored<T> factored;
      factored.template Factor<D>(d, a, trans, conj);
      run([&](int64_t begin, int64_t end) {
        factored.template SolveRange<D>(b, b_stride, x, begin, end);
      });
    } else {
      run([&](int64_t begin, int64_t end) {
        LuSolveRange<T, D>(d, a, a_stride, b, b_stride, x, begin, end, trans, conj);
      });
    }
    return ffi::Error::Success();
  });
}

template void SmallLuSolveTyped<LXK_ELEMENT_TYPE>(ffi::ThreadPool&, int, int64_t,
                                                  const LXK_ELEMENT_TYPE*, int64_t,
                                                  const LXK_ELEMENT_TYPE*, int64_t,
                                                  LXK_ELEMENT_TYPE*, bool, bool);

}  // namespace lxk
