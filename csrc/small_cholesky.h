// Straight-line Cholesky factorisation and triangular substitution for many small
// systems at once: the C++ twin of `lineax_kernels/_solver/unrolled_small_cholesky.py`
// and `unrolled_small_triangular.py`. Plain C++17, no XLA types: the FFI handler (a
// separate file) checks shapes, switches on dtype and size, and calls the batch
// drivers at the bottom.
//
// Layout. A tile holds W systems interleaved in SIMD lanes ("structure of arrays"):
// element (i, j) of system s is at tile[(i * D + j) * W + s], entry i of a vector at
// tile[i * W + s]. Every arithmetic loop is a plain `for (int s = 0; s < W; ++s)`
// over fixed-size arrays with no branch on values, so that GCC -O3 -march=native
// vectorises it; complex numbers are split into real and imaginary planes inside
// the kernels. Sizes up to D = 16 keep each tile's work arrays on the stack.
//
// Semantics, as for LAPACK's ?potrf(uplo="L") / ?potrs and the Python kernels:
// only the lower triangle of A is read (and only the real part of its diagonal); a
// pivot that is zero, negative or NaN gives sqrt(<= 0) = 0 or NaN and an infinite or
// NaN reciprocal, which propagates to every later entry of x: a matrix that is not
// positive definite gives a non-finite solution, never a finite wrong one. Nothing
// here relies on -ffast-math (which would break exactly this); don't compile with
// it. The factor stores the reciprocals of L's diagonal, so solves multiply.
//
// Note on sqrt: with GCC's default -fmath-errno, std::sqrt must set errno for a
// negative argument, which stops it vectorising; -fno-math-errno (not part of
// -ffast-math's value-changing options: results are bit-identical) lets it use
// vsqrtpd. The kernels are correct either way.
#ifndef LINEAX_KERNELS_SMALL_CHOLESKY_H_
#define LINEAX_KERNELS_SMALL_CHOLESKY_H_

#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>

namespace lineax_kernels {

template <typename T>
struct ScalarTraits {
  using Real = T;
  static constexpr bool kComplex = false;
};

template <typename R>
struct ScalarTraits<std::complex<R>> {
  using Real = R;
  static constexpr bool kComplex = true;
};

// Lanes per tile: 64 bytes of real parts (one AVX-512 register, two AVX2 ones).
template <typename T>
constexpr int kDefaultLanes = 64 / sizeof(typename ScalarTraits<T>::Real);

namespace internal {

template <typename A, typename B>
constexpr bool kIsSame = false;
template <typename A>
constexpr bool kIsSame<A, A> = true;

// Real and imaginary planes of K entries of W systems. For real T the imaginary
// plane is never touched (and is optimised away).
template <typename T, int K, int W>
struct Planes {
  using R = typename ScalarTraits<T>::Real;
  R re[K][W];
  R im[ScalarTraits<T>::kComplex ? K : 1][W];

  void Load(const T* tile) {
    for (int k = 0; k < K; ++k) {
      if constexpr (ScalarTraits<T>::kComplex) {
        const R* p = reinterpret_cast<const R*>(tile + k * W);
        for (int s = 0; s < W; ++s) {
          re[k][s] = p[2 * s];
          im[k][s] = p[2 * s + 1];
        }
      } else {
        for (int s = 0; s < W; ++s) re[k][s] = tile[k * W + s];
      }
    }
  }

