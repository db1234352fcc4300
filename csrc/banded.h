// Banded solves with partial pivoting, as LAPACK ?gbtrf/?gbtrs (pivots by
// |Re| + |Im|, the first largest on ties, row swaps within the band, `kl` extra
// superdiagonals of U for the fill-in): the native twin of the pure-JAX scans in
// src/lineax_kernels/_kernels/banded.py. Plain C++17, no XLA types.
//
// Step j of the elimination needs only a window of the matrix: the kl + 1 rows that
// may hold a nonzero in column j (in their current order), in the w = kl + ku + 1
// columns j, ..., j + kl + ku. Step j picks the pivot row of the window, swaps it to
// the front (selects, so that SIMD lanes may pivot differently), stores it as row j
// of U, eliminates column j from the other rows while shifting the window one
// column left, and loads row j + kl + 1 of the matrix as its last row. The
// right-hand side is carried along in the same pass (factorisation and forward
// substitution fused), so the matrix is read once; U and y go to a scratch buffer
// that the backward substitution reads back, writing x.
//
// Two drivers:
// - `BandedSolveRange`: a batch, W systems per tile (one per SIMD lane).
// - `BandedSolveSingle`: one system, the same code on scalars.
// For small bandwidths (KL, KU known at compile time) the window lives in
// registers; otherwise (KL = KU = -1) in a small buffer.
#ifndef LINEAX_KERNELS_BANDED_H_
#define LINEAX_KERNELS_BANDED_H_

#include <algorithm>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "simd.h"

