// Tridiagonal solves, LAPACK ?gttrf/?gtts2-style (partial pivoting by |Re| + |Im|,
// U with two superdiagonals) or without pivoting (Thomas), SIMD across systems (see
// simd.h): the native twin of the pure-JAX scans in
// src/lineax_kernels/_solver/scan_tridiagonal.py. Plain C++17, no XLA types.
//
// Factorisation and substitution are fused: one forward sweep eliminates and
// carries the right-hand side along, writing the rows of U and of y (L^{-1} P b)
// to a per-tile scratch buffer; one backward sweep reads them back and writes x.
// The matrix is read once and nothing but x is written to the caller's memory.
// Any inf/NaN in the matrix makes x non-finite (summed into a guard as the rows are
// read, added to the first x computed, on which every other x depends), even where
// elimination would not carry it there, so that lineax reports RESULTS.singular.
//
// Two drivers:
// - `TridiagonalSolveRange`: a batch, W systems per tile (one per SIMD lane), each
//     tile advanced one row at a time.
// - `TridiagonalSolveSingle`: one long system. A single sweep is latency bound (each
//     row needs the previous pivot's reciprocal), so the system is eliminated from
//     both ends at once ("twisted" or burn-at-both-ends elimination): rows 0, 1, ...
//     downwards and rows n-1, n-2, ... upwards (the latter is the same elimination
//     on the reversed system), as two lanes of one 16-byte vector so that their two
//     independent dependency chains overlap. The two chains meet in the middle in a
//     2x2 system solved with the same pivoting rule, and substitution runs outwards
//     from there. Every elimination step is an ordinary partial-pivoting step on two
//     adjacent rows, as in ?gttrf, so the growth bound (2 per step) and the
//     stability are the same.
#ifndef LINEAX_KERNELS_TRIDIAGONAL_H_
#define LINEAX_KERNELS_TRIDIAGONAL_H_

#include <algorithm>
#include <complex>
#include <cstdint>
#include <vector>

#include "simd.h"