  void Store(T* tile) const {
    for (int k = 0; k < K; ++k) {
      if constexpr (ScalarTraits<T>::kComplex) {
        R* p = reinterpret_cast<R*>(tile + k * W);
        for (int s = 0; s < W; ++s) {
          p[2 * s] = re[k][s];
          p[2 * s + 1] = im[k][s];
        }
      } else {
        for (int s = 0; s < W; ++s) tile[k * W + s] = re[k][s];
      }
    }
  }
};

// In place: the lower triangle of `a` becomes L (strictly lower part), and
// inv[j] = 1 / L[j][j]. The strict upper triangle is neither read nor written.
template <typename T, int D, int W>
inline void FactorPlanes(Planes<T, D * D, W>& a, typename ScalarTraits<T>::Real (
                                                     &inv)[D][W]) {
  using R = typename ScalarTraits<T>::Real;
  constexpr bool kC = ScalarTraits<T>::kComplex;
  for (int j = 0; j < D; ++j) {
    R pivot[W];
    for (int s = 0; s < W; ++s) pivot[s] = a.re[j * D + j][s];
    for (int k = 0; k < j; ++k) {
      const int jk = j * D + k;
      for (int s = 0; s < W; ++s) {
        pivot[s] -= a.re[jk][s] * a.re[jk][s];
        if constexpr (kC) pivot[s] -= a.im[jk][s] * a.im[jk][s];
      }
    }
    for (int s = 0; s < W; ++s) inv[j][s] = R(1) / std::sqrt(pivot[s]);
    for (int i = j + 1; i < D; ++i) {
      const int ij = i * D + j;
      R acc_re[W], acc_im[W];
      for (int s = 0; s < W; ++s) {
        acc_re[s] = a.re[ij][s];
        if constexpr (kC) acc_im[s] = a.im[ij][s];
      }
      for (int k = 0; k < j; ++k) {
        // acc -= L[i][k] * conj(L[j][k])
        const int ik = i * D + k, jk = j * D + k;
        for (int s = 0; s < W; ++s) {
          acc_re[s] -= a.re[ik][s] * a.re[jk][s];
          if constexpr (kC) {
            acc_re[s] -= a.im[ik][s] * a.im[jk][s];
            acc_im[s] -= a.im[ik][s] * a.re[jk][s] - a.re[ik][s] * a.im[jk][s];
          }
        }
      }
      for (int s = 0; s < W; ++s) {
        a.re[ij][s] = acc_re[s] * inv[j][s];
        if constexpr (kC) a.im[ij][s] = acc_im[s] * inv[j][s];
      }
    }
  }
}

// Solves op(L) x = b in place in `b`, for L lower triangular given by its strictly
// lower entries in `l` (element (i, j) at index i * D + j) and the reciprocals of
// its diagonal in `inv` (complex for a triangular solve, real for Cholesky; null
// for a unit diagonal). op is L (forward substitution) or L^T (back substitution),
// conjugated if `conjugate`.
template <typename T, int D, int W, typename Inv>
inline void SubstitutePlanes(const Planes<T, D * D, W>& l, const Inv* inv,
                             Planes<T, D, W>& b, bool transpose, bool conjugate) {
  using R = typename ScalarTraits<T>::Real;
  constexpr bool kC = ScalarTraits<T>::kComplex;
  const R sign = conjugate ? R(-1) : R(1);  // multiplies imaginary parts of L
  for (int step = 0; step < D; ++step) {
    const int i = transpose ? D - 1 - step : step;
    const int j_begin = transpose ? i + 1 : 0;
    const int j_end = transpose ? D : i;
    for (int j = j_begin; j < j_end; ++j) {
      const int e = transpose ? j * D + i : i * D + j;
      for (int s = 0; s < W; ++s) {
        // b[i] -= op(L)[i][j] * b[j]
        b.re[i][s] -= l.re[e][s] * b.re[j][s];
        if constexpr (kC) {
          const R l_im = sign * l.im[e][s];
          b.re[i][s] += l_im * b.im[j][s];
          b.im[i][s] -= l.re[e][s] * b.im[j][s] + l_im * b.re[j][s];
        }
      }
    }
    if (inv != nullptr) {
      if constexpr (kIsSame<Inv, R>) {
        for (int s = 0; s < W; ++s) {
          b.re[i][s] *= inv[i * W + s];
          if constexpr (kC) b.im[i][s] *= inv[i * W + s];
        }
      } else {  // complex reciprocals, as planes: inv->re[i], inv->im[i]
        for (int s = 0; s < W; ++s) {
          const R v_re = inv->re[i][s], v_im = sign * inv->im[i][s];
          const R x_re = b.re[i][s], x_im = b.im[i][s];
          b.re[i][s] = x_re * v_re - x_im * v_im;
          b.im[i][s] = x_re * v_im + x_im * v_re;
        }
      }
    }
  }
}

}  // namespace internal

// Factors a tile of W Hermitian positive definite matrices, A = L L^H, reading only
// the lower triangle of `a_tile_soa`. Writes `l_tile_soa` (same layout): L strictly
// below the diagonal, 1 / L[i][i] on it (real), zeros above it.
template <typename T, int D, int W = kDefaultLanes<T>>
inline void CholeskyFactorTile(const T* a_tile_soa, T* l_tile_soa) {
  using R = typename ScalarTraits<T>::Real;
  internal::Planes<T, D * D, W> a;
  a.Load(a_tile_soa);
  R inv[D][W];
  internal::FactorPlanes<T, D, W>(a, inv);
  for (int i = 0; i < D; ++i) {
    for (int j = i; j < D; ++j) {
      for (int s = 0; s < W; ++s) {
        a.re[i * D + j][s] = (i == j) ? inv[i][s] : R(0);
        if constexpr (ScalarTraits<T>::kComplex) a.im[i * D + j][s] = R(0);
      }
    }
  }
  a.Store(l_tile_soa);
}

// Solves A x = b (or conj(A) x = b if `conjugate`; for Hermitian A that is also
// A^T x = b) with a tile factored by CholeskyFactorTile: L y = b, then L^H x = y.
template <typename T, int D, int W = kDefaultLanes<T>>
inline void CholeskySolveTile(const T* l_tile_soa, const T* b_tile_soa, T* x_tile_soa,
                              bool conjugate = false) {
  using R = typename ScalarTraits<T>::Real;
  internal::Planes<T, D * D, W> l;
  l.Load(l_tile_soa);
  R inv[D * W];
  for (int i = 0; i < D; ++i)
    for (int s = 0; s < W; ++s) inv[i * W + s] = l.re[i * D + i][s];
  internal::Planes<T, D, W> b;
  b.Load(b_tile_soa);
  internal::SubstitutePlanes<T, D, W, R>(l, inv, b, false, conjugate);
  internal::SubstitutePlanes<T, D, W, R>(l, inv, b, true, !conjugate);
  b.Store(x_tile_soa);
}

// Factor and solve fused: A x = b for a tile of W systems, reading only the lower
// triangle of each A (Hermitian for complex T).
template <typename T, int D, int W = kDefaultLanes<T>>
inline void CholeskyFactorSolveTile(const T* a_tile_soa, const T* b_tile_soa,
                                    T* x_tile_soa) {
  using R = typename ScalarTraits<T>::Real;
  internal::Planes<T, D * D, W> a;
  a.Load(a_tile_soa);
  R inv[D][W];
  internal::FactorPlanes<T, D, W>(a, inv);
  internal::Planes<T, D, W> b;
  b.Load(b_tile_soa);
  internal::SubstitutePlanes<T, D, W, R>(a, &inv[0][0], b, false, false);
  internal::SubstitutePlanes<T, D, W, R>(a, &inv[0][0], b, true, true);
  b.Store(x_tile_soa);
}

// Triangular solve op(A) x = b for a tile of W systems, reading only the triangle
// of A given by `lower` (and not its diagonal if `unit_diagonal`). op(A) is A, or
// A^T if `transpose`, conjugated if `conjugate`. A zero on the diagonal gives a
// non-finite x.
template <typename T, int D, int W = kDefaultLanes<T>>
inline void TriangularSolveTile(const T* a_tile_soa, const T* b_tile_soa,
                                T* x_tile_soa, bool lower, bool unit_diagonal,
                                bool transpose = false, bool conjugate = false) {
  using R = typename ScalarTraits<T>::Real;
  constexpr bool kC = ScalarTraits<T>::kComplex;
  internal::Planes<T, D * D, W> a;
  a.Load(a_tile_soa);
  // Kept as lower: an upper triangular A is the transpose of a lower one.
  internal::Planes<T, D * D, W> l;
  for (int i = 0; i < D; ++i) {
    for (int j = 0; j < i; ++j) {
      const int src = lower ? i * D + j : j * D + i;
      for (int s = 0; s < W; ++s) {
        l.re[i * D + j][s] = a.re[src][s];
        if constexpr (kC) l.im[i * D + j][s] = a.im[src][s];
      }
    }
  }
  internal::Planes<T, D, W> inv;  // 1 / A[i][i], the reciprocal of a complex number
  for (int i = 0; i < D; ++i) {
    for (int s = 0; s < W; ++s) {
      const R d_re = a.re[i * D + i][s];
      if constexpr (kC) {
        const R d_im = a.im[i * D + i][s];
        const R norm = d_re * d_re + d_im * d_im;
        inv.re[i][s] = d_re / norm;
        inv.im[i][s] = -d_im / norm;
      } else {
        inv.re[i][s] = R(1) / d_re;
      }
    }
  }
  internal::Planes<T, D, W> b;
  b.Load(b_tile_soa);
  const bool upper_op = lower == transpose;  // op(A) is upper triangular
  if constexpr (kC) {
    if (unit_diagonal)
      internal::SubstitutePlanes<T, D, W, internal::Planes<T, D, W>>(
          l, nullptr, b, upper_op, conjugate);
    else
      internal::SubstitutePlanes<T, D, W, internal::Planes<T, D, W>>(
          l, &inv, b, upper_op, conjugate);
  } else {
    R inv_flat[D * W];
    for (int i = 0; i < D; ++i)
      for (int s = 0; s < W; ++s) inv_flat[i * W + s] = inv.re[i][s];
    internal::SubstitutePlanes<T, D, W, R>(l, unit_diagonal ? nullptr : inv_flat, b,
                                           upper_op, conjugate);
  }
  b.Store(x_tile_soa);
}

// AoS <-> SoA for one tile: `count` (<= W) consecutive systems of K entries each
// (batch-major, as XLA hands them over). Lanes past `count` get `pad` on entries
// i * (D + 1) (the diagonal, when K = D * D) and zero elsewhere, so that padded
// lanes stay finite and cost nothing.
template <typename T, int K, int W>
inline void PackTile(const T* aos, int count, T* soa, int diagonal_stride = 0) {
  for (int k = 0; k < K; ++k) {
    const bool on_diagonal = diagonal_stride > 0 && k % diagonal_stride == 0;
    for (int s = 0; s < W; ++s)
      soa[k * W + s] = s < count ? aos[static_cast<std::ptrdiff_t>(s) * K + k]
                                 : T(on_diagonal ? 1 : 0);
  }
}

template <typename T, int K, int W>
inline void UnpackTile(const T* soa, int count, T* aos) {
  for (int s = 0; s < count; ++s)
    for (int k = 0; k < K; ++k) aos[static_cast<std::ptrdiff_t>(s) * K + k] = soa[k * W + s];
}

// Batch driver: n systems, A (n, D, D) and b, x (n, D), batch-major (C order).
template <typename T, int D, int W = kDefaultLanes<T>>
inline void CholeskyFactorSolveBatch(const T* a, const T* b, T* x, std::int64_t n) {
  alignas(64) T a_tile[D * D * W];
  alignas(64) T b_tile[D * W];
  alignas(64) T x_tile[D * W];
  for (std::int64_t start = 0; start < n; start += W) {
    const int count = static_cast<int>(n - start < W ? n - start : W);
    PackTile<T, D * D, W>(a + start * D * D, count, a_tile, D + 1);
    PackTile<T, D, W>(b + start * D, count, b_tile);
    CholeskyFactorSolveTile<T, D, W>(a_tile, b_tile, x_tile);
    UnpackTile<T, D, W>(x_tile, count, x + start * D);
  }
}

// Batch driver for triangular solves, same layout as CholeskyFactorSolveBatch.
template <typename T, int D, int W = kDefaultLanes<T>>
inline void TriangularSolveBatch(const T* a, const T* b, T* x, std::int64_t n,
                                 bool lower, bool unit_diagonal, bool transpose = false,
                                 bool conjugate = false) {
  alignas(64) T a_tile[D * D * W];
  alignas(64) T b_tile[D * W];
  alignas(64) T x_tile[D * W];
  for (std::int64_t start = 0; start < n; start += W) {
    const int count = static_cast<int>(n - start < W ? n - start : W);
    PackTile<T, D * D, W>(a + start * D * D, count, a_tile, D + 1);
    PackTile<T, D, W>(b + start * D, count, b_tile);
    TriangularSolveTile<T, D, W>(a_tile, b_tile, x_tile, lower, unit_diagonal, transpose,
                                 conjugate);
    UnpackTile<T, D, W>(x_tile, count, x + start * D);
  }
}

}  // namespace lineax_kernels

#endif  // LINEAX_KERNELS_SMALL_CHOLESKY_H_
