// The banded solve for one element type, LXK_ELEMENT_TYPE (set by CMakeLists.txt,
// which compiles this file once per type so that the instantiations build in
// parallel).
#include <algorithm>
#include <complex>
#include <cstdint>

#include "banded.h"
#include "ffi_common.h"

namespace lxk {

template <typename T>
void BandedSolveTyped(ffi::ThreadPool& pool, int64_t n, int kl, int ku,
                      int64_t systems, const T* bands, int64_t nbands, const T* b,
                      int64_t nb, T* x, bool trans, bool conj) {
  // op(A) is factorised as it stands (pivoting on its own columns), so that the
  // transposed solve pivots exactly as a fresh solve with A^T would. A[i, j] is
  // bands[(ku + i - j) * n + j]; A^T[i, j] = A[j, i].
  const std::ptrdiff_t off = ku * n;
  BandBatch<T> p{n,     kl, ku, bands, nbands == 1 ? 0 : (kl + ku + 1) * n,
                 off,   n,  1 - n, b,  nb == 1 ? 0 : n, conj};
  if (trans) {
    p.kl = ku;
    p.ku = kl;
    p.si = 1 - n;
    p.sj = n;
  }
  auto run = [&](auto kl_static, auto ku_static) {
    constexpr int KL = decltype(kl_static)::value;
    constexpr int KU = decltype(ku_static)::value;
    if (systems == 1) {
      BandedSolveSingle<KL, KU, T>(p, x);
      return;
    }
    const int64_t bytes = systems * n * (kl + ku + 2) * int64_t{sizeof(T)};
    auto range = [&](int64_t begin, int64_t end) {
      BandedSolveRange<KL, KU, T>(p, x, begin, end);
    };
    if (bytes < kParallelBytes) {
      range(0, systems);
    } else {
      // Chunks are whole tiles.
      const int64_t w = Lanes<T>::W;
      const int64_t tiles = (systems + w - 1) / w;
      const int64_t grain = std::max<int64_t>(
          1, kParallelBytes / (w * n * (kl + ku + 2) * int64_t{sizeof(T)}));
      ParallelFor(pool, tiles, grain, [&](int64_t t0, int64_t t1) {
        range(t0 * w, std::min(systems, t1 * w));
      });
    }
  };
  // Straight-line windows for the common bandwidths: tridiagonal, pentadiagonal,
  // heptadiagonal, and block tridiagonal with 3 x 3 and 4 x 4 blocks (2k - 1).
  using std::integral_constant;
  auto both = [&](auto k) { run(k, k); };
  if (p.kl == p.ku) {
    switch (p.kl) {
      case 1: return both(integral_constant<int, 1>{});
      case 2: return both(integral_constant<int, 2>{});
      case 3: return both(integral_constant<int, 3>{});
      case 5: return both(integral_constant<int, 5>{});
      case 7: return both(integral_constant<int, 7>{});
      default: break;
    }
  }
  run(integral_constant<int, -1>{}, integral_constant<int, -1>{});
}

template void BandedSolveTyped<LXK_ELEMENT_TYPE>(ffi::ThreadPool&, int64_t, int, int,
                                                 int64_t, const LXK_ELEMENT_TYPE*,
                                                 int64_t, const LXK_ELEMENT_TYPE*,
                                                 int64_t, LXK_ELEMENT_TYPE*, bool, bool);

}  // namespace lxk
