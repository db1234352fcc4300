// Straight-line forward and back substitution for batches of small triangular
// systems, SIMD across systems (see simd.h): the native twin of the pure-JAX kernel
// in src/lineax_kernels/_solver/unrolled_small_triangular.py, and the substitution
// half of the Cholesky solve (small_cholesky.h). Plain C++17, no XLA types.
//
// A triangle is kept as a lower triangular L, packed row by row: entry (i, j),
// j <= i, at index TriIndex(i, j) = i * (i + 1) / 2 + j, one tile element (W
// systems) per entry. An upper triangular matrix is loaded as its transpose. With
// the size D a template argument every loop has constant bounds, and GCC unrolls
// them into straight-line code; D = 0 is the same code with loops, for sizes known
// only at run time.
#ifndef LINEAX_KERNELS_SMALL_TRIANGULAR_H_
#define LINEAX_KERNELS_SMALL_TRIANGULAR_H_

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "simd.h"

namespace lxk {

LXK_INLINE constexpr int TriIndex(int i, int j) { return i * (i + 1) / 2 + j; }
LXK_INLINE constexpr int TriCount(int d) { return d * (d + 1) / 2; }

// Where entry e of the packed lower triangle lives in a row-major d x d matrix:
// entry (i, j) of the matrix itself (`transposed` false), or entry (j, i) (an upper
// triangular matrix, loaded as its transpose).
inline std::vector<std::ptrdiff_t> TriOffsets(int d, bool transposed) {
  std::vector<std::ptrdiff_t> offsets(TriCount(d));
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j <= i; ++j) {
      offsets[TriIndex(i, j)] = transposed ? j * d + i : i * d + j;
    }
  }
  return offsets;
}

// acc * inv, for a reciprocal diagonal that is complex (a triangular matrix) or
// real (a Cholesky factor).
template <typename E, typename Inv>
LXK_INLINE E MulInv(E acc, Inv inv) {
  if constexpr (std::is_same_v<E, Inv>) {
    return Mul(acc, inv);
  } else {
    return Scale(acc, inv);
  }
}

// Solves L x = b in place in `b` (forward substitution). `inv` holds the
// reciprocals of L's diagonal, or is ignored if `Unit`.
template <int D, bool Unit, typename E, typename Inv>
LXK_INLINE void ForwardTile(int d, const E* l, const Inv* inv, E* b) {
  if constexpr (D > 0) d = D;
#pragma GCC unroll 32
  for (int i = 0; i < d; ++i) {
    E acc = b[i];
#pragma GCC unroll 32
    for (int j = 0; j < i; ++j) acc = SubMul(acc, l[TriIndex(i, j)], b[j]);
    if constexpr (Unit) {
      b[i] = acc;
    } else {
      b[i] = MulInv(acc, inv[i]);
    }
  }
}

// Solves L^T x = b (or L^H x = b if `ConjL`) in place in `b` (back substitution).
// The diagonal reciprocals are used as given (real for a Cholesky factor).
template <int D, bool Unit, bool ConjL, typename E, typename Inv>
LXK_INLINE void BackTile(int d, const E* l, const Inv* inv, E* b) {
  if constexpr (D > 0) d = D;
#pragma GCC unroll 32
  for (int i = d - 1; i >= 0; --i) {
    E acc = b[i];
#pragma GCC unroll 32
    for (int j = i + 1; j < d; ++j) {
      E entry = l[TriIndex(j, i)];
      if constexpr (ConjL) entry = Conj(entry);
      acc = SubMul(acc, entry, b[j]);
    }
    if constexpr (Unit) {
      b[i] = acc;
    } else {
      b[i] = MulInv(acc, inv[i]);
    }
  }
}



// Work arrays of one tile: on the stack for a static size, on the heap for D = 0.
template <int D, typename X>
class TileBuffer {
 public:
  explicit TileBuffer(int count) {
    if constexpr (D == 0) {
      dyn_.resize(count);
      data_ = dyn_.data();
    } else {
      (void)count;
      data_ = fixed_;
    }
  }
  X* data() { return data_; }

