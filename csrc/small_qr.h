// Householder QR least squares for batches of small dense systems, SIMD across
// systems (see simd.h): the native twin of the pure-JAX kernel in
// src/lineax_kernels/_kernels/small_qr.py. Plain C++17, no XLA types.
//
// Solves op(A) x = b with the contract of lineax.QR (full rank assumed): for a
// tall or square op(A) (p x q, p >= q) the least-squares solution, from
// op(A) = Q R: x = R^-1 (Q^H b)[:q]; for a wide one the minimum-norm solution, from
// the QR of op(A)^H = Q R: x = Q [R^-H b; 0]. Either way the kernel factorises a
// tall P x Q matrix T (T = op(A) or op(A)^H, P >= Q), which is how the tile is
// loaded (flags read while loading, as in small_lu.h).
//
// The reflectors are Hermitian, H = I - s v v^H with v = x - beta e1,
// beta = -phase(x_0) ||x||, so that H x = beta e1 with no cancellation in
// v_0 = phase(x_0) (|x_0| + ||x||), and s = 2 / (v^H v) = 1 / (||x|| (||x|| + |x_0|)).
// (LAPACK's ?larfg keeps beta real and tau complex; this form needs no tau and the
// same work.) A column that is exactly zero where it is reduced (an exactly
// rank-deficient matrix) gives s = inf and beta = 0, so the solution is inf/NaN,
// which lineax reports as RESULTS.singular; so does any inf/NaN in A or b.
// Norms are plain sums of squares (no scaling as in ?nrm2): entries beyond about
// 1e154 (float64) or 1e19 (float32) overflow to a non-finite solution.
//
// With the small dimension Q a template argument (Q = 0: known only at run time)
// every loop over columns has constant bounds; loops over the P rows stay loops.
#ifndef LINEAX_KERNELS_SMALL_QR_H_
#define LINEAX_KERNELS_SMALL_QR_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "simd.h"

