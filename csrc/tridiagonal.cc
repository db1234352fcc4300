// XLA FFI handler for the tridiagonal solve (tridiagonal.h), called from
// src/lineax_kernels/_solver/scan_tridiagonal.py.
//
//   lxk_tridiagonal_solve(diagonal: (..., n), lower: (..., n-1), upper: (..., n-1),
//                         b: (..., n)) -> x: (..., n)
//   attributes: pivoting (partial pivoting as ?gttrf, else Thomas), trans (solve
//   with A^T), conj (solve with conj(A)).
//
// Any operand may hold one system shared by the whole batch. The per-type work is
// in tridiagonal_typed.cc, compiled once per element type.
#include <cstdint>

#include "ffi_common.h"

namespace lxk {

template <typename T>
void TridiagonalSolveTyped(ffi::ThreadPool& pool, int64_t n, int64_t systems,
                           const T* diag, int64_t nd, const T* lower, int64_t nl,
                           const T* upper, int64_t nu, const T* b, int64_t nb, T* x,
                           bool pivoting, bool trans, bool conj);

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
  const int64_t systems = NumSystems(*x, n);
  const int64_t nd = NumSystems(diag, n), nb = NumSystems(b, n);
  // With n = 1 the off-diagonals are empty: treat them as shared.
  const int64_t nl = n > 1 ? NumSystems(lower, n - 1) : 1;
  const int64_t nu = n > 1 ? NumSystems(upper, n - 1) : 1;
  if (!BatchMatches(nd, systems) || !BatchMatches(nl, systems) ||
      !BatchMatches(nu, systems) || !BatchMatches(nb, systems)) {
    return ffi::Error::InvalidArgument(
        "lxk_tridiagonal_solve: mismatched batch sizes");
  }
  if (systems == 0) return ffi::Error::Success();
  return DispatchType(type, [&]<typename T>() {
    TridiagonalSolveTyped<T>(
        pool, n, systems, reinterpret_cast<const T*>(diag.untyped_data()), nd,
        reinterpret_cast<const T*>(lower.untyped_data()), nl,
        reinterpret_cast<const T*>(upper.untyped_data()), nu,
        reinterpret_cast<const T*>(b.untyped_data()), nb,
        reinterpret_cast<T*>(x->untyped_data()), pivoting, trans, conj);
    return ffi::Error::Success();
  });
}

}  // namespace
}  // namespace lxk

// The library is built with hidden visibility; only the handlers are exported.
#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(LxkTridiagonalSolve, lxk::TridiagonalSolve,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attr<bool>("pivoting")
                                  .Attr<bool>("trans")
                                  .Attr<bool>("conj"));
#pragma GCC visibility pop
