// Evidence for UnrolledSmallLU's state layout (see its module comment): is it
// faster to factorise in `init` and store the factors (written, then read back by
// `compute`), or to keep the matrix and fuse factorisation and solve in `compute`?
// Both variants use the same tile kernels; only the memory traffic differs.
//
//   g++ -std=c++20 -O3 -march=native -Icsrc csrc/tests/fused_vs_split.cc -o /tmp/fvs && /tmp/fvs
//
// Measured on the 2-vCPU AVX-512 Xeon of README.md (process CPU time, float64,
// N d^2 = 4e6, machine shared with other jobs), ns per system:
//   d =  2: fused   4.5, split   12.7 (2.8x)
//   d =  4: fused  21.4, split   45.1 (2.1x)
//   d =  8: fused 108.6, split  274.8 (2.5x)
//   d = 16: fused 660.4, split 1472.8 (2.2x)
// so the state keeps the matrix, and the factors are never stored; one matrix
// with many right-hand sides still factorises once (LuFactored, in the handler).
#include <cstdio>
#include <ctime>
#include <random>
#include <vector>

#include "small_lu.h"

using namespace lxk;

template <int D>
void Split(const double* a, const double* b, double* lu, double* perm, double* x,
           int64_t n) {
  using L = Lanes<double>;
  using E = L::E;
  constexpr int W = L::W;
  E at[D * D], bt[D];
  typename L::V pt[D];
  // Pass 1 (init): factorise, store LU and the permutation.
  for (int64_t s0 = 0; s0 < n; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, n - s0));
    LoadTile(a + s0 * D * D, D * D, lanes, D * D, Identity{}, false, 0.0, at);
    LuFactorTile<D>(D, at, pt);
    StoreTile<double>(at, lanes, D * D, D * D, lu + s0 * D * D);
    StoreTile<double>(pt, lanes, D, D, perm + s0 * D);
  }
  // Pass 2 (compute): read them back and substitute.
  for (int64_t s0 = 0; s0 < n; s0 += W) {
    const int lanes = static_cast<int>(std::min<int64_t>(W, n - s0));
    LoadTile(lu + s0 * D * D, D * D, lanes, D * D, Identity{}, false, 0.0, at);
    LoadTile(perm + s0 * D, D, lanes, D, Identity{}, false, 0.0, pt);
    for (int i = 0; i < D; ++i) {
      typename L::V v{};
      for (int s = 0; s < lanes; ++s) v[s] = b[(s0 + s) * D + static_cast<int>(pt[i][s])];
      bt[i] = v;
    }
    for (int i = 1; i < D; ++i)
      for (int j = 0; j < i; ++j) bt[i] = SubMul(bt[i], at[i * D + j], bt[j]);
    for (int i = D - 1; i >= 0; --i) {
      for (int j = i + 1; j < D; ++j) bt[i] = SubMul(bt[i], at[i * D + j], bt[j]);
      bt[i] = bt[i] / at[i * D + i];
    }
    StoreTile<double>(bt, lanes, D, D, x + s0 * D);
  }
}

template <int D>
void Run() {
  const int64_t n = 4000000 / (D * D);
  std::vector<double> a(n * D * D), b(n * D), x(n * D), lu(n * D * D), perm(n * D);
  std::mt19937 g(0);
  std::normal_distribution<double> normal;
  for (auto& v : a) v = normal(g);
  for (auto& v : b) v = normal(g);
  auto best = [&](auto fn) {
    double t = 1e9;
    for (int r = 0; r < 7; ++r) {
      std::clock_t t0 = std::clock();
      fn();
      t = std::min(t, double(std::clock() - t0) / CLOCKS_PER_SEC);
    }
    return t / n * 1e9;
  };
  const double fused = best([&] {
    LuSolveRange<double, D>(D, a.data(), D * D, b.data(), D, x.data(), 0, n, false, false);
  });
  const double split =
      best([&] { Split<D>(a.data(), b.data(), lu.data(), perm.data(), x.data(), n); });
  std::printf("d=%2d: fused %7.1f ns/system, split %7.1f ns/system, split/fused %.2f\n",
              D, fused, split, split / fused);
}

int main() {
  Run<2>();
  Run<4>();
  Run<8>();
  Run<16>();
}
