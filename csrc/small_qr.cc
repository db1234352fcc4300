// XLA FFI handler for the small dense QR least-squares solve (small_qr.h), called
// from src/lineax_kernels/_kernels/small_qr.py.
//
//   lxk_small_qr_solve(a: (..., m, n), b: (..., r)) -> x: (..., c)
//   attributes: trans (solve with A^T), conj (solve with conj(A));
//   (r, c) = (m, n), or (n, m) with trans.
//
// Least squares for a tall op(A), minimum norm for a wide one, the ordinary solve
// for a square one. Either operand may hold one system shared by the whole batch;
// one matrix with a batch of right-hand sides is factorised once. The per-type work
// is in small_qr_typed.cc, compiled once per element type.
#include <cstdint>
#include <string>

#include "ffi_common.h"

namespace lxk {

template <typename T>
void SmallQrSolveTyped(ffi::ThreadPool& pool, int m, int n, int64_t systems,
                       const T* a, int64_t na, const T* b, int64_t nb, T* x,
                       bool trans, bool conj);

namespace {

ffi::Error SmallQrSolve(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer b,
                        ffi::Result<ffi::AnyBuffer> x, bool trans, bool conj) {
  auto a_dims = a.dimensions();
  auto b_dims = b.dimensions();
  auto x_dims = x->dimensions();
  if (a_dims.size() < 2 || b_dims.size() < 1 || x_dims.size() < 1) {
    return ffi::Error::InvalidArgument(
        "lxk_small_qr_solve: expected a: (..., m, n), b: (..., m) and x: (..., n)");
  }
  const int m = static_cast<int>(a_dims[a_dims.size() - 2]);
  const int n = static_cast<int>(a_dims[a_dims.size() - 1]);
  const int rows = trans ? n : m, cols = trans ? m : n;
  if (b_dims[b_dims.size() - 1] != rows || x_dims[x_dims.size() - 1] != cols) {
    return ffi::Error::InvalidArgument(
        "lxk_small_qr_solve: expected a: (..., m, n), b: (..., m) and x: (..., n) "
        "(b: (..., n) and x: (..., m) with trans)");
  }
  if (a.element_type() != b.element_type() ||
      a.element_type() != x->element_type()) {
    return ffi::Error::InvalidArgument("lxk_small_qr_solve: mismatched dtypes");
  }
  const int64_t systems = NumSystems(*x, cols);
  const int64_t na = NumSystems(a, int64_t{m} * n), nb = NumSystems(b, rows);
  if (!BatchMatches(na, systems) || !BatchMatches(nb, systems)) {
    return ffi::Error::InvalidArgument("lxk_small_qr_solve: mismatched batch sizes");
  }
  if (systems == 0 || m == 0 || n == 0) return ffi::Error::Success();
  return DispatchType(a.element_type(), [&]<typename T>() {
    SmallQrSolveTyped<T>(pool, m, n, systems,
                         reinterpret_cast<const T*>(a.untyped_data()), na,
                         reinterpret_cast<const T*>(b.untyped_data()), nb,
                         reinterpret_cast<T*>(x->untyped_data()), trans, conj);
    return ffi::Error::Success();
  });
}

}  // namespace
}  // namespace lxk

// The library is built with hidden visibility; only the handlers are exported.
#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(LxkSmallQrSolve, lxk::SmallQrSolve,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attr<bool>("trans")
                                  .Attr<bool>("conj"));
#pragma GCC visibility pop
