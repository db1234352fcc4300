// Tests of small_lu.h against the naive reference of test_common.h: every size
// (static and run-time instantiations), every element type, trans and conj, batches
// of 0, 1, W-1 and W+1 systems, a shared matrix or right-hand side (stride 0)
// through both drivers (fused LuSolveRange, and LuFactored as the handler uses for
// one matrix with many right-hand sides), singular input, and two threads at once.
#include <string>
#include <vector>

#include "small_lu.h"
#include "test_common.h"

using namespace lxk_test;

namespace {

// A random d x d matrix; if `dominant`, a row permutation of a diagonally
// dominant one (well conditioned, and the pivoting must undo the permutation).
template <typename T>
std::vector<T> RandomMatrix(int d, bool dominant) {
  std::vector<T> a = RandomVector<T>(int64_t{d} * d);
  if (dominant) {
    for (int i = 0; i < d; ++i) a[i * d + i] += T(Real<T>(d + 1));
    std::vector<int> perm(d);
    for (int i = 0; i < d; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), Rng());
    std::vector<T> p(a.size());
    for (int i = 0; i < d; ++i) {
      for (int j = 0; j < d; ++j) p[i * d + j] = a[perm[i] * d + j];
    }
    a = p;
  }
  return a;
}

// op(A) as a dense long-double matrix.
template <typename T>
std::vector<Z> OpMatrix(const T* a, int d, bool trans, bool conj) {
  std::vector<Z> m(d * d);
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j) {
      const T e = trans ? a[j * d + i] : a[i * d + j];
      m[i * d + j] = ToZ(conj ? Conj(e) : e);
    }
  }
  return m;
}

template <typename T, int D>
void TestSize(int d) {
  for (bool trans : {false, true}) {
    for (bool conj : {false, true}) {
      for (int64_t n : BatchSizes<T>()) {
        for (int shared = 0; shared < 3; ++shared) {  // none, A, b
          for (bool dominant : {true, false}) {
            const int64_t na = shared == 1 ? 1 : n, nb = shared == 2 ? 1 : n;
            std::vector<T> a, b = RandomVector<T>(std::max<int64_t>(nb, 1) * d);
            for (int64_t s = 0; s < std::max<int64_t>(na, 1); ++s) {
              const auto m = RandomMatrix<T>(d, dominant);
              a.insert(a.end(), m.begin(), m.end());
            }
            const std::ptrdiff_t as = na == 1 ? 0 : d * d, bs = nb == 1 ? 0 : d;
            const std::string what = std::string("small_lu ") + TypeName<T>() +
                                     " D=" + std::to_string(D) + " d=" +
                                     std::to_string(d) + " n=" + std::to_string(n) +
                                     " trans=" + std::to_string(trans) +
                                     " conj=" + std::to_string(conj) +
                                     " shared=" + std::to_string(shared);
            std::vector<T> x(n * d);
            lxk::LuSolveRange<T, D>(d, a.data(), as, b.data(), bs, x.data(), 0, n,
                                    trans, conj);
            std::vector<T> y(n * d);
            if (na == 1) {
              lxk::LuFactored<T> factored;
              factored.template Factor<D>(d, a.data(), trans, conj);
              factored.template SolveRange<D>(b.data(), bs, y.data(), 0, n);
            }
            for (int64_t s = 0; s < n; ++s) {
              const auto m = OpMatrix(a.data() + s * as, d, trans, conj);
              std::vector<Z> bz(d);
              for (int i = 0; i < d; ++i) bz[i] = ToZ(b[s * bs + i]);
              CheckSolution(what + " fused", m, bz, x.data() + s * d, d, dominant);
              if (na == 1) {
                CheckSolution(what + " factored", m, bz, y.data() + s * d, d,
                              dominant);
              }
            }
          }
        }
      }
    }
  }
  // Singular: a zero column gives a non-finite solution (both drivers).
  {
    const int64_t n = kLanes<T> + 1;
    std::vector<T> a = RandomMatrix<T>(d, true), b = RandomVector<T>(n * d);
    for (int i = 0; i < d; ++i) a[i * d + d / 2] = T(0);
    std::vector<T> x(n * d), y(n * d);
    lxk::LuSolveRange<T, D>(d, a.data(), 0, b.data(), d, x.data(), 0, n, false, false);
    lxk::LuFactored<T> factored;
    factored.template Factor<D>(d, a.data(), false, false);
    factored.template SolveRange<D>(b.data(), d, y.data(), 0, n);
    const std::string what = std::string("small_lu singular ") + TypeName<T>() +
                             " D=" + std::to_string(D) + " d=" + std::to_string(d);
    CheckNonFinite(what + " fused", x.data(), n * d);
    CheckNonFinite(what + " factored", y.data(), n * d);
  }
  // Two threads on the same operands.
  {
    const int64_t n = 4 * kLanes<T> + 3;
    std::vector<T> a = RandomVector<T>(n * d * d), b = RandomVector<T>(n * d);
    const std::string what = std::string("small_lu threads ") + TypeName<T>() +
                             " D=" + std::to_string(D) + " d=" + std::to_string(d);
    CheckTwoThreads<T>(what + " fused", n, d, [&](T* x, int64_t begin, int64_t end) {
      lxk::LuSolveRange<T, D>(d, a.data(), d * d, b.data(), d, x, begin, end, true,
                              true);
    });
    lxk::LuFactored<T> factored;
    factored.template Factor<D>(d, a.data(), false, true);
    CheckTwoThreads<T>(what + " factored", n, d,
                       [&](T* x, int64_t begin, int64_t end) {
                         factored.template SolveRange<D>(b.data(), d, x, begin, end);
                       });
  }
}

}  // namespace

int main() {
  ForEachType([]<typename T>() {
    ForEachSize([]<int D>(int d) { TestSize<T, D>(d); });
  });
  return Finish("test_small_lu");
}