namespace lxk {

// c + conj(a) * b.
template <typename V>
LXK_INLINE V AddConjMul(V c, V a, V b) {
  return c + a * b;
}
template <typename V>
LXK_INLINE Cplx<V> AddConjMul(Cplx<V> c, Cplx<V> a, Cplx<V> b) {
  return {c.re + (a.re * b.re + a.im * b.im), c.im + (a.re * b.im - a.im * b.re)};
}

// |a| as a real lane vector.
template <typename V>
LXK_INLINE V AbsVal(V a) {
  return Abs(a);
}
template <typename V>
LXK_INLINE V AbsVal(Cplx<V> a) {
  return Sqrt(AbsSq(a));
}

// a / |a| (1 where a = 0), given abs_a = |a|.
template <typename V>
LXK_INLINE V Phase(V a, V abs_a) {
  (void)abs_a;
  return a < 0 ? Splat<V>(-1) : Splat<V>(1);
}
template <typename V>
LXK_INLINE Cplx<V> Phase(Cplx<V> a, V abs_a) {
  auto zero = abs_a == 0;
  V inv = 1 / abs_a;
  return {zero ? Splat<V>(1) : a.re * inv, zero ? V{} : a.im * inv};
}

// The reflectors of one tile's factorisation: for column k, v_0 = head[k] (the
// rest of v stays below the diagonal of T), s = scale[k], R[k][k] = beta[k].
template <typename E, typename V>
struct QrReflectors {
  E* head;
  V* scale;
  E* beta;
};

// Factorises one tile T (p x q, row-major, p >= q) in place: afterwards T holds R
// above its diagonal and the reflectors' vectors below it (heads and diagonal in
// `h`). If `b` is given (p entries), each reflector is applied to it in the same
// pass (b becomes Q^H b). `dots` is scratch for q + 1 entries (unused for a static
// size).
template <int Q, typename E, typename V>
LXK_INLINE void QrFactorTile(int p, int q, E* t, QrReflectors<E, V> h, E* b,
                             E* dots) {
  // With a static size, the dot products live in a local array, which the
  // compiler can keep in registers (it cannot alias the tile).
  E local_dots[Q > 0 ? Q + 1 : 1] = {};
  if constexpr (Q > 0) {
    q = Q;
    dots = local_dots;
  }
#pragma GCC unroll 16
  for (int k = 0; k < q; ++k) {
    const E alpha = t[k * q + k];
    V norm2 = AbsSq(alpha);
    for (int i = k + 1; i < p; ++i) norm2 += AbsSq(t[i * q + k]);
    const V norm = Sqrt(norm2);
    const V abs_alpha = AbsVal(alpha);
    const E phase = Phase(alpha, abs_alpha);
    const E v0 = Scale(phase, abs_alpha + norm);
    const V s = 1 / (norm * (norm + abs_alpha));
    h.head[k] = v0;
    h.scale[k] = s;
    h.beta[k] = Neg(Scale(phase, norm));
    // dots[j] = v^H T[k:, j] for the columns right of k (and b, as dots[q]).
#pragma GCC unroll 16
    for (int j = k + 1; j < q; ++j) dots[j] = AddConjMul(E{}, v0, t[k * q + j]);
    if (b != nullptr) dots[q] = AddConjMul(E{}, v0, b[k]);
    for (int i = k + 1; i < p; ++i) {
      const E vi = t[i * q + k];
#pragma GCC unroll 16
      for (int j = k + 1; j < q; ++j) dots[j] = AddConjMul(dots[j], vi, t[i * q + j]);
      if (b != nullptr) dots[q] = AddConjMul(dots[q], vi, b[i]);
    }
#pragma GCC unroll 16
    for (int j = k + 1; j < q; ++j) dots[j] = Scale(dots[j], s);
    if (b != nullptr) dots[q] = Scale(dots[q], s);
    // T[k:, j] -= v * dots[j].
#pragma GCC unroll 16
    for (int j = k + 1; j < q; ++j) t[k * q + j] = SubMul(t[k * q + j], v0, dots[j]);
    if (b != nullptr) b[k] = SubMul(b[k], v0, dots[q]);
    for (int i = k + 1; i < p; ++i) {
      const E vi = t[i * q + k];
#pragma GCC unroll 16
      for (int j = k + 1; j < q; ++j) t[i * q + j] = SubMul(t[i * q + j], vi, dots[j]);
      if (b != nullptr) b[i] = SubMul(b[i], vi, dots[q]);
    }
  }
}

// b (p entries) becomes Q^H b, with the reflectors of QrFactorTile.
template <int Q, typename E, typename V>
LXK_INLINE void QrApplyQH(int p, int q, const E* t, QrReflectors<E, V> h, E* b) {
  if constexpr (Q > 0) q = Q;
#pragma GCC unroll 16
  for (int k = 0; k < q; ++k) {
    E dot = AddConjMul(E{}, h.head[k], b[k]);
    for (int i = k + 1; i < p; ++i) dot = AddConjMul(dot, t[i * q + k], b[i]);
    dot = Scale(dot, h.scale[k]);
    b[k] = SubMul(b[k], h.head[k], dot);
    for (int i = k + 1; i < p; ++i) b[i] = SubMul(b[i], t[i * q + k], dot);
  }
}

// z (p entries; the first q given, the rest taken as zero) becomes Q z.
template <int Q, typename E, typename V>
LXK_INLINE void QrApplyQ(int p, int q, const E* t, QrReflectors<E, V> h, E* z) {
  if constexpr (Q > 0) q = Q;
  for (int i = q; i < p; ++i) z[i] = E{};
#pragma GCC unroll 16
  for (int k = q - 1; k >= 0; --k) {
    E dot = AddConjMul(E{}, h.head[k], z[k]);
    for (int i = k + 1; i < p; ++i) dot = AddConjMul(dot, t[i * q + k], z[i]);
    dot = Scale(dot, h.scale[k]);
    z[k] = SubMul(z[k], h.head[k], dot);
    for (int i = k + 1; i < p; ++i) z[i] = SubMul(z[i], t[i * q + k], dot);
  }
}

// y = R^-1 y (in place, the first q entries), R from QrFactorTile.
template <int Q, typename E, typename V>
LXK_INLINE void QrBackTile(int q, const E* t, QrReflectors<E, V> h, E* y) {
  if constexpr (Q > 0) q = Q;
#pragma GCC unroll 16
  for (int i = q - 1; i >= 0; --i) {
    E acc = y[i];
#pragma GCC unroll 16
    for (int j = i + 1; j < q; ++j) acc = SubMul(acc, t[i * q + j], y[j]);
    y[i] = Mul(acc, Recip(h.beta[i]));
  }
}

// y = R^-H y (in place, q entries), R from QrFactorTile.
template <int Q, typename E, typename V>
LXK_INLINE void QrForwardHTile(int q, const E* t, QrReflectors<E, V> h, E* y) {
  if constexpr (Q > 0) q = Q;
#pragma GCC unroll 16
  for (int i = 0; i < q; ++i) {
    E acc = y[i];
#pragma GCC unroll 16
    for (int j = 0; j < i; ++j) acc = SubMul(acc, Conj(t[j * q + i]), y[j]);
    y[i] = Mul(acc, Conj(Recip(h.beta[i])));
  }
}

// The shape of one batch's solve: op(A) x = b with A (m x n, row-major), op(A)
// of shape rows x cols; the tile T (p x q) is op(A) if op(A) is tall or square,
// else op(A)^H.
struct QrShape {
  int m, n, rows, cols, p, q;
  bool wide, trans, conj;  // trans, conj: of T relative to A.

  QrShape(int m_, int n_, bool trans_, bool conj_) : m(m_), n(n_) {
    rows = trans_ ? n : m;
    cols = trans_ ? m : n;
    wide = rows < cols;
    p = std::max(rows, cols);
    q = std::min(rows, cols);
    trans = trans_ != wide;
    conj = conj_ != wide;
  }

  // Offsets into A of T's entries, row-major.
  std::vector<std::ptrdiff_t> Offsets() const {
    std::vector<std::ptrdiff_t> table(std::size_t(p) * q);
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < q; ++j) table[i * q + j] = trans ? j * n + i : i * n + j;
    }
    return table;
  }
};

