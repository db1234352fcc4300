// What the standalone kernel tests share (csrc/tests/test_*.cc, built and run by
// scripts/sanitize.sh): random operands, a naive dense reference solve in long
// double, the residual and error checks, the batch sizes and system sizes every
// kernel is tested at, and running a batch on two threads at once. No XLA types:
// the tests call the templates of csrc/<kernel>.h directly.
#ifndef LINEAX_KERNELS_TESTS_TEST_COMMON_H_
#define LINEAX_KERNELS_TESTS_TEST_COMMON_H_

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "simd.h"

namespace lxk_test {

template <typename T>
using Real = typename lxk::Lanes<T>::R;
template <typename T>
inline constexpr bool kComplex = lxk::Lanes<T>::kComplex;
template <typename T>
inline constexpr int kLanes = lxk::Lanes<T>::W;

// As ffi_common.h: sizes up to this have a static (straight-line) instantiation.
inline constexpr int kMaxStaticSize = 8;

// The system sizes every kernel is tested at: each static instantiation, and the
// run-time-size loop just above it and at 16.
inline const std::vector<int> kSizes = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16};

// Batch sizes: empty, one system, a partial SIMD tile, one full tile and a
// partial one.
template <typename T>
std::vector<int64_t> BatchSizes() {
  return {0, 1, kLanes<T> - 1, kLanes<T> + 1};
}

template <typename T>
const char* TypeName() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, double>) return "float64";
  if constexpr (std::is_same_v<T, std::complex<float>>) return "complex64";
  if constexpr (std::is_same_v<T, std::complex<double>>) return "complex128";
}

using Z = std::complex<long double>;

template <typename T>
Z ToZ(T v) {
  if constexpr (kComplex<T>) {
    return Z(v.real(), v.imag());
  } else {
    return Z(v, 0);
  }
}

template <typename T>
T Conj(T v) {
  if constexpr (kComplex<T>) {
    return std::conj(v);
  } else {
    return v;
  }
}

inline std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng(20261202);
  return rng;
}

// A standard normal entry (complex: independent real and imaginary parts).
template <typename T>
T Random() {
  std::normal_distribution<double> normal;
  if constexpr (kComplex<T>) {
    return T(Real<T>(normal(Rng())), Real<T>(normal(Rng())));
  } else {
    return T(normal(Rng()));
  }
}

template <typename T>
std::vector<T> RandomVector(int64_t count) {
  std::vector<T> v(count);
  for (auto& e : v) e = Random<T>();
  return v;
}

// Solves m x = b (m: d x d row-major) by Gaussian elimination with partial
// pivoting in long double.
inline std::vector<Z> ReferenceSolve(std::vector<Z> m, std::vector<Z> b, int d) {
  for (int k = 0; k < d; ++k) {
    int p = k;
    for (int r = k + 1; r < d; ++r) {
      if (std::abs(m[r * d + k]) > std::abs(m[p * d + k])) p = r;
    }
    for (int j = 0; j < d; ++j) std::swap(m[k * d + j], m[p * d + j]);
    std::swap(b[k], b[p]);
    for (int r = k + 1; r < d; ++r) {
      const Z l = m[r * d + k] / m[k * d + k];
      for (int j = k; j < d; ++j) m[r * d + j] -= l * m[k * d + j];
      b[r] -= l * b[k];
    }
  }
  for (int i = d - 1; i >= 0; --i) {
    for (int j = i + 1; j < d; ++j) b[i] -= m[i * d + j] * b[j];
    b[i] /= m[i * d + i];
  }
  return b;
}

// Counts and prints failed checks.
struct Report {
  int64_t checks = 0, failures = 0;

  void Fail(const std::string& what) {
    if (++failures <= 20) std::printf("FAIL %s\n", what.c_str());
  }
};

inline Report& Results() {
  static Report report;
  return report;
}

inline long double MaxAbs(const std::vector<Z>& v) {
  long double m = 0;
  for (const Z& e : v) m = std::max(m, std::abs(e));
  return m;
}

