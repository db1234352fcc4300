// Standalone test and timing of small_cholesky.h and small_triangular.h:
//   g++ -O3 -march=native -fno-math-errno -std=c++20 csrc/test_small_cholesky.cc \
//     -o /tmp/t && /tmp/t
// Compares every kernel with a simple scalar reference for D = 1..16 and all four
// types (random Hermitian positive definite A, random triangular A), through both
// the static-size (D <= 8) and the run-time-size (D = 0) instantiations, checks
// that non-positive-definite input gives non-finite x, then times
// CholeskySolveRange (tiles loaded from and stored to the caller's layout) in ns
// per system for D = 2, 4, 8, 16 at N * D^2 ~ 4e6.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <typeinfo>
#include <utility>
#include <vector>

#include "small_cholesky.h"

inline constexpr int kMaxStaticSize = 8;  // as in ffi_common.h

template <typename T>
using Real = typename lxk::Lanes<T>::R;

// The batch drivers, with the static size for D <= kMaxStaticSize (as the FFI
// handlers dispatch) and the run-time size above.
template <typename T, int D>
void CholeskyBatch(const T* a, const T* b, T* x, std::int64_t n, bool conj = false) {
  constexpr int S = D <= kMaxStaticSize ? D : 0;
  lxk::CholeskySolveRange<T, S>(D, a, D * D, b, D, x, 0, n, conj, false);
}

template <typename T, int D>
void TriangularBatch(const T* a, const T* b, T* x, std::int64_t n, bool lower,
                     bool unit, bool transpose, bool conjugate) {
  constexpr int S = D <= kMaxStaticSize ? D : 0;
  if (unit)
    lxk::TriangularSolveRange<T, S, true>(D, a, D * D, b, D, x, 0, n, !lower,
                                          transpose, conjugate);
  else
    lxk::TriangularSolveRange<T, S, false>(D, a, D * D, b, D, x, 0, n, !lower,
                                           transpose, conjugate);
}

template <typename T>
T Random(std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  if constexpr (lxk::Lanes<T>::kComplex)
    return T(Real<T>(normal(rng)), Real<T>(normal(rng)));
  else
    return T(normal(rng));
}

template <typename T>
T Conj(T x) {
  if constexpr (lxk::Lanes<T>::kComplex)
    return std::conj(x);
  else
    return x;
}

// Scalar reference in the same precision: textbook Cholesky and substitutions.
template <typename T>
std::vector<T> ReferenceCholeskySolve(int d, const T* a, const T* b) {
  std::vector<T> l(d * d, T(0)), y(d), x(d);
  for (int j = 0; j < d; ++j) {
    Real<T> pivot = std::real(a[j * d + j]);
    for (int k = 0; k < j; ++k) pivot -= std::norm(l[j * d + k]);
    l[j * d + j] = T(std::sqrt(pivot));
    for (int i = j + 1; i < d; ++i) {
      T acc = a[i * d + j];
      for (int k = 0; k < j; ++k) acc -= l[i * d + k] * Conj(l[j * d + k]);
      l[i * d + j] = acc / l[j * d + j];
    }
  }
  for (int i = 0; i < d; ++i) {
    T acc = b[i];
    for (int j = 0; j < i; ++j) acc -= l[i * d + j] * y[j];
    y[i] = acc / l[i * d + i];
  }
  for (int i = d - 1; i >= 0; --i) {
    T acc = y[i];
    for (int j = i + 1; j < d; ++j) acc -= Conj(l[j * d + i]) * x[j];
    x[i] = acc / Conj(l[i * d + i]);
  }
  return x;
}

// op(A) x = b for triangular A, by dense op(A) and ordered substitution.
template <typename T>
std::vector<T> ReferenceTriangularSolve(int d, const T* a, const T* b, bool lower,
                                        bool unit, bool transpose, bool conjugate) {
  std::vector<T> op(d * d, T(0));
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      const bool in = lower ? j <= i : j >= i;
      T v = in ? a[i * d + j] : T(0);
      if (unit && i == j) v = T(1);
      if (conjugate) v = Conj(v);
      op[transpose ? j * d + i : i * d + j] = v;
    }
  const bool op_lower = lower != transpose;
  std::vector<T> x(d);
  for (int step = 0; step < d; ++step) {
    const int i = op_lower ? step : d - 1 - step;
    T acc = b[i];
    for (int j = 0; j < d; ++j)
      if (j != i && (op_lower ? j < i : j > i)) acc -= op[i * d + j] * x[j];
    x[i] = acc / op[i * d + i];
  }
  return x;
}

template <typename T>
double Tolerance() {
  return sizeof(Real<T>) == 4 ? 2e-3 : 1e-10;
}

int failures = 0;