namespace lxk {

// Where the systems are. op(A)[i, j] (i, j < n, -kl <= j - i <= ku, with kl and ku
// those of op(A)) is at bands[s * bands_stride + off + i * si + j * sj] for system
// s: for A in scipy.linalg.solve_banded's layout (bands[ku + i - j, j] = A[i, j])
// that is off = ku * n, si = n, sj = 1 - n, and for A^T (off, si, sj) =
// (kl * n, 1 - n, n) with kl and ku exchanged. A stride of 0 shares one operand
// across the batch; `conj` conjugates the matrix on the fly.
template <typename T>
struct BandBatch {
  int64_t n;
  int kl, ku;
  const T* bands;
  std::ptrdiff_t bands_stride, off, si, sj;
  const T* rhs;
  std::ptrdiff_t rhs_stride;
  bool conj;
};

// Scalar elements for the single-system path: T for real T, split complex for
// complex T (so the arithmetic of simd.h applies unchanged).
template <typename T>
struct Scalar {
  using R = T;
  using E = T;
  static LXK_INLINE E Make(T v, bool) { return v; }
  static LXK_INLINE T Get(E e) { return e; }
};

template <typename Rt>
struct Scalar<std::complex<Rt>> {
  using R = Rt;
  using E = Cplx<Rt>;
  static LXK_INLINE E Make(std::complex<Rt> v, bool conj) {
    return {v.real(), conj ? -v.imag() : v.imag()};
  }
  static LXK_INLINE std::complex<Rt> Get(E e) { return {e.re, e.im}; }
};

// One system, scalar.
template <typename T>
struct BandScalarAccess {
  using S = Scalar<T>;
  using E = typename S::E;
  using R = typename S::R;
  const BandBatch<T>* p;
  T* x;
  LXK_INLINE E Get(int64_t i, int64_t j) const {
    return S::Make(p->bands[p->off + i * p->si + j * p->sj], p->conj);
  }
  LXK_INLINE E Rhs(int64_t i) const { return S::Make(p->rhs[i], false); }
  LXK_INLINE void Put(int64_t i, E v) const { x[i] = S::Get(v); }
};

// A tile of `lanes` systems from system s0 on (N = lanes if known at compile
// time, else 0), one per lane; missing lanes of a partial tile compute on zeros
// (giving NaN there, never stored).
template <int N, typename T>
struct BandTileAccess {
  using L = Lanes<T>;
  using E = typename L::E;
  using R = typename L::R;
  const BandBatch<T>* p;
  int64_t s0;
  int lanes;
  T* x;  // (systems, n), row-major.
  LXK_INLINE E Gather(const T* base, std::ptrdiff_t stride, bool conj) const {
    const int count = N > 0 ? N : lanes;
    if constexpr (L::kComplex) {
      typename L::V re{}, im{};
      for (int s = 0; s < count; ++s) {
        re[s] = base[s * stride].real();
        im[s] = base[s * stride].imag();
      }
      return {re, conj ? -im : im};
    } else {
      (void)conj;
      typename L::V v{};
      for (int s = 0; s < count; ++s) v[s] = base[s * stride];
      return v;
    }
  }
  LXK_INLINE E Get(int64_t i, int64_t j) const {
    return Gather(p->bands + s0 * p->bands_stride + p->off + i * p->si + j * p->sj,
                  p->bands_stride, p->conj);
  }
  LXK_INLINE E Rhs(int64_t i) const {
    return Gather(p->rhs + s0 * p->rhs_stride + i, p->rhs_stride, false);
  }
  LXK_INLINE void Put(int64_t i, E v) const {
    StoreTileN<N>(&v, lanes, 1, p->n, x + s0 * p->n + i);
  }
};

// The scratch buffer of a solve: (kl + ku + 2) elements per row of the matrix, plus
// the window's buffers when KL, KU are not static.
template <typename E>
LXK_INLINE E* BandScratch(std::size_t size) {
  // Reused across calls on a thread: a fresh buffer of tens of MB would cost page
  // faults on every call.
  static thread_local std::vector<E> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

inline std::size_t BandScratchSize(int64_t n, int kl, int ku) {
  const int64_t w = kl + ku + 1;
  return static_cast<std::size_t>(n * (w + 1) + (kl + 2) * (w + 1) + 2 * w + 2);
}

// Solves one system (or one tile of systems) with the accessor `a`; `scratch` has
// BandScratchSize(n, kl, ku) elements.
template <int KL, int KU, typename Access>
LXK_INLINE void BandedSolveOne(const Access& a, int64_t n, int kl_rt, int ku_rt,
                               typename Access::E* scratch) {
  using E = typename Access::E;
  using R = typename Access::R;
  using V = decltype(Abs1(E{}));
  constexpr bool kStatic = KL >= 0;
  const int kl = kStatic ? KL : kl_rt;
  const int ku = kStatic ? KU : ku_rt;
  const int w = kl + ku + 1;
  // Row j of U and y at scratch + j * (w + 1): 1 / U[j, j], y_j, U[j, j + 1 ...].
  const int ws = w + 1;
  constexpr int kW = kStatic ? KL + KU + 1 : 1;
  constexpr int kRows = kStatic ? KL + 1 : 1;
  E local_win[kRows * kW], local_top[kW], local_piv[kW], local_c[kRows];
  E local_xs[kW];
  E* dyn = scratch + n * ws;
  E* win = kStatic ? local_win : dyn;                    // (kl + 1) x w
  E* top = kStatic ? local_top : dyn + (kl + 1) * w;     // w
  E* piv = kStatic ? local_piv : top + w;                // w
  E* cr = kStatic ? local_c : piv + w;                   // kl + 1
  E* xs = kStatic ? local_xs : cr + (kl + 1);            // w
  const E zero{};
  // Any inf/NaN in the band, summed as it is read, is added to every x: non-finite
  // input gives non-finite output (RESULTS.singular) even where elimination would
  // not carry it there.
  V guard{};
  auto read = [&](int64_t i, int64_t j) -> E {
    const E v = a.Get(i, j);
    guard += NonFinite(v);
    return v;
  };
  auto entry = [&](int64_t i, int64_t j) -> E {
    return (i < n && j >= 0 && j < n) ? read(i, j) : zero;
  };
  for (int r = 0; r <= kl; ++r) {
    for (int c = 0; c < w; ++c) win[r * w + c] = c - r <= ku ? entry(r, c) : zero;
    cr[r] = r < n ? a.Rhs(r) : zero;
  }
  auto step = [&](int64_t j, auto checked) {
    // The pivot: the first largest |Re| + |Im| in column j.
    V best = Abs1(win[0]);
    V pidx = V{};
    for (int r = 1; r <= kl; ++r) {
      const V mag = Abs1(win[r * w]);
      const auto s = mag > best;
      best = Select(s, mag, best);
      pidx = Select(s, V{} + R(r), pidx);
    }
    for (int c = 0; c < w; ++c) top[c] = piv[c] = win[c];
    E y = cr[0];
    const E ctop = cr[0];
    for (int r = 1; r <= kl; ++r) {
      const auto is = pidx == V{} + R(r);
      for (int c = 0; c < w; ++c) piv[c] = Select(is, win[r * w + c], piv[c]);
      y = Select(is, cr[r], y);
    }
    const E rp = Recip(piv[0]);
    E* u = scratch + j * ws;
    u[0] = rp;
    u[1] = y;
    for (int c = 1; c < w; ++c) u[1 + c] = piv[c];
    // Eliminate column j from the other rows (the pivot row's old place gets the
    // old first row), shifting them one column left and up one row.
    for (int r = 1; r <= kl; ++r) {
      const auto is = pidx == V{} + R(r);
      const E m = Mul(Select(is, top[0], win[r * w]), rp);
      for (int c = 1; c < w; ++c) {
        const E v = Select(is, top[c], win[r * w + c]);
        win[(r - 1) * w + c - 1] = SubMul(v, m, piv[c]);
      }
      win[(r - 1) * w + w - 1] = zero;
      cr[r - 1] = SubMul(Select(is, ctop, cr[r]), m, y);
    }
    // Row i = j + kl + 1 of the matrix, in columns j + 1, ..., j + w.
    const int64_t i = j + kl + 1;
    if constexpr (decltype(checked)::value) {
      for (int c = 0; c < w; ++c) win[kl * w + c] = entry(i, j + 1 + c);
      cr[kl] = i < n ? a.Rhs(i) : zero;
    } else {
      for (int c = 0; c < w; ++c) win[kl * w + c] = read(i, j + 1 + c);
      cr[kl] = a.Rhs(i);
    }
  };
  int64_t j = 0;
  for (; j + w < n; ++j) step(j, std::false_type{});
  for (; j < n; ++j) step(j, std::true_type{});
  // Back substitution: xs[c] = x_{j + 1 + c}.
  for (int c = 0; c < w; ++c) xs[c] = zero;
  for (int64_t jj = n - 1; jj >= 0; --jj) {
    const E* u = scratch + jj * ws;
    E acc = u[1];
    for (int c = 1; c < w; ++c) acc = SubMul(acc, u[1 + c], xs[c - 1]);
    const E xj = AddReal(Mul(acc, u[0]), guard);
    a.Put(jj, xj);
    for (int c = w - 2; c > 0; --c) xs[c] = xs[c - 1];
    xs[0] = xj;
  }
}

// Solves one system.
template <int KL, int KU, typename T>
void BandedSolveSingle(const BandBatch<T>& p, T* x) {
  using E = typename Scalar<T>::E;
  E* scratch = BandScratch<E>(BandScratchSize(p.n, p.kl, p.ku));
  BandedSolveOne<KL, KU>(BandScalarAccess<T>{&p, x}, p.n, p.kl, p.ku, scratch);
}

// Solves systems [begin, end) of a batch; x is (systems, n), row-major.
template <int KL, int KU, typename T>
void BandedSolveRange(const BandBatch<T>& p, T* x, int64_t begin, int64_t end) {
  using L = Lanes<T>;
  constexpr int W = L::W;
  using E = typename L::E;
  E* scratch = BandScratch<E>(BandScratchSize(p.n, p.kl, p.ku));
  for (int64_t s0 = begin; s0 < end; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
    if (lanes == W) {
      BandedSolveOne<KL, KU>(BandTileAccess<W, T>{&p, s0, lanes, x}, p.n, p.kl, p.ku,
                             scratch);
    } else {
      BandedSolveOne<KL, KU>(BandTileAccess<0, T>{&p, s0, lanes, x}, p.n, p.kl, p.ku,
                             scratch);
    }
  }
}

}  // namespace lxk

#endif  // LINEAX_KERNELS_BANDED_H_
