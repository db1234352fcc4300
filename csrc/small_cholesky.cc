// XLA FFI handler for the small dense Cholesky solve (small_cholesky.h), called from
// src/lineax_kernels/_solver/unrolled_small_cholesky.py.
//
//   lxk_small_cholesky_solve(a: (..., d, d), b: (..., d)) -> x: (..., d)
//   attributes: conj (solve with conj(A), which is A^T for Hermitian A), negate
//   (A is negative definite: factorise -A and negate the solution).
//
// Only the lower triangle of A is read. Either operand may hold one system shared
// by the whole batch; one matrix with a batch of right-hand sides is factorised
// once. Compiled once per element type and once for the handler (see
// ffi_common.h).
#include <cstdint>

#include "ffi_common.h"
#include "small_cholesky.h"

namespace lxk {

struct SmallCholeskyCall {
  DenseBatch batch;
  const void* a;
  const void* b;
  void* x;
  bool conj, negate;

  template <typename T>
  void Run(ffi::ThreadPool& pool) const;
};

#ifdef LXK_ELEMENT_TYPE

template <typename T>
void SmallCholeskyCall::Run(ffi::ThreadPool& pool) const {
  const auto [d, n, na, nb] = batch;
  const T* a = static_cast<const T*>(this->a);
  const T* b = static_cast<const T*>(this->b);
  T* x = static_cast<T*>(this->x);
  const std::ptrdiff_t a_stride = Stride(na, int64_t{d} * d), b_stride = Stride(nb, d);
  const BatchBytes bytes = DenseBytes<T>(batch);
  DispatchSize(d, [&]<int D>() {
    if (na == 1 && n > Lanes<T>::W) {
      SharedCholesky<T> shared;
      shared.template Factor<D>(d, a, conj, negate);
      RunBatch<T>(pool, n, bytes, [&](int64_t begin, int64_t end) {
        SubstituteRange<T, D>(d, b, b_stride, x, begin, end, [&](auto* bt) {
          CholeskySubstituteTile<D>(d, shared.l.data(), shared.inv.data(), bt, negate);
        });
      });
    } else {
      RunBatch<T>(pool, n, bytes, [&](int64_t begin, int64_t end) {
        CholeskySolveRange<T, D>(d, a, a_stride, b, b_stride, x, begin, end, conj,
                                 negate);
      });
    }
  });
}

LXK_INSTANTIATE_RUN(SmallCholeskyCall);

#else

namespace {

ffi::Error SmallCholeskySolve(ffi::ThreadPool pool, ffi::AnyBuffer a,
                              ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> x,
                              bool conj, bool negate) {
  SmallCholeskyCall call{{}, a.untyped_data(), b.untyped_data(), x->untyped_data(),
                         conj, negate};
  LXK_RETURN_IF_ERROR(
      CheckDenseBatch("lxk_small_cholesky_solve", a, b, *x, call.batch));
  return RunTyped(pool, a.element_type(), call.batch.n, call);
}

}  // namespace

LXK_REGISTER_TARGET("lxk_small_cholesky_solve", LxkSmallCholeskySolve,
                    SmallCholeskySolve,
                    ffi::Ffi::Bind()
                        .Ctx<ffi::ThreadPool>()
                        .Arg<ffi::AnyBuffer>()
                        .Arg<ffi::AnyBuffer>()
                        .Ret<ffi::AnyBuffer>()
                        .Attr<bool>("conj")
                        .Attr<bool>("negate"));

#endif  // LXK_ELEMENT_TYPE

}  // namespace lxk
