// XLA FFI handler for the banded solve (banded.h), called from
// src/lineax_kernels/_kernels/banded.py.
//
//   lxk_banded_solve(bands: (..., lower + upper + 1, n), b: (..., n)) -> x: (..., n)
//   attributes: lower, upper (the numbers of sub- and superdiagonals of A, whose
//   bands are in scipy.linalg.solve_banded's layout), trans (solve with A^T), conj
//   (solve with conj(A)).
//
// Either operand may hold one system shared by the whole batch. The per-type work
// is in banded_typed.cc, compiled once per element type.
#include <cstdint>

#include "ffi_common.h"

namespace lxk {

template <typename T>
void BandedSolveTyped(ffi::ThreadPool& pool, int64_t n, int kl, int ku,
                      int64_t systems, const T* bands, int64_t nbands, const T* b,
                      int64_t nb, T* x, bool trans, bool conj);

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
  const int64_t systems = NumSystems(*x, n);
  const int64_t na = NumSystems(bands, (lower + upper + 1) * n);
  const int64_t nb = NumSystems(b, n);
  if (!BatchMatches(na, systems) || !BatchMatches(nb, systems)) {
    return ffi::Error::InvalidArgument("lxk_banded_solve: mismatched batch sizes");
  }
  if (systems == 0) return ffi::Error::Success();
  return DispatchType(type, [&]<typename T>() {
    BandedSolveTyped<T>(pool, n, static_cast<int>(lower), static_cast<int>(upper),
                        systems, reinterpret_cast<const T*>(bands.untyped_data()),
                        na, reinterpret_cast<const T*>(b.untyped_data()), nb,
                        reinterpret_cast<T*>(x->untyped_data()), trans, conj);
    return ffi::Error::Success();
  });
}

}  // namespace
}  // namespace lxk

// The library is built with hidden visibility; only the handlers are exported.
#pragma GCC visibility push(default)
XLA_FFI_DEFINE_HANDLER_SYMBOL(LxkBandedSolve, lxk::BandedSolve,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Arg<xla::ffi::AnyBuffer>()
                                  .Ret<xla::ffi::AnyBuffer>()
                                  .Attr<int64_t>("lower")
                                  .Attr<int64_t>("upper")
                                  .Attr<bool>("trans")
                                  .Attr<bool>("conj"));
#pragma GCC visibility pop