namespace lxk {

// Row i of A as seen by the elimination: A[i, i-1], A[i, i], A[i, i+1], b[i].
template <typename E>
struct TriRow {
  E l, d, u, r;
};

// The active (not yet eliminated) row: `a` in the pivot column, `b` in the next,
// `c` its right-hand side.
template <typename E>
struct TriActive {
  E a, b, c;
};

// One finished row of U (reciprocal pivot, first and second superdiagonal) and of
// y. Without pivoting `u2` is unused.
template <typename E>
struct TriURow {
  E rp, u1, u2, y;
};

template <typename E>
LXK_INLINE TriActive<E> TriStart(const TriRow<E>& row0) {
  return {row0.d, row0.u, row0.r};
}

// One elimination step: the active row meets the next row of A. With pivoting the
// two are swapped first if |l| > |a| (LAPACK: no swap on ties); either way the
// pivot row becomes a row of U and the other, minus m times it, the next active
// row. A zero pivot gives an infinite or NaN reciprocal, which reaches x.
template <bool kPivot, typename E>
LXK_INLINE TriURow<E> TriStep(TriActive<E>& act, const TriRow<E>& row) {
  const E zero{};
  if constexpr (kPivot) {
    auto swap = Abs1(row.l) > Abs1(act.a);
    const E rp = Recip(Select(swap, row.l, act.a));
    const E m = Mul(Select(swap, act.a, row.l), rp);
    const E u1 = Select(swap, row.d, act.b);
    const E y = Select(swap, row.r, act.c);
    const E u2 = Select(swap, row.u, zero);
    act.a = SubMul(Select(swap, act.b, row.d), m, u1);
    act.b = Select(swap, SubMul(zero, m, row.u), row.u);
    act.c = SubMul(Select(swap, act.c, row.r), m, y);
    return {rp, u1, u2, y};
  } else {
    const E rp = Recip(act.a);
    const E m = Mul(row.l, rp);
    TriURow<E> out{rp, act.b, zero, act.c};
    act.a = SubMul(row.d, m, act.b);
    act.b = row.u;
    act.c = SubMul(row.r, m, act.c);
    return out;
  }
}

// x_i from x_{i+1}, x_{i+2} and row i of U and y.
template <bool kPivot, typename E>
LXK_INLINE E TriBack(const TriURow<E>& u, E x1, E x2) {
  E acc = SubMul(u.y, u.u1, x1);
  if constexpr (kPivot) acc = SubMul(acc, u.u2, x2);
  return Mul(acc, u.rp);
}

// ---- Batches: one system per lane ------------------------------------------------

// Where the systems are: system s's diagonal at diag + s * diag_stride (n entries),
// its sub- and superdiagonal at lower/upper + s * stride (n - 1 entries each), its
// right-hand side at rhs + s * rhs_stride (n entries); a stride of 0 shares one
// operand across the batch. For a transposed solve the caller swaps lower and
// upper; `conj` conjugates the matrix on the fly.
template <typename T>
struct TriBatch {
  int64_t n;
  const T* diag;
  std::ptrdiff_t diag_stride;
  const T* lower;
  std::ptrdiff_t lower_stride;
  const T* upper;
  std::ptrdiff_t upper_stride;
  const T* rhs;
  std::ptrdiff_t rhs_stride;
  bool conj;
};

struct TriZeroIndex {
  LXK_INLINE std::ptrdiff_t operator()(int) const { return 0; }
};

template <int N, typename T>
LXK_INLINE typename Lanes<T>::E TriGather(const T* p, std::ptrdiff_t stride,
                                          int lanes, bool conj) {
  typename Lanes<T>::E e;
  LoadTileN<N>(p, stride, lanes, 1, TriZeroIndex{}, conj, 0, &e);
  return e;
}

// Solves the `lanes` systems starting at system s0 (N = lanes if known at compile
// time, else 0), using `scratch` (n entries) for U and y.
template <bool kPivot, int N, typename T>
LXK_INLINE void TriSolveTile(const TriBatch<T>& p, int64_t s0, int lanes,
                             TriURow<typename Lanes<T>::E>* scratch, T* x) {
  using E = typename Lanes<T>::E;
  const int64_t n = p.n;
  const T* d = p.diag + s0 * p.diag_stride;
  const T* l = p.lower + s0 * p.lower_stride;
  const T* u = p.upper + s0 * p.upper_stride;
  const T* r = p.rhs + s0 * p.rhs_stride;
  const bool cj = p.conj;
  const E zero{};
  typename Lanes<T>::V guard{};
  auto row = [&](int64_t i) -> TriRow<E> {
    TriRow<E> out;
    out.l = i > 0 ? TriGather<N>(l + (i - 1), p.lower_stride, lanes, cj) : zero;
    out.d = TriGather<N>(d + i, p.diag_stride, lanes, cj);
    out.u = i < n - 1 ? TriGather<N>(u + i, p.upper_stride, lanes, cj) : zero;
    out.r = TriGather<N>(r + i, p.rhs_stride, lanes, false);
    guard += NonFinite(out.l) + NonFinite(out.d) + NonFinite(out.u);
    return out;
  };
  TriActive<E> act = TriStart(row(0));
  for (int64_t i = 1; i < n; ++i) scratch[i - 1] = TriStep<kPivot>(act, row(i));
  E x1 = AddReal(Mul(act.c, Recip(act.a)), guard), x2 = zero;
  T* out = x + s0 * n;
  StoreTileN<N>(&x1, lanes, 1, n, out + (n - 1));
  for (int64_t i = n - 2; i >= 0; --i) {
    E x0 = TriBack<kPivot>(scratch[i], x1, x2);
    StoreTileN<N>(&x0, lanes, 1, n, out + i);
    x2 = x1;
    x1 = x0;
  }
}

// Solves systems [begin, end) of a batch; x is (systems, n), row-major.
template <typename T, bool kPivot>
void TridiagonalSolveRange(const TriBatch<T>& p, T* x, int64_t begin, int64_t end) {
  using L = Lanes<T>;
  constexpr int W = L::W;
  std::vector<TriURow<typename L::E>> scratch(std::max<int64_t>(p.n, 1));
  for (int64_t s0 = begin; s0 < end; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, end - s0));
    if (lanes == W) {
      TriSolveTile<kPivot, W>(p, s0, lanes, scratch.data(), x);
    } else {
      TriSolveTile<kPivot, 0>(p, s0, lanes, scratch.data(), x);
    }
  }
}

// ---- One long system: two chains, from both ends ---------------------------------

// Two lanes in one 16-byte vector (4 floats, two of them idle).
template <typename R>
struct PairOf {
  typedef R type __attribute__((vector_size(16)));
};

template <typename T>
struct Pair {
  using R = T;
  using V = typename PairOf<R>::type;
  using E = V;
  static E Make(T a, T b) {
    V v{};
    v[0] = a;
    v[1] = b;
    return v;
  }
  static T Get(E e, int lane) { return e[lane]; }
};

template <typename Rt>
struct Pair<std::complex<Rt>> {
  using R = Rt;
  using V = typename PairOf<R>::type;
  using E = Cplx<V>;
  static E Make(std::complex<Rt> a, std::complex<Rt> b) {
    V re{}, im{};
    re[0] = a.real(), re[1] = b.real();
    im[0] = a.imag(), im[1] = b.imag();
    return {re, im};
  }
  static std::complex<Rt> Get(E e, int lane) { return {e.re[lane], e.im[lane]}; }
};

