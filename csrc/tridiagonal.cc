// XLA FFI handler for the tridiagonal solve (tridiagonal.h), called from
// src/lineax_kernels/_solver/scan_tridiagonal.py.
//
//   lxk_tridiagonal_solve(diagonal: (..., n), lower: (..., n-1), upper: (..., n-1),
//                         b: (..., n)) -> x: (..., n)
//   attributes: pivoting (partial pivoting as ?gttrf, else Thomas), trans (solve
//   with A^T), conj (solve with conj(A)).
//
// Any operand may hold one system shared by the whole batch. Compiled once per
// element type and once for the handler (see ffi_common.h).
#include <cstdint>
#include <type_traits>
#include <utility>

#include "ffi_common.h"
#include "tridiagonal.h"

namespace lxk {

// `n` is the size of one system, `systems` their number; nd, nl, nu, nb are the
// systems held by each operand (`systems`, or 1 if shared).
struct TridiagonalCall {
  int64_t n, systems, nd, nl, nu, nb;
  const void* diag;
  const void* lower;
  const void* upper;
  const void* b;
  void* x;
  bool pivoting, trans, conj;

  template <typename T>
  void Run(ffi::ThreadPool& pool) const;
};

#ifdef LXK_ELEMENT_TYPE

template <typename T>
void TridiagonalCall::Run(ffi::ThreadPool& pool) const {
  const T* lower = static_cast<const T*>(this->lower);
  const T* upper = static_cast<const T*>(this->upper);
  std::ptrdiff_t lower_stride = Stride(nl, n - 1), upper_stride = Stride(nu, n - 1);
  // A^T has the same diagonal and the off-diagonals exchanged; it is factorised
  // as it stands (pivoting on its own columns), so that the transposed solve
  // pivots exactly as a fresh solve with A^T would.
  if (trans) {
    std::swap(lower, upper);
    std::swap(lower_stride, upper_stride);
  }
  const TriBatch<T> p{n,
                      static_cast<const T*>(diag),
                      Stride(nd, n),
                      lower,
                      lower_stride,
                      upper,
                      upper_stride,
                      static_cast<const T*>(b),
                      Stride(nb, n),
                      conj};
  T* x = static_cast<T*>(this->x);
  auto solve = [&](auto pivot) {
    constexpr bool kPivot = decltype(pivot)::value;
    if (systems == 1) {
      TridiagonalSolveSingle<T, kPivot>(p, x);
      return;
    }
    const int64_t system_bytes = n * 4 * int64_t{sizeof(T)};
    RunBatch<T>(pool, systems, {systems * system_bytes, system_bytes},
                [&](int64_t begin, int64_t end) {
                  TridiagonalSolveRange<T, kPivot>(p, x, begin, end);
                });
  };
  if (pivoting) {
    solve(std::true_type{});
  } else {
    solve(std::false_type{});
  }
}

LXK_INSTANTIATE_RUN(TridiagonalCall);

#else

namespace {

ffi::Error TridiagonalSolve(ffi::ThreadPool pool, ffi::AnyBuffer diag,
                            ffi::AnyBuffer lower, ffi::AnyBuffer upper,
                            ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> x,
                            bool pivoting, bool trans, bool conj) {
  auto d_dims = diag.dimensions();
  auto l_dims = lower.dimensions();
  auto u_dims = upper.dimensions();
  auto b_dims = b.dimensions();
  if (d_dims.size() < 1 || l_dims.size() < 1 || u_dims.size() < 1 ||
      b_dims.size() < 1) {
    return ffi::Error::InvalidArgument(
        "lxk_tridiagonal_solve: every operand needs a band axis");
  }
  const int64_t n = d_dims[d_dims.size() - 1];
  if (n < 1 || l_dims[l_dims.size() - 1] != n - 1 ||
      u_dims[u_dims.size() - 1] != n - 1 || b_dims[b_dims.size() - 1] != n) {
    return ffi::Error::InvalidArgument(
        "lxk_tridiagonal_solve: expected diagonal (..., n), lower and upper "
        "(..., n-1), b (..., n) with n >= 1");
  }
  const auto type = diag.element_type();
  if (lower.element_type() != type || upper.element_type() != type ||
      b.element_type() != type || x->element_type() != type) {
    return ffi::Error::InvalidArgument("lxk_tridiagonal_solve: mismatched dtypes");
  }
  TridiagonalCall call{n,
                       NumSystems(*x, n),
                       NumSystems(diag, n),
                       // With n = 1 the off-diagonals are empty: treat them as shared.
                       n > 1 ? NumSystems(lower, n - 1) : 1,
                       n > 1 ? NumSystems(upper, n - 1) : 1,
                       NumSystems(b, n),
                       diag.untyped_data(),
                       lower.untyped_data(),
                       upper.untyped_data(),
                       b.untyped_data(),
                       x->untyped_data(),
                       pivoting,
                       trans,
                       conj};
  for (int64_t operand : {call.nd, call.nl, call.nu, call.nb}) {
    if (!BatchMatches(operand, call.systems)) {
      return ffi::Error::InvalidArgument(
          "lxk_tridiagonal_solve: mismatched batch sizes");
    }
  }
  return RunTyped(pool, type, call.systems, call);
}

}  // namespace

LXK_REGISTER_TARGET("lxk_tridiagonal_solve", LxkTridiagonalSolve, TridiagonalSolve,
                    ffi::Ffi::Bind()
                        .Ctx<ffi::ThreadPool>()
                        .Arg<ffi::AnyBuffer>()
                        .Arg<ffi::AnyBuffer>()
                        .Arg<ffi::AnyBuffer>()
                        .Arg<ffi::AnyBuffer>()
                        .Ret<ffi::AnyBuffer>()
                        .Attr<bool>("pivoting")
                        .Attr<bool>("trans")
                        .Attr<bool>("conj"));

#endif  // LXK_ELEMENT_TYPE

}  // namespace lxk
