// Tests of tridiagonal.h against the naive reference of test_common.h: sizes 1..9,
// 16 and two long ones (odd and even, for the two-ended single-system solve),
// every element type, pivoting or not, trans (as the handler does it: lower and
// upper exchanged) and conj, batches of 0, 1, W-1 and W+1 systems through
// TridiagonalSolveRange and one system through TridiagonalSolveSingle, shared
// operands (stride 0), a zero pivot, and two threads at once.
#include <string>
#include <utility>
#include <vector>

#include "test_common.h"
#include "tridiagonal.h"

using namespace lxk_test;

namespace {

// The bands of a batch; an operand with one system is shared (stride 0).
template <typename T>
struct Bands {
  int64_t n, nd, nl, nu, nb;
  std::vector<T> diag, lower, upper, b;

  // Random bands; if `dominant`, a diagonally dominant matrix.
  Bands(int64_t n, int64_t systems, int shared, bool dominant) : n(n) {
    // shared: 0 none, 1 diagonal, 2 both off-diagonals, 3 b, 4 the whole matrix.
    nd = shared == 1 || shared == 4 ? 1 : systems;
    nl = nu = shared == 2 || shared == 4 || n == 1 ? 1 : systems;
    nb = shared == 3 ? 1 : systems;
    diag = RandomVector<T>(std::max<int64_t>(nd, 1) * n);
    // At least one entry, so that an empty band still has a valid pointer.
    lower = RandomVector<T>(std::max<int64_t>(std::max<int64_t>(nl, 1) * (n - 1), 1));
    upper = RandomVector<T>(std::max<int64_t>(std::max<int64_t>(nu, 1) * (n - 1), 1));
    b = RandomVector<T>(std::max<int64_t>(nb, 1) * n);
    if (dominant) {
      for (auto& e : diag) {
        const Real<T> mag = std::abs(e);
        e = mag == 0 ? T(6) : e * T((6 + mag) / mag);
      }
    }
  }

  lxk::TriBatch<T> Batch(bool trans, bool conj) const {
    std::ptrdiff_t ls = nl == 1 ? 0 : n - 1, us = nu == 1 ? 0 : n - 1;
    const T* lo = lower.data();
    const T* up = upper.data();
    if (trans) {
      std::swap(lo, up);
      std::swap(ls, us);
    }
    return {n, diag.data(), nd == 1 ? 0 : n, lo, ls, up, us, b.data(),
            nb == 1 ? 0 : n, conj};
  }

  // op(A) of system s as a dense matrix, and its right-hand side.
  std::pair<std::vector<Z>, std::vector<Z>> Dense(int64_t s, bool trans,
                                                  bool conj) const {
    std::vector<Z> m(n * n), bz(n);
    auto at = [&](const std::vector<T>& v, int64_t count, int64_t per, int64_t i) {
      const T e = v[(count == 1 ? 0 : s * per) + i];
      return ToZ(conj ? Conj(e) : e);
    };
    for (int64_t i = 0; i < n; ++i) {
      m[i * n + i] = at(diag, nd, n, i);
      if (i > 0) {
        const Z lo = at(lower, nl, n - 1, i - 1);
        (trans ? m[(i - 1) * n + i] : m[i * n + i - 1]) = lo;
      }
      if (i < n - 1) {
        const Z up = at(upper, nu, n - 1, i);
        (trans ? m[(i + 1) * n + i] : m[i * n + i + 1]) = up;
      }
      bz[i] = ToZ(b[(nb == 1 ? 0 : s * n) + i]);
    }
    return {m, bz};
  }
};

template <typename T, bool kPivot>
void TestSize(int64_t n) {
  for (bool trans : {false, true}) {
    for (bool conj : {false, true}) {
      for (int64_t systems : BatchSizes<T>()) {
        for (int shared = 0; shared < 5; ++shared) {
          // Without pivoting only diagonally dominant matrices are stable.
          for (bool dominant : {true, false}) {
            if (!kPivot && !dominant) continue;
            const Bands<T> bands(n, systems, shared, dominant);
            const auto p = bands.Batch(trans, conj);
            std::vector<T> x(systems * n), y(n);
            lxk::TridiagonalSolveRange<T, kPivot>(p, x.data(), 0, systems);
            if (systems == 1) lxk::TridiagonalSolveSingle<T, kPivot>(p, y.data());
            const std::string what =
                std::string("tridiagonal ") + TypeName<T>() + " n=" + std::to_string(n) +
                " systems=" + std::to_string(systems) + " pivot=" +
                std::to_string(kPivot) + " trans=" + std::to_string(trans) +
                " conj=" + std::to_string(conj) + " shared=" + std::to_string(shared);
            for (int64_t s = 0; s < systems; ++s) {
              const auto [m, bz] = bands.Dense(s, trans, conj);
              // The reference is dense and O(n^3): the forward error only for
              // the smaller sizes.
              const bool forward = dominant && n <= 16;
              CheckSolution(what, m, bz, x.data() + s * n, n, forward);
              if (systems == 1) CheckSolution(what + " single", m, bz, y.data(), n, forward);
            }
          }
        }
      }
    }
  }
  // A zero matrix: a non-finite solution, batched and single.
  {
    const int64_t systems = kLanes<T> + 1;
    Bands<T> bands(n, systems, 4, false);
    for (auto& e : bands.diag) e = T(0);
    for (auto& e : bands.lower) e = T(0);
    for (auto& e : bands.upper) e = T(0);
    std::vector<T> x(systems * n), y(n);
    lxk::TridiagonalSolveRange<T, kPivot>(bands.Batch(false, false), x.data(), 0,
                                          systems);
    Bands<T> one(n, 1, 0, false);
    for (auto& e : one.diag) e = T(0);
    for (auto& e : one.lower) e = T(0);
    for (auto& e : one.upper) e = T(0);
    lxk::TridiagonalSolveSingle<T, kPivot>(one.Batch(false, false), y.data());
    const std::string what = std::string("tridiagonal singular ") + TypeName<T>() +
                             " n=" + std::to_string(n) + " pivot=" +
                             std::to_string(kPivot);
    CheckNonFinite(what, x.data(), systems * n);
    CheckNonFinite(what + " single", y.data(), n);
  }
  // Two threads on the same operands.
  {
    const Bands<T> bands(n, 4 * kLanes<T> + 3, 0, true);
    const auto p = bands.Batch(true, true);
    CheckTwoThreads<T>(std::string("tridiagonal threads ") + TypeName<T>() +
                           " n=" + std::to_string(n),
                       4 * kLanes<T> + 3, n, [&](T* x, int64_t begin, int64_t end) {
                         lxk::TridiagonalSolveRange<T, kPivot>(p, x, begin, end);
                       });
  }
}

}  // namespace

int main() {
  ForEachType([]<typename T>() {
    for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 63, 100}) {
      TestSize<T, true>(n);
      TestSize<T, false>(n);
    }
  });
  return Finish("test_tridiagonal");
}