// Per-thread scratch of one range of systems.
template <typename T>
struct QrScratch {
  using L = Lanes<T>;
  using E = typename L::E;
  using V = typename L::V;
  std::vector<E> t, head, beta, b, dots;
  std::vector<V> scale;

  explicit QrScratch(const QrShape& s)
      : t(std::size_t(s.p) * s.q), head(s.q), beta(s.q), b(s.p), dots(s.q + 1),
        scale(s.q) {}
  QrReflectors<E, V> reflectors() { return {head.data(), scale.data(), beta.data()}; }
};

// x = op(A)^+ b for systems [begin, end) of a batch. A system's matrix is at
// a + s * a_stride (a_stride = 0: one matrix for the whole batch), its right-hand
// side (shape.rows entries) at b + s * b_stride, its solution (shape.cols) at
// x + s * shape.cols.
template <typename T, int Q>
void QrSolveRange(const QrShape& shape, const T* a, std::ptrdiff_t a_stride,
                  const T* b, std::ptrdiff_t b_stride, T* x, int64_t begin,
                  int64_t end) {
  using L = Lanes<T>;
  constexpr int W = L::W;
  const int p = shape.p, q = shape.q;
  QrScratch<T> w(shape);
  const std::vector<std::ptrdiff_t> offsets = shape.Offsets();
  auto* t = w.t.data();
  auto* bt = w.b.data();
  auto h = w.reflectors();
  for (int64_t s0 = begin; s0 < end; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
    LoadTile(a + s0 * a_stride, a_stride, lanes, p * q, Offsets{offsets.data()},
             shape.conj, 0, t);
    LoadTile(b + s0 * b_stride, b_stride, lanes, shape.rows, Identity{}, false, 0,
             bt);
    const auto guard = NonFiniteSum(p * q, t) + NonFiniteSum(shape.rows, bt);
    if (!shape.wide) {
      QrFactorTile<Q>(p, q, t, h, bt, w.dots.data());
      QrBackTile<Q>(q, t, h, bt);
    } else {
      QrFactorTile<Q>(p, q, t, h, static_cast<decltype(t)>(nullptr), w.dots.data());
      QrForwardHTile<Q>(q, t, h, bt);
      QrApplyQ<Q>(p, q, t, h, bt);
    }
    for (int i = 0; i < shape.cols; ++i) bt[i] = AddReal(bt[i], guard);
    StoreTile(bt, lanes, shape.cols, shape.cols, x + s0 * shape.cols);
  }
}

// One matrix, many right-hand sides: factorise op(A) once (in every lane of a
// tile), then solve for systems [begin, end) of b a tile at a time.
template <typename T>
class QrFactored {
 public:
  using L = Lanes<T>;
  using E = typename L::E;
  using V = typename L::V;

  template <int Q>
  void Factor(const QrShape& shape, const T* a) {
    shape_ = shape;
    scratch_.emplace(shape);
    QrScratch<T>& w = *scratch_;
    const std::vector<std::ptrdiff_t> offsets = shape.Offsets();
    LoadTile(a, 0, L::W, shape.p * shape.q, Offsets{offsets.data()}, shape.conj, 0,
             w.t.data());
    guard_ = NonFiniteSum(shape.p * shape.q, w.t.data());
    QrFactorTile<Q>(shape.p, shape.q, w.t.data(), w.reflectors(),
                    static_cast<E*>(nullptr), w.dots.data());
  }

  template <int Q>
  void SolveRange(const T* b, std::ptrdiff_t b_stride, T* x, int64_t begin,
                  int64_t end) const {
    constexpr int W = L::W;
    const QrShape& shape = shape_;
    const int p = shape.p, q = shape.q;
    const QrScratch<T>& f = *scratch_;
    QrReflectors<E, V> h{const_cast<E*>(f.head.data()),
                         const_cast<V*>(f.scale.data()),
                         const_cast<E*>(f.beta.data())};
    std::vector<E> b_tile(p);
    E* bt = b_tile.data();
    const E* t = f.t.data();
    for (int64_t s0 = begin; s0 < end; s0 += W) {
      const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
      LoadTile(b + s0 * b_stride, b_stride, lanes, shape.rows, Identity{}, false, 0,
               bt);
      const auto guard = guard_ + NonFiniteSum(shape.rows, bt);
      if (!shape.wide) {
        QrApplyQH<Q>(p, q, t, h, bt);
        QrBackTile<Q>(q, t, h, bt);
      } else {
        QrForwardHTile<Q>(q, t, h, bt);
        QrApplyQ<Q>(p, q, t, h, bt);
      }
      for (int i = 0; i < shape.cols; ++i) bt[i] = AddReal(bt[i], guard);
      StoreTile(bt, lanes, shape.cols, shape.cols, x + s0 * shape.cols);
    }
  }

 private:
  QrShape shape_{1, 1, false, false};
  std::optional<QrScratch<T>> scratch_;
  V guard_{};
};

}  // namespace lxk

#endif  // LINEAX_KERNELS_SMALL_QR_H_
