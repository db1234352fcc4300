// XLA FFI handler for the banded solve (banded.h), called from
// src/lineax_kernels/_kernels/banded.py.
//
//   lxk_banded_solve(bands: (..., lower + upper + 1, n), b: (..., n)) -> x: (..., n)
//   attributes: lower, upper (the numbers of sub- and superdiagonals of A, whose
//   bands are in scipy.linalg.solve_banded's layout), trans (solve with A^T), conj
//   (solve with conj(A)).
//
// Either operand may hold one system shared by the whole batch. Compiled once per
// element type and once for the handler (see ffi_common.h).
#include <cstdint>
#include <type_traits>

#include "banded.h"
#include "ffi_common.h"

namespace lxk {

struct BandedCall {
  int64_t n = 0, systems = 0, na = 0, nb = 0;
  int kl = 0, ku = 0;
  const void* bands;
  const void* b;
  void* x;
  bool trans, conj;

  template <typename T>
  void Run(ffi::ThreadPool& pool) const;
};

#ifdef LXK_ELEMENT_TYPE

template <typename T>
void BandedCall::Run(ffi::ThreadPool& pool) const {
  // op(A) is factorised as it stands (pivoting on its own columns), so that the
  // transposed solve pivots exactly as a fresh solve with A^T would. A[i, j] is
  // bands[(ku + i - j) * n + j]; A^T[i, j] = A[j, i].
  T* x = static_cast<T*>(this->x);
  BandBatch<T> p{n,
                 kl,
                 ku,
                 static_cast<const T*>(bands),
                 Stride(na, (kl + ku + 1) * n),
                 ku * n,
                 n,
                 1 - n,
                 static_cast<const T*>(b),
                 Stride(nb, n),
                 conj};
  if (trans) {
    p.kl = ku;
    p.ku = kl;
    p.si = 1 - n;
    p.sj = n;
  }
  const int64_t size = sizeof(T);
  const BatchBytes bytes{systems * n * (kl + ku + 2) * size, n * (kl + ku + 2) * size};
  auto run = [&](auto kl_static, auto ku_static) {
    constexpr int KL = decltype(kl_static)::value;
    constexpr int KU = decltype(ku_static)::value;
    if (systems == 1) {
      BandedSolveSingle<KL, KU, T>(p, x);
      return;
    }
    RunBatch<T>(pool, systems, bytes, [&](int64_t begin, int64_t end) {
      BandedSolveRange<KL, KU, T>(p, x, begin, end);
    });
  };
  // Straight-line windows for the common bandwidths: tridiagonal, pentadiagonal,
  // heptadiagonal, and block tridiagonal with 3 x 3 and 4 x 4 blocks (2k - 1).
  using std::integral_constant;
  auto both = [&](auto k) { run(k, k); };
  if (p.kl == p.ku) {
    switch (p.kl) {
      case 1: return both(integral_constant<int, 1>{});
      case 2: return both(integral_constant<int, 2>{});
      case 3: return both(integral_constant<int, 3>{});
      case 5: return both(integral_constant<int, 5>{});
      case 7: return both(integral_constant<int, 7>{});
      default: break;
    }
  }
  run(integral_constant<int, -1>{}, integral_constant<int, -1>{});
}

LXK_INSTANTIATE_RUN(BandedCall);

#else

namespace {

ffi::Error BandedSolve(ffi::ThreadPool pool, ffi::AnyBuffer bands, ffi::AnyBuffer b,
                       ffi::Result<ffi::AnyBuffer> x, int64_t lower, int64_t upper,
                       bool trans, bool conj) {
  auto a_dims = bands.dimensions();
  auto b_dims = b.dimensions();
  if (a_dims.size() < 2 || b_dims.size() < 1 || lower < 0 || upper < 0) {
    return ffi::Error::InvalidArgument(
        "lxk_banded_solve: expected bands (..., lower + upper + 1, n), b (..., n)");
  }
  const int64_t n = b_dims[b_dims.size() - 1];
  if (n < 1 || a_dims[a_dims.size() - 1] != n ||
      a_dims[a_dims.size() - 2] != lower + upper + 1) {
    return ffi::Error::InvalidArgument(
        "lxk_banded_solve: expected bands (..., lower + upper + 1, n), b (..., n) "
        "with n >= 1");
  }
  const auto type = bands.element_type();
  if (b.element_type() != type || x->element_type() != type) {
    return ffi::Error::InvalidArgument("lxk_banded_solve: mismatched dtypes");
  }
  BandedCall call;
  call.n = n;
  call.kl = static_cast<int>(lower);
  call.ku = static_cast<int>(upper);
  call.systems = NumSystems(*x, n);
  call.na = NumSystems(bands, (lower + upper + 1) * n);
  call.nb = NumSystems(b, n);
  if (!BatchMatches(call.na, call.systems) || !BatchMatches(call.nb, call.systems)) {
    return ffi::Error::InvalidArgument("lxk_banded_solve: mismatched batch sizes");
  }
  call.bands = bands.untyped_data();
  call.b = b.untyped_data();
  call.x = x->untyped_data();
  call.trans = trans;
  call.conj = conj;
  return RunTyped(pool, type, call.systems, call);
}

}  // namespace

LXK_REGISTER_TARGET("lxk_banded_solve", LxkBandedSolve, BandedSolve,
                    ffi::Ffi::Bind()
                        .Ctx<ffi::ThreadPool>()
                        .Arg<ffi::AnyBuffer>()
                        .Arg<ffi::AnyBuffer>()
                        .Ret<ffi::AnyBuffer>()
                        .Attr<int64_t>("lower")
                        .Attr<int64_t>("upper")
                        .Attr<bool>("trans")
                        .Attr<bool>("conj"));

#endif  // LXK_ELEMENT_TYPE

}  // namespace lxk
