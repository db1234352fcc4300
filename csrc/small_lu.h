// Straight-line LU with partial pivoting for batches of small dense systems, SIMD
// across systems (see simd.h): the native twin of the pure-JAX kernel in
// src/lineax_kernels/_solver/unrolled_small_lu.py. Plain C++17, no XLA types.
//
// With the size D a template argument every loop below has constant bounds; GCC
// unrolls them into straight-line code per size, as the Python kernel is generated
// per size. D = 0 means a size known only at run time (larger systems), the same
// code with ordinary loops.
#ifndef LINEAX_KERNELS_SMALL_LU_H_
#define LINEAX_KERNELS_SMALL_LU_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "simd.h"

namespace lxk {

// Pivot search of step k over rows k..d-1 of column k, as LAPACK's i?amax: the
// largest |Re| + |Im|, the first one on ties. Returns the chosen row (a lane vector
// of row numbers) and swaps it with row k in the columns `from..d-1` of `a` (and
// in `b`, `perm` where given). NaN never wins a comparison, and a NaN entry
// poisons its row anyway, so non-finite input stays non-finite.
template <typename E, typename V>
LXK_INLINE void PivotAndSwap(int d, int k, int from, E* a, E* b, V* perm) {
  V best = Abs1(a[k * d + k]);
  V which = Splat<V>(k);
#pragma GCC unroll 32
  for (int r = k + 1; r < d; ++r) {
    V mag = Abs1(a[r * d + k]);
    auto better = mag > best;
    best = better ? mag : best;
    which = better ? Splat<V>(r) : which;
  }
#pragma GCC unroll 32
  for (int r = k + 1; r < d; ++r) {
    auto is_r = which == Splat<V>(r);
#pragma GCC unroll 32
    for (int j = from; j < d; ++j) {
      E t = a[k * d + j];
      a[k * d + j] = Select(is_r, a[r * d + j], t);
      a[r * d + j] = Select(is_r, t, a[r * d + j]);
    }
    if (b != nullptr) {
      E t = b[k];
      b[k] = Select(is_r, b[r], t);
      b[r] = Select(is_r, t, b[r]);
    }
    if (perm != nullptr) {
      V t = perm[k];
      perm[k] = is_r ? perm[r] : t;
      perm[r] = is_r ? t : perm[r];
    }
  }
}

// Solves A x = b for one tile in place: `a` (d*d entries, row-major) is destroyed,
// `b` (d entries) becomes x. Factorisation and substitution are fused, so A is
// read once and nothing but x is written. A zero pivot gives inf/NaN in x; so does
// any inf/NaN in A or b (`guard`), which lineax reports as RESULTS.singular.
//
// Multipliers use the reciprocal of the pivot (as LAPACK's ?getf2 does for pivots
// above the underflow threshold); a pivot below the smallest normal number is
// therefore treated as zero.
template <int D, typename E>
LXK_INLINE void LuSolveTile(int d, E* a, E* b, E* inv_diag) {
  if constexpr (D > 0) d = D;
  auto guard = NonFiniteSum(d * d, a) + NonFiniteSum(d, b);
#pragma GCC unroll 32
  for (int k = 0; k < d; ++k) {
    PivotAndSwap(d, k, k, a, b, static_cast<decltype(guard)*>(nullptr));
    E inv = Recip(a[k * d + k]);
    inv_diag[k] = inv;
#pragma GCC unroll 32
    for (int r = k + 1; r < d; ++r) {
      E l = Mul(a[r * d + k], inv);
#pragma GCC unroll 32
      for (int j = k + 1; j < d; ++j) a[r * d + j] = SubMul(a[r * d + j], l, a[k * d + j]);
      b[r] = SubMul(b[r], l, b[k]);
    }
  }
#pragma GCC unroll 32
  for (int i = d - 1; i >= 0; --i) {
    E acc = b[i];
#pragma GCC unroll 32
    for (int j = i + 1; j < d; ++j) acc = SubMul(acc, a[i * d + j], b[j]);
    b[i] = AddReal(Mul(acc, inv_diag[i]), guard);
  }
}

// Factorises P A = L U for one tile in place: `a` becomes L (unit, below the
// diagonal) and U (on and above it), `perm[i]` the row of A that row i of P A came
// from (as a lane vector of row numbers). Non-finite input poisons every entry.
template <int D, typename E, typename V>
LXK_INLINE void LuFactorTile(int d, E* a, V* perm) {
  if constexpr (D > 0) d = D;
  V guard = NonFiniteSum(d * d, a);
#pragma GCC unroll 32
  for (int i = 0; i < d; ++i) perm[i] = Splat<V>(i);
#pragma GCC unroll 32
  for (int k = 0; k < d; ++k) {
    PivotAndSwap(d, k, 0, a, static_cast<E*>(nullptr), perm);
    E inv = Recip(a[k * d + k]);
#pragma GCC unroll 32
    for (int r = k + 1; r < d; ++r) {
      E l = Mul(a[r * d + k], inv);
      a[r * d + k] = l;
#pragma GCC unroll 32
      for (int j = k + 1; j < d; ++j) a[r * d + j] = SubMul(a[r * d + j], l, a[k * d + j]);
    }
  }
#pragma GCC unroll 32
  for (int e = 0; e < d * d; ++e) a[e] = AddReal(a[e], guard);
}

// Row-major index of entry e of A (or of A^T when `trans`).
struct MatrixIndex {
  int d;
  bool trans;
  LXK_INLINE std::ptrdiff_t operator()(int e) const {
    return trans ? (e % d) * d + e / d : e;
  }
};

// x = op(A)^{-1} b for systems [begin, end) of a batch, op(A) = A, A^T, conj(A) or
// A^H. A system's matrix is at a + s * a_stride (a_stride = 0: one matrix for the
// whole batch), its right-hand side at b + s * b_stride, its solution at x + s * d.
template <typename T, int D>
void LuSolveRange(int d, const T* a, std::ptrdiff_t a_stride, const T* b,
                  std::ptrdiff_t b_stride, T* x, int64_t begin, int64_t end,
                  bool trans, bool conj) {
  using L = Lanes<T>;
  using E = typename L::E;
  constexpr int W = L::W;
  if constexpr (D > 0) d = D;
  constexpr int kA = D > 0 ? D * D : 1, kB = D > 0 ? D : 1;
  E a_fixed[kA], b_fixed[kB], inv_fixed[kB];
  std::vector<E> a_dyn, b_dyn, inv_dyn;
  E *at = a_fixed, *bt = b_fixed, *inv = inv_fixed;
  if constexpr (D == 0) {
    a_dyn.resize(d * d), b_dyn.resize(d), inv_dyn.resize(d);
    at = a_dyn.data(), bt = b_dyn.data(), inv = inv_dyn.data();
  }
  const MatrixIndex index{d, trans};
  for (int64_t s0 = begin; s0 < end; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
    LoadTile(a + s0 * a_stride, a_stride, lanes, d * d, index, conj, 0, at);
    LoadTile(b + s0 * b_stride, b_stride, lanes, d, Identity{}, false, 0, bt);
    LuSolveTile<D>(d, at, bt, inv);
    StoreTile(bt, lanes, d, d, x + s0 * d);
  }
}

// One matrix, many right-hand sides: factorise op(A) once, then substitute for
// systems [begin, end) of b, a tile of right-hand sides at a time, with the
// factors broadcast to every lane.
template <typename T>
class LuFactored {
 public:
  using L = Lanes<T>;
  using E = typename L::E;

