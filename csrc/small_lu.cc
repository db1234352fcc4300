// XLA FFI handler for the small dense LU solve (small_lu.h), called from
// src/lineax_kernels/_solver/unrolled_small_lu.py.
//
//   lxk_small_lu_solve(a: (..., d, d), b: (..., d)) -> x: (..., d)
//   attributes: trans (solve with A^T), conj (solve with conj(A)).
//
// Either operand may hold one system shared by the whole batch. One matrix with a
// batch of right-hand sides is factorised once; otherwise factorisation and
// substitution are fused per tile of systems. The per-type work is in
// small_lu_typed.cc, compiled once per element type.
#include <cstdint>

#include "ffi_common.h"

namespace lxk {

template <typename T>
void SmallLuSolveTyped(ffi::ThreadPool& pool, int d, int64_t n, const T* a,
                       int64_t na, const T* b, int64_t nb, T* x, bool trans,
                       bool conj);

namespace {

ffi::Error SmallLuSolve(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer b,
                        ffi::Result<ffi::AnyBuffer> x, bool trans, bool conj) {
  auto a_dims = a.dimensions();
  auto b_dims = b.dimensions();
  if (a_dims.size() < 2 || b_dims.size() < 1 ||
      a_dims[a_dims.size() - 1] != a_dims[a_dims.size() - 2] ||
      a_dims[a_dims.size() - 1] != b_dims[b_dims.size() - 1]) {
    return ffi::Error::InvalidArgument(
        "lxk_small_lu_solve: expected a: (..., d, d) and b: (..., d)");
  }
  if (a.element_type() != b.element_type() ||
      a.element_type() != x->element_type()) {
    return ffi::Error::InvalidArgument("lxk_small_lu_solve: mismatched dtypes");
  }
  const int d = static_cast<int>(b_dims[b_dims.size() - 1]);
  const int64_t n = NumSystems(*x, d);
  const int64_t na = NumSystems(a, int64_t{d} * d), nb = NumSystems(b, d);
  if (!BatchMatches(na, n) || !BatchMatches(nb, n)) {
    return ffi::Error::InvalidArgument("lxk_small_lu_solve: mismatched batch sizes");
  }
  if (n == 0) return ffi::Error::Success();
  return DispatchType(a.element_type(), [&]<typename T>() {
    SmallLuSolveTyped<T>(pool, d, n, reinterpret_cast<const T*>(a.untyped_data()),
                         na, reinterpret_cast<const T*>(b.untyped_data()), nb,
                         reinterpret_cast<T*>(x->untyped_data()), trans, conj);
    return ffi::Error::Success();
  });
}

}  // namespace
}  // namespace lxk

// The library is built with hidden visibility; only the handlers are exported.
#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(LxkSmallLuSolve, lxk::SmallLuSolve,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attr<bool>("trans")
                                  .Attr<bool>("conj"));
#pragma GCC visibility pop
