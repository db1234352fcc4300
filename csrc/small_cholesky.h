// Straight-line Cholesky factorisation and solve for batches of small Hermitian
// positive definite systems, SIMD across systems (see simd.h): the native twin of
// the pure-JAX kernel in src/lineax_kernels/_solver/unrolled_small_cholesky.py.
// Plain C++17, no XLA types. The substitutions are those of small_triangular.h.
//
// Semantics, as for LAPACK's ?potrf(uplo="L") / ?potrs and the Python kernel: only
// the lower triangle of A is read (and only the real part of its diagonal). A pivot
// that is zero, negative or NaN gives an infinite or NaN reciprocal square root,
// which propagates to the solution: a matrix that is not positive definite gives a
// non-finite solution, never a finite wrong one. Nothing branches on values, and
// nothing here survives -ffast-math (which the build never uses). The factor keeps
// the reciprocals of L's diagonal, so that the solve multiplies.
#ifndef LINEAX_KERNELS_SMALL_CHOLESKY_H_
#define LINEAX_KERNELS_SMALL_CHOLESKY_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "simd.h"
#include "small_triangular.h"

namespace lxk {

// Factorises A = L L^H for one tile in place, column by column (the left-looking
// order of ?potf2 and of the Python kernel): `a`, A's lower triangle packed as in
// small_triangular.h, becomes L's, and inv[j] = 1 / L[j][j] (real). The diagonal
// of `a` is left as it was (only `inv` is read by the substitutions).
template <int D, typename E, typename V>
LXK_INLINE void CholeskyFactorTile(int d, E* a, V* inv) {
  if constexpr (D > 0) d = D;
#pragma GCC unroll 32
  for (int j = 0; j < d; ++j) {
    V pivot = Re(a[TriIndex(j, j)]);
#pragma GCC unroll 32
    for (int k = 0; k < j; ++k) pivot -= AbsSq(a[TriIndex(j, k)]);
    const V r = V{} + 1 / Sqrt(pivot);
    inv[j] = r;
#pragma GCC unroll 32
    for (int i = j + 1; i < d; ++i) {
      E acc = a[TriIndex(i, j)];
#pragma GCC unroll 32
      for (int k = 0; k < j; ++k) {
        acc = SubMul(acc, a[TriIndex(i, k)], Conj(a[TriIndex(j, k)]));
      }
      a[TriIndex(i, j)] = Scale(acc, r);
    }
  }
}

// x = L^-H L^-1 b in place in `b`, negated if `negate`.
template <int D, typename E, typename V>
LXK_INLINE void CholeskySubstituteTile(int d, const E* l, const V* inv, E* b,
                                       bool negate) {
  if constexpr (D > 0) d = D;
  ForwardTile<D, false>(d, l, inv, b);
  BackTile<D, false, true>(d, l, inv, b);
  if (negate) {
#pragma GCC unroll 32
    for (int i = 0; i < d; ++i) b[i] = Neg(b[i]);
  }
}

// op(A) x = b for systems [begin, end) of a batch, A Hermitian positive definite
// (or, with `negate`, negative definite: then -A is factorised and the solution
// negated), op(A) = A or conj(A) (= A^T). Layout of a, b, x as in
// TriangularSolveRange. Factorisation and substitution are fused per tile, so A is
// read once and nothing but x is written.
template <typename T, int D>
void CholeskySolveRange(int d, const T* a, std::ptrdiff_t a_stride, const T* b,
                        std::ptrdiff_t b_stride, T* x, int64_t begin, int64_t end,
                        bool conj, bool negate) {
  using L = Lanes<T>;
  using E = typename L::E;
  using V = typename L::V;
  constexpr int W = L::W;
  if constexpr (D > 0) d = D;
  const auto offsets = TriOffsets(d, false);
  TileBuffer<D, E> at(TriCount(d)), bt(d);
  TileBuffer<D, V> inv(d);
  for (int64_t s0 = begin; s0 < end; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
    // Missing lanes are filled with 1 (a singular matrix, but they are never
    // stored).
    LoadTile(a + s0 * a_stride, a_stride, lanes, TriCount(d), Offsets{offsets.data()},
             conj, 1, at.data());
    LoadTile(b + s0 * b_stride, b_stride, lanes, d, Identity{}, false, 0, bt.data());
    if (negate) {
#pragma GCC unroll 32
      for (int e = 0; e < TriCount(d); ++e) at.data()[e] = Neg(at.data()[e]);
    }
    CholeskyFactorTile<D>(d, at.data(), inv.data());
    CholeskySubstituteTile<D>(d, at.data(), inv.data(), bt.data(), negate);
    StoreTile(bt.data(), lanes, d, d, x + s0 * d);
  }
}

// One matrix for a whole batch of right-hand sides, factorised once: its factor
// and diagonal reciprocals, each broadcast to every lane.
template <typename T>
struct SharedCholesky {
  using E = typename Lanes<T>::E;
  using V = typename Lanes<T>::V;
  std::vector<E> l;
  std::vector<V> inv;

  template <int D>
  void Factor(int d, const T* a, bool conj, bool negate) {
    if constexpr (D > 0) d = D;
    l.resize(TriCount(d));
    inv.resize(d);
    const auto offsets = TriOffsets(d, false);
    LoadTile(a, 0, 1, TriCount(d), Offsets{offsets.data()}, conj, 1, l.data());
    if (negate) {
      for (auto& e : l) e = Neg(e);
    }
    CholeskyFactorTile<D>(d, l.data(), inv.data());
    for (auto& e : l) e = BroadcastLane0(e);
    for (auto& v : inv) v = BroadcastLane0(v);
  }
};

}  // namespace lxk

#endif  // LINEAX_KERNELS_SMALL_CHOLESKY_H_
