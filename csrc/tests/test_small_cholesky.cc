// Tests of small_cholesky.h against the naive reference of test_common.h: every
// size (static and run-time instantiations), every element type, conj and negate,
// batches of 0, 1, W-1 and W+1 systems, a shared matrix or right-hand side (stride
// 0) through both drivers (fused CholeskySolveRange, and SharedCholesky as the
// handler uses for one matrix with many right-hand sides), the upper triangle never
// read, a matrix that is not positive definite, and two threads at once.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "small_cholesky.h"
#include "test_common.h"

using namespace lxk_test;

namespace {

// A random Hermitian positive definite d x d matrix B B^H + I (negated if
// `negate`), with NaN strictly above the diagonal, which must never be read.
template <typename T>
std::vector<T> RandomDefinite(int d, bool negate, std::vector<T>& full) {
  const std::vector<T> b = RandomVector<T>(int64_t{d} * d);
  full.assign(d * d, T(0));
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j) {
      T acc = i == j ? T(1) : T(0);
      for (int k = 0; k < d; ++k) acc += b[i * d + k] * Conj(b[j * d + k]);
      full[i * d + j] = negate ? -acc : acc;
    }
  }
  std::vector<T> a = full;
  for (int i = 0; i < d; ++i) {
    for (int j = i + 1; j < d; ++j) {
      a[i * d + j] = T(std::numeric_limits<Real<T>>::quiet_NaN());
    }
  }
  return a;
}

template <typename T, int D>
void TestSize(int d) {
  for (bool conj : {false, true}) {
    for (bool negate : {false, true}) {
      for (int64_t n : BatchSizes<T>()) {
        for (int shared = 0; shared < 3; ++shared) {  // none, A, b
          const int64_t na = shared == 1 ? 1 : n, nb = shared == 2 ? 1 : n;
          std::vector<T> a, full, b = RandomVector<T>(std::max<int64_t>(nb, 1) * d);
          for (int64_t s = 0; s < std::max<int64_t>(na, 1); ++s) {
            std::vector<T> f;
            const auto m = RandomDefinite<T>(d, negate, f);
            a.insert(a.end(), m.begin(), m.end());
            full.insert(full.end(), f.begin(), f.end());
          }
          const std::ptrdiff_t as = na == 1 ? 0 : d * d, bs = nb == 1 ? 0 : d;
          const std::string what = std::string("small_cholesky ") + TypeName<T>() +
                                   " D=" + std::to_string(D) + " d=" +
                                   std::to_string(d) + " n=" + std::to_string(n) +
                                   " conj=" + std::to_string(conj) +
                                   " negate=" + std::to_string(negate) +
                                   " shared=" + std::to_string(shared);
          std::vector<T> x(n * d), y(n * d);
          lxk::CholeskySolveRange<T, D>(d, a.data(), as, b.data(), bs, x.data(), 0, n,
                                        conj, negate);
          if (na == 1) {
            lxk::SharedCholesky<T> factor;
            factor.template Factor<D>(d, a.data(), conj, negate);
            lxk::SubstituteRange<T, D>(d, b.data(), bs, y.data(), 0, n, [&](auto* bt) {
              lxk::CholeskySubstituteTile<D>(d, factor.l.data(), factor.inv.data(), bt,
                                             negate);
            });
          }
          for (int64_t s = 0; s < n; ++s) {
            std::vector<Z> m(d * d), bz(d);
            for (int e = 0; e < d * d; ++e) {
              const T v = full[s * as + e];
              m[e] = ToZ(conj ? Conj(v) : v);
            }
            for (int i = 0; i < d; ++i) bz[i] = ToZ(b[s * bs + i]);
            // B B^H + I can be ill conditioned: the backward error only.
            CheckSolution(what + " fused", m, bz, x.data() + s * d, d, false);
            if (na == 1) {
              CheckSolution(what + " shared", m, bz, y.data() + s * d, d, false);
            }
          }
        }
      }
    }
  }
  // Not positive definite (the last pivot negative): a non-finite solution.
  {
    const int64_t n = kLanes<T> + 1;
    std::vector<T> full, a = RandomDefinite<T>(d, false, full);
    a[(d - 1) * d + (d - 1)] = T(-1e3);
    std::vector<T> b = RandomVector<T>(n * d), x(n * d);
    lxk::CholeskySolveRange<T, D>(d, a.data(), 0, b.data(), d, x.data(), 0, n, false,
                                  false);
    CheckNonFinite(std::string("small_cholesky indefinite ") + TypeName<T>() +
                       " D=" + std::to_string(D) + " d=" + std::to_string(d),
                   x.data(), n * d);
  }
  // Two threads on the same operands.
  {
    const int64_t n = 4 * kLanes<T> + 3;
    std::vector<T> a, full, b = RandomVector<T>(n * d);
    for (int64_t s = 0; s < n; ++s) {
      const auto m = RandomDefinite<T>(d, false, full);
      a.insert(a.end(), m.begin(), m.end());
    }
    CheckTwoThreads<T>(std::string("small_cholesky threads ") + TypeName<T>() +
                           " D=" + std::to_string(D) + " d=" + std::to_string(d),
                       n, d, [&](T* x, int64_t begin, int64_t end) {
                         lxk::CholeskySolveRange<T, D>(d, a.data(), d * d, b.data(), d,
                                                       x, begin, end, true, false);
                       });
  }
}

}  // namespace

int main() {
  ForEachType([]<typename T>() {
    ForEachSize([]<int D>(int d) { TestSize<T, D>(d); });
  });
  return Finish("test_small_cholesky");
}
