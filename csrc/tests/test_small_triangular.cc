// Tests of small_triangular.h against the naive reference of test_common.h: every
// size (static and run-time instantiations), every element type, upper, unit,
// trans and conj, batches of 0, 1, W-1 and W+1 systems, a shared matrix or
// right-hand side (stride 0) through both drivers (TriangularSolveRange, and
// SharedTriangle as the handler uses for one matrix with many right-hand sides),
// the other triangle (and a unit diagonal) never read, a zero on the diagonal, and
// two threads at once.
#include <limits>
#include <string>
#include <vector>

#include "small_triangular.h"
#include "test_common.h"

using namespace lxk_test;

namespace {

// A random well-conditioned triangular d x d matrix (diagonal of modulus >= 1,
// off-diagonal entries of size 1/d) with NaN in the other triangle, and on the
// diagonal if `unit`; `full` gets the matrix as it is to be read.
template <typename T>
std::vector<T> RandomTriangle(int d, bool upper, bool unit, std::vector<T>& full) {
  const T nan = T(std::numeric_limits<Real<T>>::quiet_NaN());
  std::vector<T> a(d * d);
  full.assign(d * d, T(0));
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j) {
      const bool inside = upper ? j >= i : j <= i;
      if (i == j) {
        const T r = Random<T>();
        const Real<T> mag = std::abs(r);
        const T v = unit ? T(1) : mag == 0 ? T(1) : r * T((1 + mag) / mag);
        full[i * d + j] = v;
        a[i * d + j] = unit ? nan : v;
      } else if (inside) {
        const T v = Random<T>() / T(Real<T>(d));
        full[i * d + j] = v;
        a[i * d + j] = v;
      } else {
        a[i * d + j] = nan;
      }
    }
  }
  return a;
}

template <typename T, int D, bool Unit>
void TestFlags(int d) {
  for (bool upper : {false, true}) {
    for (bool trans : {false, true}) {
      for (bool conj : {false, true}) {
        for (int64_t n : BatchSizes<T>()) {
          for (int shared = 0; shared < 3; ++shared) {  // none, A, b
            const int64_t na = shared == 1 ? 1 : n, nb = shared == 2 ? 1 : n;
            std::vector<T> a, full, b = RandomVector<T>(std::max<int64_t>(nb, 1) * d);
            for (int64_t s = 0; s < std::max<int64_t>(na, 1); ++s) {
              std::vector<T> f;
              const auto m = RandomTriangle<T>(d, upper, Unit, f);
              a.insert(a.end(), m.begin(), m.end());
              full.insert(full.end(), f.begin(), f.end());
            }
            const std::ptrdiff_t as = na == 1 ? 0 : d * d, bs = nb == 1 ? 0 : d;
            const std::string what =
                std::string("small_triangular ") + TypeName<T>() + " D=" +
                std::to_string(D) + " d=" + std::to_string(d) + " n=" +
                std::to_string(n) + " upper=" + std::to_string(upper) +
                " unit=" + std::to_string(Unit) + " trans=" + std::to_string(trans) +
                " conj=" + std::to_string(conj) + " shared=" + std::to_string(shared);
            std::vector<T> x(n * d), y(n * d);
            lxk::TriangularSolveRange<T, D, Unit>(d, a.data(), as, b.data(), bs,
                                                  x.data(), 0, n, upper, trans, conj);
            if (na == 1) {
              // As the handler does: op(A) upper triangular is a back substitution.
              const bool back = upper != trans;
              lxk::SharedTriangle<T> tri(d, a.data(), upper, conj);
              lxk::SubstituteRange<T, D>(d, b.data(), bs, y.data(), 0, n, [&](auto* bt) {
                if (back) {
                  lxk::BackTile<D, Unit, false>(d, tri.l.data(), tri.inv.data(), bt);
                } else {
                  lxk::ForwardTile<D, Unit>(d, tri.l.data(), tri.inv.data(), bt);
                }
              });
            }
            for (int64_t s = 0; s < n; ++s) {
              std::vector<Z> m(d * d), bz(d);
              for (int i = 0; i < d; ++i) {
                for (int j = 0; j < d; ++j) {
                  const T v = trans ? full[s * as + j * d + i] : full[s * as + i * d + j];
                  m[i * d + j] = ToZ(conj ? Conj(v) : v);
                }
              }
              for (int i = 0; i < d; ++i) bz[i] = ToZ(b[s * bs + i]);
              CheckSolution(what, m, bz, x.data() + s * d, d, true);
              if (na == 1) CheckSolution(what + " shared", m, bz, y.data() + s * d, d, true);
            }
          }
        }
      }
    }
  }
}

template <typename T, int D>
void TestSize(int d) {
  TestFlags<T, D, false>(d);
  TestFlags<T, D, true>(d);
  // A zero on the diagonal: a non-finite solution.
  {
    const int64_t n = kLanes<T> + 1;
    std::vector<T> full, a = RandomTriangle<T>(d, false, false, full);
    a[(d / 2) * d + d / 2] = T(0);
    std::vector<T> b = RandomVector<T>(n * d), x(n * d);
    lxk::TriangularSolveRange<T, D, false>(d, a.data(), 0, b.data(), d, x.data(), 0, n,
                                           false, false, false);
    CheckNonFinite(std::string("small_triangular singular ") + TypeName<T>() +
                       " D=" + std::to_string(D) + " d=" + std::to_string(d),
                   x.data(), n * d);
  }
  // Two threads on the same operands.
  {
    const int64_t n = 4 * kLanes<T> + 3;
    std::vector<T> a, full, b = RandomVector<T>(n * d);
    for (int64_t s = 0; s < n; ++s) {
      const auto m = RandomTriangle<T>(d, true, false, full);
      a.insert(a.end(), m.begin(), m.end());
    }
    CheckTwoThreads<T>(std::string("small_triangular threads ") + TypeName<T>() +
                           " D=" + std::to_string(D) + " d=" + std::to_string(d),
                       n, d, [&](T* x, int64_t begin, int64_t end) {
                         lxk::TriangularSolveRange<T, D, false>(
                             d, a.data(), d * d, b.data(), d, x, begin, end, true,
                             true, true);
                       });
  }
}

}  // namespace

int main() {
  ForEachType([]<typename T>() {
    ForEachSize([]<int D>(int d) { TestSize<T, D>(d); });
  });
  return Finish("test_small_triangular");
}