 private:
  static constexpr int kFixed = D > 0 ? TriCount(D) : 1;
  X fixed_[kFixed];
  std::vector<X> dyn_;
  X* data_;
};

// Runs `steps(bt)` (substitutions in place on a tile of right-hand sides) for
// systems [begin, end) of b, with a triangle shared by the whole batch and already
// broadcast to every lane: one matrix, many right-hand sides.
template <typename T, int D, typename Steps>
void SubstituteRange(int d, const T* b, std::ptrdiff_t b_stride, T* x, int64_t begin,
                     int64_t end, Steps steps) {
  using E = typename Lanes<T>::E;
  constexpr int W = Lanes<T>::W;
  if constexpr (D > 0) d = D;
  TileBuffer<D, E> bt(d);
  for (int64_t s0 = begin; s0 < end; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
    LoadTile(b + s0 * b_stride, b_stride, lanes, d, Identity{}, false, 0, bt.data());
    steps(bt.data());
    StoreTile(bt.data(), lanes, d, d, x + s0 * d);
  }
}

// One triangular matrix for a whole batch, prepared once: its triangle as a lower
// triangular L (see TriangularSolveRange), conjugated if `conj`, and the
// reciprocals of its diagonal, each broadcast to every lane.
template <typename T>
struct SharedTriangle {
  using E = typename Lanes<T>::E;
  std::vector<E> l, inv;

  SharedTriangle(int d, const T* a, bool upper, bool conj)
      : l(TriCount(d)), inv(d) {
    const auto offsets = TriOffsets(d, upper);
    LoadTile(a, 0, 1, TriCount(d), Offsets{offsets.data()}, conj, 1, l.data());
    for (int i = 0; i < d; ++i) inv[i] = BroadcastLane0(Recip(l[TriIndex(i, i)]));
    for (auto& e : l) e = BroadcastLane0(e);
  }
};

// op(A) x = b for systems [begin, end) of a batch, A triangular (lower, or upper if
// `upper`), with a unit diagonal (never read) if `Unit`; op(A) = A, A^T, conj(A) or
// A^H. Only A's triangle is read. A system's matrix is at a + s * a_stride
// (a_stride = 0: one matrix for the whole batch), its right-hand side at
// b + s * b_stride, its solution at x + s * d. A zero on the diagonal gives a
// non-finite solution.
//
// The triangle is loaded as a lower triangular L (A, or A^T for upper A); op(A) is
// then L (forward substitution) or L^T (back substitution), and `conj` is applied
// as the entries are loaded.
template <typename T, int D, bool Unit>
void TriangularSolveRange(int d, const T* a, std::ptrdiff_t a_stride, const T* b,
                          std::ptrdiff_t b_stride, T* x, int64_t begin, int64_t end,
                          bool upper, bool trans, bool conj) {
  using L = Lanes<T>;
  using E = typename L::E;
  constexpr int W = L::W;
  if constexpr (D > 0) d = D;
  const auto offsets = TriOffsets(d, upper);
  const bool back = upper != trans;  // op(A) is upper triangular
  TileBuffer<D, E> lt(TriCount(d)), bt(d), inv(d);
  for (int64_t s0 = begin; s0 < end; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
    // Missing lanes are filled with 1: finite, and never stored.
    LoadTile(a + s0 * a_stride, a_stride, lanes, TriCount(d), Offsets{offsets.data()},
             conj, 1, lt.data());
    LoadTile(b + s0 * b_stride, b_stride, lanes, d, Identity{}, false, 0, bt.data());
    if constexpr (!Unit) {
#pragma GCC unroll 32
      for (int i = 0; i < d; ++i) inv.data()[i] = Recip(lt.data()[TriIndex(i, i)]);
    }
    if (back) {
      BackTile<D, Unit, false>(d, lt.data(), inv.data(), bt.data());
    } else {
      ForwardTile<D, Unit>(d, lt.data(), inv.data(), bt.data());
    }
    StoreTile(bt.data(), lanes, d, d, x + s0 * d);
  }
}

}  // namespace lxk

#endif  // LINEAX_KERNELS_SMALL_TRIANGULAR_H_
