// XLA FFI handler for the small dense LU solve (small_lu.h), called from
// src/lineax_kernels/_solver/unrolled_small_lu.py.
//
//   lxk_small_lu_solve(a: (..., d, d), b: (..., d)) -> x: (..., d)
//   attributes: trans (solve with A^T), conj (solve with conj(A)).
//
// Either operand may hold one system shared by the whole batch. One matrix with a
// batch of right-hand sides is factorised once; otherwise factorisation and
// substitution are fused per tile of systems. Compiled once per element type and
// once for the handler (see ffi_common.h).
#include <cstdint>

#include "ffi_common.h"
#include "small_lu.h"

namespace lxk {

struct SmallLuCall {
  DenseBatch batch;
  const void* a;
  const void* b;
  void* x;
  bool trans, conj;

  template <typename T>
  void Run(ffi::ThreadPool& pool) const;
};

#ifdef LXK_ELEMENT_TYPE

template <typename T>
void SmallLuCall::Run(ffi::ThreadPool& pool) const {
  const auto [d, n, na, nb] = batch;
  const T* a = static_cast<const T*>(this->a);
  const T* b = static_cast<const T*>(this->b);
  T* x = static_cast<T*>(this->x);
  const std::ptrdiff_t a_stride = Stride(na, int64_t{d} * d), b_stride = Stride(nb, d);
  const BatchBytes bytes = DenseBytes<T>(batch);
  DispatchSize(d, [&]<int D>() {
    if (na == 1 && n > Lanes<T>::W) {
      LuFactored<T> factored;
      factored.template Factor<D>(d, a, trans, conj);
      RunBatch<T>(pool, n, bytes, [&](int64_t begin, int64_t end) {
        factored.template SolveRange<D>(b, b_stride, x, begin, end);
      });
    } else {
      RunBatch<T>(pool, n, bytes, [&](int64_t begin, int64_t end) {
        LuSolveRange<T, D>(d, a, a_stride, b, b_stride, x, begin, end, trans, conj);
      });
    }
  });
}

LXK_INSTANTIATE_RUN(SmallLuCall);

#else

namespace {

ffi::Error SmallLuSolve(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::AnyBuffer b,
                        ffi::Result<ffi::AnyBuffer> x, bool trans, bool conj) {
  SmallLuCall call{{}, a.untyped_data(), b.untyped_data(), x->untyped_data(),
                   trans, conj};
  LXK_RETURN_IF_ERROR(CheckDenseBatch("lxk_small_lu_solve", a, b, *x, call.batch));
  return RunTyped(pool, a.element_type(), call.batch.n, call);
}

}  // namespace

LXK_REGISTER_TARGET("lxk_small_lu_solve", LxkSmallLuSolve, SmallLuSolve,
                    ffi::Ffi::Bind()
                        .Ctx<ffi::ThreadPool>()
                        .Arg<ffi::AnyBuffer>()
                        .Arg<ffi::AnyBuffer>()
                        .Ret<ffi::AnyBuffer>()
                        .Attr<bool>("trans")
                        .Attr<bool>("conj"));

#endif  // LXK_ELEMENT_TYPE

}  // namespace lxk