// Checks one solution x (d entries) of m x = b, m dense d x d: the normwise
// backward error |m x - b| / (|m| |x| + |b|) (infinity norms) within a few d eps
// always, and if `forward` (m well conditioned by construction) the error
// against the reference solution within 100 d eps.
template <typename T>
void CheckSolution(const std::string& what, const std::vector<Z>& m,
                   const std::vector<Z>& b, const T* x, int d, bool forward) {
  const long double eps = std::numeric_limits<Real<T>>::epsilon();
  auto& report = Results();
  ++report.checks;
  std::vector<Z> xz(d), residual(d);
  long double norm_m = 0;
  for (int i = 0; i < d; ++i) xz[i] = ToZ(x[i]);
  for (int i = 0; i < d; ++i) {
    Z acc = -b[i];
    long double row = 0;
    for (int j = 0; j < d; ++j) {
      acc += m[i * d + j] * xz[j];
      row += std::abs(m[i * d + j]);
    }
    residual[i] = acc;
    norm_m = std::max(norm_m, row);
  }
  for (const Z& e : xz) {
    if (!std::isfinite(e.real()) || !std::isfinite(e.imag())) {
      report.Fail(what + ": non-finite solution");
      return;
    }
  }
  const long double backward = MaxAbs(residual) / (norm_m * MaxAbs(xz) + MaxAbs(b));
  if (!(backward <= 20 * d * eps)) {
    report.Fail(what + ": backward error " + std::to_string(double(backward)));
  }
  if (forward) {
    const auto ref = ReferenceSolve(m, b, d);
    std::vector<Z> diff(d);
    for (int i = 0; i < d; ++i) diff[i] = xz[i] - ref[i];
    const long double error = MaxAbs(diff) / MaxAbs(ref);
    if (!(error <= 100 * d * eps)) {
      report.Fail(what + ": error against the reference " +
                  std::to_string(double(error)));
    }
  }
}

// Checks that every entry of x (count entries) is inf or NaN somewhere.
template <typename T>
void CheckNonFinite(const std::string& what, const T* x, int count) {
  auto& report = Results();
  ++report.checks;
  bool any = false;
  for (int i = 0; i < count; ++i) {
    const Z e = ToZ(x[i]);
    any = any || !std::isfinite(e.real()) || !std::isfinite(e.imag());
  }
  if (!any) report.Fail(what + ": expected a non-finite solution");
}

// Runs solve(x_one, 0, n) on this thread, then solve(x_a, 0, n) and
// solve(x_b, ...) split at a tile boundary, on two threads at once, and checks
// that both give x_one exactly.
template <typename T, typename Solve>
void CheckTwoThreads(const std::string& what, int64_t n, int d, Solve solve) {
  auto& report = Results();
  ++report.checks;
  std::vector<T> one(n * d), a(n * d), b(n * d);
  solve(one.data(), int64_t{0}, n);
  const int64_t half = (n / 2 / kLanes<T>) * kLanes<T>;
  std::thread first([&] { solve(a.data(), int64_t{0}, n); });
  std::thread second([&] {
    solve(b.data(), int64_t{0}, half);
    solve(b.data(), half, n);
  });
  first.join();
  second.join();
  for (int64_t i = 0; i < n * d; ++i) {
    // Bitwise comparison: NaN never appears here.
    if (!(ToZ(a[i]) == ToZ(one[i])) || !(ToZ(b[i]) == ToZ(one[i]))) {
      report.Fail(what + ": two threads disagree with one");
      return;
    }
  }
}

// Calls f.template operator()<T>() for every element type.
template <typename F>
void ForEachType(F&& f) {
  f.template operator()<float>();
  f.template operator()<double>();
  f.template operator()<std::complex<float>>();
  f.template operator()<std::complex<double>>();
}

// Calls f.template operator()<D>(d) for the static instantiation D = d (if
// d <= kMaxStaticSize) and for the run-time-size one (D = 0), as the handlers
// dispatch; for every size of kSizes.
template <int D = 1, typename F>
void ForEachStaticSize(int d, F&& f) {
  if constexpr (D <= kMaxStaticSize) {
    if (d == D) {
      f.template operator()<D>(d);
    } else {
      ForEachStaticSize<D + 1>(d, f);
    }
  }
}

template <typename F>
void ForEachSize(F&& f) {
  for (int d : kSizes) {
    ForEachStaticSize(d, f);
    f.template operator()<0>(d);
  }
}

inline int Finish(const char* name) {
  const auto& report = Results();
  std::printf("%s: %lld checks, %lld failures\n", name,
              static_cast<long long>(report.checks),
              static_cast<long long>(report.failures));
  return report.failures == 0 ? 0 : 1;
}

}  // namespace lxk_test

#endif  // LINEAX_KERNELS_TESTS_TEST_COMMON_H_
