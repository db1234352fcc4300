// SIMD-across-systems building blocks shared by every kernel of lineax-kernels.
//
// A kernel works on a *tile* of W independent systems at once: each entry of the
// system (a matrix entry, a right-hand-side entry) is one vector of W lanes, lane s
// belonging to system s of the tile. The arithmetic is then written once, for one
// system, on these lane vectors, and the compiler emits SIMD instructions for it.
// Real entries are one vector; complex entries are a pair (re, im) of vectors
// ("split complex"), so complex arithmetic vectorises the same way.
//
// No XLA type appears here: this header is plain C++17 with GCC/Clang vector
// extensions.
#ifndef LINEAX_KERNELS_SIMD_H_
#define LINEAX_KERNELS_SIMD_H_

#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace lxk {

// The vector width follows the ISA the library is compiled for (by default the
// installing machine's, -march=native). On AVX2-only machines a 64-byte vector
// does not fit one register and GCC 12 scalarises its selects, so 64 bytes are used
// only with AVX-512.
#if defined(__AVX512F__) && !defined(LXK_NO_AVX512)
inline constexpr int kVecBytes = 64;
#elif defined(__AVX__)
inline constexpr int kVecBytes = 32;
#else
inline constexpr int kVecBytes = 16;
#endif

#define LXK_INLINE inline __attribute__((always_inline))

template <typename R>
struct VecOf {
  typedef R type __attribute__((vector_size(kVecBytes)));
};

template <typename R>
using Vec = typename VecOf<R>::type;

// A split-complex lane vector.
template <typename V>
struct Cplx {
  V re, im;
};

// Per scalar type T (float, double, std::complex<float>, std::complex<double>):
// its real type R, lane vector V, tile element E (V or Cplx<V>) and width W.
template <typename T>
struct Lanes {
  using R = T;
  static constexpr bool kComplex = false;
  using V = Vec<R>;
  using E = V;
  static constexpr int W = kVecBytes / sizeof(R);
};

template <typename Rt>
struct Lanes<std::complex<Rt>> {
  using R = Rt;
  static constexpr bool kComplex = true;
  using V = Vec<R>;
  using E = Cplx<V>;
  static constexpr int W = kVecBytes / sizeof(R);
};

template <typename V>
LXK_INLINE V Splat(typename std::remove_reference<decltype(V{}[0])>::type x) {
  return V{} + x;
}

// |x| lane-wise; NaN stays NaN.
template <typename V>
LXK_INLINE V Abs(V x) {
  return x < 0 ? -x : x;
}

// ---- Real elements -------------------------------------------------------------
template <typename V>
LXK_INLINE V Abs1(V x) {
  return Abs(x);
}
template <typename V>
LXK_INLINE V Mul(V a, V b) {
  return a * b;
}
// c - a * b
template <typename V>
LXK_INLINE V SubMul(V c, V a, V b) {
  return c - a * b;
}
template <typename V>
LXK_INLINE V Recip(V a) {
  return V{} + 1 / a;
}
template <typename V, typename M>
LXK_INLINE V Select(M m, V a, V b) {
  return m ? a : b;
}
template <typename V>
LXK_INLINE V Conj(V a) {
  return a;
}
// 0 for a finite entry, NaN for inf or NaN: summed over the input and added to
// the output, it makes every non-finite input give a non-finite output.
template <typename V>
LXK_INLINE V NonFinite(V a) {
  return a - a;
}
template <typename V>
LXK_INLINE V AddReal(V a, V r) {
  return a + r;
}
// The real part; |a|^2; a * r for a real lane vector r; -a.
template <typename V>
LXK_INLINE V Re(V a) {
  return a;
}
template <typename V>
LXK_INLINE V AbsSq(V a) {
  return a * a;
}
template <typename V>
LXK_INLINE V Scale(V a, V r) {
  return a * r;
}
template <typename V>
LXK_INLINE V Neg(V a) {
  return -a;
}
// Lane-wise square root; a negative or NaN lane gives NaN. (With -fno-math-errno,
// set in CMakeLists.txt, std::sqrt needs no errno and this vectorises to one
// square-root instruction.)
template <typename V>
LXK_INLINE V Sqrt(V a) {
  constexpr int kN = sizeof(V) / sizeof(a[0]);
  V r;
  for (int s = 0; s < kN; ++s) r[s] = std::sqrt(a[s]);
  return r;
}

