// XLA FFI handler for the small triangular solve (small_triangular.h), called from
// src/lineax_kernels/_solver/unrolled_small_triangular.py.
//
//   lxk_small_triangular_solve(a: (..., d, d), b: (..., d)) -> x: (..., d)
//   attributes: upper (A is upper, else lower, triangular), unit (unit diagonal,
//   never read), trans (solve with A^T), conj (solve with conj(A)).
//
// Only A's triangle is read. Either operand may hold one system shared by the
// whole batch; one matrix with a batch of right-hand sides is prepared once. The
// per-type work is in small_triangular_typed.cc, compiled once per type.
#include <cstdint>

#include "ffi_common.h"

namespace lxk {

template <typename T>
void SmallTriangularSolveTyped(ffi::ThreadPool& pool, int d, int64_t n, const T* a,
                               int64_t na, const T* b, int64_t nb, T* x, bool upper,
                               bool unit, bool trans, bool conj);

namespace {

ffi::Error SmallTriangularSolve(ffi::ThreadPool pool, ffi::AnyBuffer a,
                                ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> x,
                                bool upper, bool unit, bool trans, bool conj) {
  DenseBatch batch;
  if (auto error = CheckDenseBatch("lxk_small_triangular_solve", a, b, *x, batch);
      error.failure()) {
    return error;
  }
  if (batch.n == 0) return ffi::Error::Success();
  return DispatchType(a.element_type(), [&]<typename T>() {
    SmallTriangularSolveTyped<T>(
        pool, batch.d, batch.n, reinterpret_cast<const T*>(a.untyped_data()),
        batch.na, reinterpret_cast<const T*>(b.untyped_data()), batch.nb,
        reinterpret_cast<T*>(x->untyped_data()), upper, unit, trans, conj);
    return ffi::Error::Success();
  });
}

}  // namespace
}  // namespace lxk

// The library is built with hidden visibility; only the handlers are exported.
#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(LxkSmallTriangularSolve, lxk::SmallTriangularSolve,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attr<bool>("upper")
                                  .Attr<bool>("unit")
                                  .Attr<bool>("trans")
                                  .Attr<bool>("conj"));
#pragma GCC visibility pop