template <typename T>
LXK_INLINE T MaybeConj(T x, bool conj) {
  if constexpr (Lanes<T>::kComplex) {
    return conj ? std::conj(x) : x;
  } else {
    (void)conj;
    return x;
  }
}

// Solves one system (TriBatch with one system), from both ends.
template <typename T, bool kPivot>
void TridiagonalSolveSingle(const TriBatch<T>& p, T* x) {
  using P = Pair<T>;
  using E = typename P::E;
  using L1 = Lanes<T>;
  using E1 = typename L1::E;
  const int64_t n = p.n;
  if (n < 2) {
    TriURow<E1> unused[1];
    TriSolveTile<kPivot, 1>(p, 0, 1, unused, x);
    return;
  }
  const bool cj = p.conj;
  auto D = [&](int64_t i) { return MaybeConj(p.diag[i], cj); };
  // A[i, i-1] and A[i, i+1].
  auto Lo = [&](int64_t i) { return MaybeConj(p.lower[i - 1], cj); };
  auto Up = [&](int64_t i) { return MaybeConj(p.upper[i], cj); };
  const T* b = p.rhs;
  // Lane 0 eliminates rows 0, 1, ..., m-1 downwards; lane 1 rows n-1, ..., m
  // upwards (row k of the reversed system J A J is row n-1-k of A, with its sub-
  // and superdiagonal exchanged). h = n / 2 rows go to lane 1, m = n - h to lane 0.
  const int64_t h = n / 2, m = n - h;
  std::vector<TriURow<E>> scratch(m);
  typename Pair<T>::V guard{};
  auto row = [&](int64_t k) -> TriRow<E> {
    const int64_t j = n - 1 - k;
    TriRow<E> out{P::Make(k > 0 ? Lo(k) : T(0), k > 0 ? Up(j) : T(0)),
                  P::Make(D(k), D(j)), P::Make(Up(k), Lo(j)), P::Make(b[k], b[j])};
    guard += NonFinite(out.l) + NonFinite(out.d) + NonFinite(out.u);
    return out;
  };
  TriActive<E> act = TriStart(row(0));
  for (int64_t k = 1; k < h; ++k) scratch[k - 1] = TriStep<kPivot>(act, row(k));
  auto one = [](T v) { return SplatElem<T>(v); };
  auto lane0 = [](E1 e) -> T {
    if constexpr (L1::kComplex) {
      return T(e.re[0], e.im[0]);
    } else {
      return e[0];
    }
  };
  // Lane 0's active row spans columns (h-1, h), lane 1's columns (m, m-1). For odd
  // n lane 0 still has row h = m-1 to eliminate (its U row h-1 goes to `extra`).
  TriActive<E1> top{one(P::Get(act.a, 0)), one(P::Get(act.b, 0)),
                    one(P::Get(act.c, 0))};
  TriURow<E1> extra{};
  typename L1::R total = guard[0] + guard[1];
  if (m > h) {
    const TriRow<E1> middle{one(Lo(h)), one(D(h)), one(Up(h)), one(b[h])};
    total += NonFinite(middle.l)[0] + NonFinite(middle.d)[0] + NonFinite(middle.u)[0];
    extra = TriStep<kPivot>(top, middle);
  }
  // The two active rows meet: [a_top b_top; b_bot a_bot] [x_{m-1}; x_m] =
  // [c_top; c_bot], by one more step of the same elimination.
  const TriRow<E1> bottom{one(P::Get(act.b, 1)), one(P::Get(act.a, 1)), E1{},
                          one(P::Get(act.c, 1))};
  const TriURow<E1> meet = TriStep<kPivot>(top, bottom);
  const E1 xm_v = AddReal(Mul(top.c, Recip(top.a)), Splat<typename L1::V>(total));
  const T x_m = lane0(xm_v), x_m1 = lane0(TriBack<kPivot>(meet, xm_v, E1{}));
  x[m - 1] = x_m1;
  x[m] = x_m;
  // Substitution outwards, both lanes from their local row h-2.
  E x1, x2;
  if (m > h) {
    const T x_h1 = lane0(TriBack<kPivot>(extra, one(x_m1), one(x_m)));
    x[h - 1] = x_h1;
    x1 = P::Make(x_h1, x_m);
    x2 = P::Make(x_m1, x_m1);
  } else {
    x1 = P::Make(x_m1, x_m);
    x2 = P::Make(x_m, x_m1);
  }
  for (int64_t k = h - 2; k >= 0; --k) {
    const E x0 = TriBack<kPivot>(scratch[k], x1, x2);
    x[k] = P::Get(x0, 0);
    x[n - 1 - k] = P::Get(x0, 1);
    x2 = x1;
    x1 = x0;
  }
}

}  // namespace lxk

#endif  // LINEAX_KERNELS_TRIDIAGONAL_H_
