// XLA FFI handler for the small triangular solve (small_triangular.h), called from
// src/lineax_kernels/_solver/unrolled_small_triangular.py.
//
//   lxk_small_triangular_solve(a: (..., d, d), b: (..., d)) -> x: (..., d)
//   attributes: upper (A is upper, else lower, triangular), unit (unit diagonal,
//   never read), trans (solve with A^T), conj (solve with conj(A)).
//
// Only A's triangle is read. Either operand may hold one system shared by the
// whole batch; one matrix with a batch of right-hand sides is prepared once.
// Compiled once per element type and once for the handler (see ffi_common.h).
#include <cstdint>

#include "ffi_common.h"
#include "small_triangular.h"

namespace lxk {

struct SmallTriangularCall {
  DenseBatch batch;
  const void* a;
  const void* b;
  void* x;
  bool upper, unit, trans, conj;

  template <typename T>
  void Run(ffi::ThreadPool& pool) const;
};

#ifdef LXK_ELEMENT_TYPE

template <typename T>
void SmallTriangularCall::Run(ffi::ThreadPool& pool) const {
  const auto [d, n, na, nb] = batch;
  const T* a = static_cast<const T*>(this->a);
  const T* b = static_cast<const T*>(this->b);
  T* x = static_cast<T*>(this->x);
  const std::ptrdiff_t a_stride = Stride(na, int64_t{d} * d), b_stride = Stride(nb, d);
  const BatchBytes bytes = DenseBytes<T>(batch);
  const bool back = upper != trans;  // op(A) is upper triangular
  auto solve = [&]<int D, bool Unit>() {
    if (na == 1 && n > Lanes<T>::W) {
      SharedTriangle<T> shared(d, a, upper, conj);
      RunBatch<T>(pool, n, bytes, [&](int64_t begin, int64_t end) {
        SubstituteRange<T, D>(d, b, b_stride, x, begin, end, [&](auto* bt) {
          if (back) {
            BackTile<D, Unit, false>(d, shared.l.data(), shared.inv.data(), bt);
          } else {
            ForwardTile<D, Unit>(d, shared.l.data(), shared.inv.data(), bt);
          }
        });
      });
    } else {
      RunBatch<T>(pool, n, bytes, [&](int64_t begin, int64_t end) {
        TriangularSolveRange<T, D, Unit>(d, a, a_stride, b, b_stride, x, begin, end,
                                         upper, trans, conj);
      });
    }
  };
  DispatchSize(d, [&]<int D>() {
    if (unit) {
      solve.template operator()<D, true>();
    } else {
      solve.template operator()<D, false>();
    }
  });
}

LXK_INSTANTIATE_RUN(SmallTriangularCall);

#else

namespace {

ffi::Error SmallTriangularSolve(ffi::ThreadPool pool, ffi::AnyBuffer a,
                                ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> x,
                                bool upper, bool unit, bool trans, bool conj) {
  SmallTriangularCall call{{},    a.untyped_data(), b.untyped_data(), x->untyped_data(),
                           upper, unit,             trans,            conj};
  LXK_RETURN_IF_ERROR(
      CheckDenseBatch("lxk_small_triangular_solve", a, b, *x, call.batch));
  return RunTyped(pool, a.element_type(), call.batch.n, call);
}

}  // namespace

LXK_REGISTER_TARGET("lxk_small_triangular_solve", LxkSmallTriangularSolve,
                    SmallTriangularSolve,
                    ffi::Ffi::Bind()
                        .Ctx<ffi::ThreadPool>()
                        .Arg<ffi::AnyBuffer>()
                        .Arg<ffi::AnyBuffer>()
                        .Ret<ffi::AnyBuffer>()
                        .Attr<bool>("upper")
                        .Attr<bool>("unit")
                        .Attr<bool>("trans")
                        .Attr<bool>("conj"));

#endif  // LXK_ELEMENT_TYPE

}  // namespace lxk
