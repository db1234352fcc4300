// XLA FFI handler for the small dense Cholesky solve (small_cholesky.h), called from
// src/lineax_kernels/_solver/unrolled_small_cholesky.py.
//
//   lxk_small_cholesky_solve(a: (..., d, d), b: (..., d)) -> x: (..., d)
//   attributes: conj (solve with conj(A), which is A^T for Hermitian A), negate
//   (A is negative definite: factorise -A and negate the solution).
//
// Only the lower triangle of A is read. Either operand may hold one system shared
// by the whole batch; one matrix with a batch of right-hand sides is factorised
// once. The per-type work is in small_cholesky_typed.cc, compiled once per type.
#include <cstdint>

#include "ffi_common.h"

namespace lxk {

template <typename T>
void SmallCholeskySolveTyped(ffi::ThreadPool& pool, int d, int64_t n, const T* a,
                             int64_t na, const T* b, int64_t nb, T* x, bool conj,
                             bool negate);

namespace {

ffi::Error SmallCholeskySolve(ffi::ThreadPool pool, ffi::AnyBuffer a,
                              ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> x,
                              bool conj, bool negate) {
  DenseBatch batch;
  if (auto error = CheckDenseBatch("lxk_small_cholesky_solve", a, b, *x, batch);
      error.failure()) {
    return error;
  }
  if (batch.n == 0) return ffi::Error::Success();
  return DispatchType(a.element_type(), [&]<typename T>() {
    SmallCholeskySolveTyped<T>(pool, batch.d, batch.n,
                               reinterpret_cast<const T*>(a.untyped_data()), batch.na,
                               reinterpret_cast<const T*>(b.untyped_data()), batch.nb,
                               reinterpret_cast<T*>(x->untyped_data()), conj, negate);
    return ffi::Error::Success();
  });
}

}  // namespace
}  // namespace lxk

// The library is built with hidden visibility; only the handlers are exported.
#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(LxkSmallCholeskySolve, lxk::SmallCholeskySolve,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attr<bool>("conj")
                                  .Attr<bool>("negate"));
#pragma GCC visibility pop