template <typename T, int D>
void TestOne(std::mt19937_64& rng) {
  constexpr int W = lxk::Lanes<T>::W;
  const int n = 2 * W + 3;  // two full tiles and a padded one
  std::vector<T> a(n * D * D), b(n * D), x(n * D);
  for (int s = 0; s < n; ++s) {
    // A = M M^H / D + I, with garbage (NaN) above the diagonal: never read.
    std::vector<T> m(D * D);
    for (auto& v : m) v = Random<T>(rng);
    for (int i = 0; i < D; ++i)
      for (int j = 0; j < D; ++j) {
        T acc = (i == j) ? T(1) : T(0);
        for (int k = 0; k < D; ++k) acc += m[i * D + k] * Conj(m[j * D + k]) / T(D);
        a[(s * D + i) * D + j] = j > i ? T(NAN) : acc;
      }
    for (int i = 0; i < D; ++i) b[s * D + i] = Random<T>(rng);
  }
  CholeskyBatch<T, D>(a.data(), b.data(), x.data(), n);
  double worst = 0;
  for (int s = 0; s < n; ++s) {
    auto ref = ReferenceCholeskySolve(D, &a[s * D * D], &b[s * D]);
    for (int i = 0; i < D; ++i)
      worst = std::max(worst, double(std::abs(ref[i] - x[s * D + i]) /
                                     (1 + std::abs(ref[i]))));
  }
  // With conj(A) (= A^T), on the first tile.
  CholeskyBatch<T, D>(a.data(), b.data(), x.data(), W, true);
  for (int s = 0; s < W; ++s) {
    std::vector<T> as(D * D), bs(D);
    for (int k = 0; k < D * D; ++k) as[k] = Conj(a[s * D * D + k]);
    for (int k = 0; k < D; ++k) bs[k] = b[s * D + k];
    auto ref = ReferenceCholeskySolve(D, as.data(), bs.data());
    for (int i = 0; i < D; ++i)
      worst = std::max(worst, double(std::abs(ref[i] - x[s * D + i]) /
                                     (1 + std::abs(ref[i]))));
  }
  // Triangular solves, all flag combinations; the other triangle is NaN.
  for (int flags = 0; flags < 16; ++flags) {
    const bool lower = flags & 1, unit = flags & 2, transpose = flags & 4,
               conjugate = flags & 8;
    std::vector<T> t(n * D * D);
    for (int s = 0; s < n; ++s)
      for (int i = 0; i < D; ++i)
        for (int j = 0; j < D; ++j) {
          const bool in = lower ? j <= i : j >= i;
          T v = Random<T>(rng) / T(std::sqrt(Real<T>(D)));
          if (i == j) v += T(3);
          if (i == j && unit) v = T(NAN);
          t[(s * D + i) * D + j] = in ? v : T(NAN);
        }
    TriangularBatch<T, D>(t.data(), b.data(), x.data(), n, lower, unit, transpose,
                          conjugate);
    for (int s = 0; s < n; ++s) {
      auto ref = ReferenceTriangularSolve(D, &t[s * D * D], &b[s * D], lower, unit,
                                          transpose, conjugate);
      for (int i = 0; i < D; ++i)
        worst = std::max(worst, double(std::abs(ref[i] - x[s * D + i]) /
                                       (1 + std::abs(ref[i]))));
    }
  }
  // Not positive definite: every x must be non-finite.
  bool all_nonfinite = true;
  for (int kind = 0; kind < 4; ++kind) {
    std::vector<T> bad(W * D * D, T(0)), rhs(W * D, T(1)), out(W * D);
    for (int s = 0; s < W; ++s)
      for (int i = 0; i < D; ++i) {
        T diag = T(1);
        if (i == D - 1) diag = kind == 0 ? T(0) : kind == 1 ? T(-1) : kind == 2 ? T(NAN) : T(-1e-30);
        bad[(s * D + i) * D + i] = diag;
      }
    CholeskyBatch<T, D>(bad.data(), rhs.data(), out.data(), W);
    for (int s = 0; s < W; ++s) {
      bool finite = true;
      for (int i = 0; i < D; ++i)
        finite = finite && std::isfinite(std::real(out[s * D + i])) &&
                 std::isfinite(std::imag(out[s * D + i]));
      all_nonfinite = all_nonfinite && !finite;
    }
  }
  const bool ok = worst <= Tolerance<T>() && all_nonfinite;
  if (!ok) {
    ++failures;
    std::printf("FAIL D=%d %s: worst error %.3g, non-finite on bad input: %d\n", D,
                typeid(T).name(), worst, int(all_nonfinite));
  }
}

template <typename T, int... Ds>
void TestAll(std::mt19937_64& rng, std::integer_sequence<int, Ds...>) {
  (TestOne<T, Ds + 1>(rng), ...);
}

template <typename T, int D>
void Time(const char* name) {
  const std::int64_t n = static_cast<std::int64_t>(4e6 / (D * D));
  std::mt19937_64 rng(0);
  std::vector<T> a(n * D * D), b(n * D), x(n * D);
  for (std::int64_t s = 0; s < n; ++s) {
    for (int i = 0; i < D; ++i) {
      for (int j = 0; j <= i; ++j) a[(s * D + i) * D + j] = Random<T>(rng) / T(4 * D);
      a[(s * D + i) * D + i] = T(2);
      b[s * D + i] = Random<T>(rng);
    }
  }
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    auto start = std::chrono::steady_clock::now();
    CholeskyBatch<T, D>(a.data(), b.data(), x.data(), n);
    auto stop = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(stop - start).count());
  }
  volatile T sink = x[n * D - 1];
  (void)sink;
  std::printf("%-22s D=%2d N=%8lld: %7.1f ns/system\n", name, D,
              static_cast<long long>(n), 1e9 * best / n);
}

template <typename T>
void TimeAll(const char* name) {
  Time<T, 2>(name);
  Time<T, 4>(name);
  Time<T, 8>(name);
  Time<T, 16>(name);
}

int main() {
  std::mt19937_64 rng(20240611);
  TestAll<float>(rng, std::make_integer_sequence<int, 16>{});
  TestAll<double>(rng, std::make_integer_sequence<int, 16>{});
  TestAll<std::complex<float>>(rng, std::make_integer_sequence<int, 16>{});
  TestAll<std::complex<double>>(rng, std::make_integer_sequence<int, 16>{});
  std::printf("%s: %d failures (D = 1..16, four types)\n", failures ? "FAILED" : "OK",
              failures);
  TimeAll<float>("float");
  TimeAll<double>("double");
  TimeAll<std::complex<float>>("complex<float>");
  TimeAll<std::complex<double>>("complex<double>");
  return failures ? 1 : 0;
}