  template <int D>
  void Factor(int d, const T* a, bool trans, bool conj) {
    if constexpr (D > 0) d = D;
    d_ = d;
    std::vector<E> tile(d * d);
    std::vector<typename L::V> perm(d);
    LoadTile(a, 0, 1, d * d, MatrixIndex{d, trans}, conj, 0, tile.data());
    LuFactorTile<D>(d, tile.data(), perm.data());
    lu_.resize(d * d);
    perm_.resize(d);
    T lu_scalar[1];
    for (int e = 0; e < d * d; ++e) {
      StoreTile(&tile[e], 1, 1, 1, lu_scalar);
      lu_[e] = SplatElem(lu_scalar[0]);
    }
    inv_diag_.resize(d);
    for (int i = 0; i < d; ++i) {
      inv_diag_[i] = Recip(lu_[i * d + i]);
      perm_[i] = static_cast<int>(perm[i][0]);
    }
  }

  template <int D>
  void SolveRange(const T* b, std::ptrdiff_t b_stride, T* x, int64_t begin,
                  int64_t end) const {
    constexpr int W = L::W;
    const int d = D > 0 ? D : d_;
    constexpr int kB = D > 0 ? D : 1;
    E b_fixed[kB];
    std::vector<E> b_dyn;
    E* bt = b_fixed;
    if constexpr (D == 0) {
      b_dyn.resize(d);
      bt = b_dyn.data();
    }
    const int* perm = perm_.data();
    const E* lu = lu_.data();
    auto permuted = [perm](int e) -> std::ptrdiff_t { return perm[e]; };
    for (int64_t s0 = begin; s0 < end; s0 += W) {
      const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
      LoadTile(b + s0 * b_stride, b_stride, lanes, d, permuted, false, 0, bt);
#pragma GCC unroll 32
      for (int i = 1; i < d; ++i) {
#pragma GCC unroll 32
        for (int j = 0; j < i; ++j) bt[i] = SubMul(bt[i], lu[i * d + j], bt[j]);
      }
#pragma GCC unroll 32
      for (int i = d - 1; i >= 0; --i) {
#pragma GCC unroll 32
        for (int j = i + 1; j < d; ++j) bt[i] = SubMul(bt[i], lu[i * d + j], bt[j]);
        bt[i] = Mul(bt[i], inv_diag_[i]);
      }
      StoreTile(bt, lanes, d, d, x + s0 * d);
    }
  }

 private:
  int d_ = 0;
  std::vector<E> lu_, inv_diag_;
  std::vector<int> perm_;
};

}  // namespace lxk

#endif  // LINEAX_KERNELS_SMALL_LU_H_