// ---- Complex elements ----------------------------------------------------------
// LAPACK's cabs1: |Re| + |Im|, the magnitude ?getrf and ?gttrf pivot by.
template <typename V>
LXK_INLINE V Abs1(Cplx<V> x) {
  return Abs(x.re) + Abs(x.im);
}
template <typename V>
LXK_INLINE Cplx<V> Mul(Cplx<V> a, Cplx<V> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
template <typename V>
LXK_INLINE Cplx<V> SubMul(Cplx<V> c, Cplx<V> a, Cplx<V> b) {
  return {c.re - (a.re * b.re - a.im * b.im), c.im - (a.re * b.im + a.im * b.re)};
}
// 1 / (a + ib) by Smith's algorithm (scaled by the larger component, so that
// entries near the overflow or underflow thresholds keep full range), branch-free.
// A zero pivot gives NaN.
template <typename V>
LXK_INLINE Cplx<V> Recip(Cplx<V> z) {
  auto re_big = Abs(z.re) >= Abs(z.im);
  V big = re_big ? z.re : z.im;
  V small = re_big ? z.im : z.re;
  V ratio = small / big;
  V inv = 1 / (big + small * ratio);
  return {re_big ? inv : ratio * inv, re_big ? -ratio * inv : -inv};
}
template <typename V, typename M>
LXK_INLINE Cplx<V> Select(M m, Cplx<V> a, Cplx<V> b) {
  return {m ? a.re : b.re, m ? a.im : b.im};
}
template <typename V>
LXK_INLINE Cplx<V> Conj(Cplx<V> a) {
  return {a.re, -a.im};
}
template <typename V>
LXK_INLINE V NonFinite(Cplx<V> a) {
  return (a.re - a.re) + (a.im - a.im);
}
template <typename V>
LXK_INLINE Cplx<V> AddReal(Cplx<V> a, V r) {
  return {a.re + r, a.im + r};
}
template <typename V>
LXK_INLINE V Re(Cplx<V> a) {
  return a.re;
}
template <typename V>
LXK_INLINE V AbsSq(Cplx<V> a) {
  return a.re * a.re + a.im * a.im;
}
template <typename V>
LXK_INLINE Cplx<V> Scale(Cplx<V> a, V r) {
  return {a.re * r, a.im * r};
}
template <typename V>
LXK_INLINE Cplx<V> Neg(Cplx<V> a) {
  return {-a.re, -a.im};
}

// ---- Moving systems between the caller's layout and a tile ------------------------
// Systems are stored one after another (system s at `base + s * stride`, stride 0
// for one operand broadcast over the batch), entries of a system row-major. These
// copy `count` entries of `lanes` systems into / out of tile elements, entry e of
// the tile reading entry `index(e)` of each system. Missing lanes (a partial last
// tile) are filled with `fill`.
template <int N, typename T, typename Index>
LXK_INLINE void LoadTileN(const T* base, std::ptrdiff_t stride, int lanes, int count,
                          Index index, bool conj, typename Lanes<T>::R fill,
                          typename Lanes<T>::E* out) {
  using L = Lanes<T>;
  if constexpr (N > 0) lanes = N;
  for (int e = 0; e < count; ++e) {
    const T* src = base + index(e);
    if constexpr (L::kComplex) {
      typename L::V re = Splat<typename L::V>(fill), im{};
      for (int s = 0; s < lanes; ++s) {
        re[s] = src[s * stride].real();
        im[s] = src[s * stride].imag();
      }
      out[e] = {re, conj ? -im : im};
    } else {
      (void)conj;
      typename L::V v = Splat<typename L::V>(fill);
      for (int s = 0; s < lanes; ++s) v[s] = src[s * stride];
      out[e] = v;
    }
  }
}

template <typename T, typename Index>
LXK_INLINE void LoadTile(const T* base, std::ptrdiff_t stride, int lanes, int count,
                         Index index, bool conj, typename Lanes<T>::R fill,
                         typename Lanes<T>::E* out) {
  // Full tiles (all but the last) with a constant lane count, which the
  // compiler turns into straight-line loads.
  if (lanes == Lanes<T>::W) {
    LoadTileN<Lanes<T>::W>(base, stride, lanes, count, index, conj, fill, out);
  } else {
    LoadTileN<0>(base, stride, lanes, count, index, conj, fill, out);
  }
}

template <int N, typename T>
LXK_INLINE void StoreTileN(const typename Lanes<T>::E* in, int lanes, int count,
                           std::ptrdiff_t stride, T* base) {
  using L = Lanes<T>;
  if constexpr (N > 0) lanes = N;
  for (int e = 0; e < count; ++e) {
    T* dst = base + e;
    for (int s = 0; s < lanes; ++s) {
      if constexpr (L::kComplex) {
        dst[s * stride] = T(in[e].re[s], in[e].im[s]);
      } else {
        dst[s * stride] = in[e][s];
      }
    }
  }
}

template <typename T>
LXK_INLINE void StoreTile(const typename Lanes<T>::E* in, int lanes, int count,
                          std::ptrdiff_t stride, T* base) {
  if (lanes == Lanes<T>::W) {
    StoreTileN<Lanes<T>::W>(in, lanes, count, stride, base);
  } else {
    StoreTileN<0>(in, lanes, count, stride, base);
  }
}

// LoadTile indices: entry e of a system is its entry e, or entry table[e].
struct Identity {
  LXK_INLINE std::ptrdiff_t operator()(int e) const { return e; }
};
struct Offsets {
  const std::ptrdiff_t* table;
  LXK_INLINE std::ptrdiff_t operator()(int e) const { return table[e]; }
};

// Lane 0 of a tile element broadcast to every lane (a tile loaded from one system,
// made into a tile of W copies of it).
template <typename V>
LXK_INLINE V BroadcastLane0(V a) {
  return V{} + a[0];
}
template <typename V>
LXK_INLINE Cplx<V> BroadcastLane0(Cplx<V> a) {
  return {V{} + a.re[0], V{} + a.im[0]};
}

// One scalar broadcast to every lane, as a tile element.
template <typename T>
LXK_INLINE typename Lanes<T>::E SplatElem(T x) {
  using L = Lanes<T>;
  if constexpr (L::kComplex) {
    return {Splat<typename L::V>(x.real()), Splat<typename L::V>(x.imag())};
  } else {
    return Splat<typename L::V>(x);
  }
}

// Sum of NonFinite over n entries: 0, or NaN if any entry is inf or NaN.
template <typename E>
LXK_INLINE auto NonFiniteSum(int n, const E* x) {
  decltype(NonFinite(x[0])) acc{};
#pragma GCC unroll 32
  for (int e = 0; e < n; ++e) acc += NonFinite(x[e]);
  return acc;
}

}  // namespace lxk

#endif  // LINEAX_KERNELS_SIMD_H_
