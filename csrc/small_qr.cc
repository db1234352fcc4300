// XLA FFI handler for the small dense QR least-squares solve (small_qr.h), called
// from src/lineax_kernels/_kernels/small_qr.py.
//
//   lxk_small_qr_solve(a: (..., m, n), b: (..., r)) -> x: (..., c)
//   attributes: trans (solve with A^T), conj (solve with conj(A));
//   (r, c) = (m, n), or (n, m) with trans.
//
// Least squares for a tall op(A), minimum norm for a wide one, the ordinary solve
// for a square one. Either operand may hold one system shared by the whole batch;
// one matrix with a batch of right-hand sides is factorised once. Compiled once per
// element type and once for the handler (see ffi_common.h).
#include <cstdint>
#include <string>

#include "ffi_common.h"
#include "small_qr.h"

namespace lxk {

struct SmallQrCall {
  int m = 0, n = 0;
  int64_t systems = 0, na = 0, nb = 0;
  const void* a;
  const void* b;
  void* x;
  bool trans, conj;

  template <typename T>
  void Run(ffi::ThreadPool& pool) const;
};

#ifdef LXK_ELEMENT_TYPE

template <typename T>
void SmallQrCall::Run(ffi::ThreadPool& pool) const {
  const T* a = static_cast<const T*>(this->a);
  const T* b = static_cast<const T*>(this->b);
  T* x = static_cast<T*>(this->x);
  const QrShape shape(m, n, trans, conj);
  const std::ptrdiff_t a_stride = Stride(na, int64_t{m} * n);
  const std::ptrdiff_t b_stride = Stride(nb, shape.rows);
  const int64_t size = sizeof(T);
  const BatchBytes bytes{(na * m * n + nb * shape.rows) * size,
                         (int64_t{m} * n + shape.rows) * size};
  DispatchSize(shape.q, [&]<int Q>() {
    if (na == 1 && systems > Lanes<T>::W) {
      QrFactored<T> factored;
      factored.template Factor<Q>(shape, a);
      RunBatch<T>(pool, systems, bytes, [&](int64_t begin, int64_t end) {
        factored.template SolveRange<Q>(b, b_stride, x, begin, end);
      });
    } else {
      RunBatch<T>(pool, systems, bytes, [&](int64_t begin, int64_t end) {
        QrSolveRange<T, Q>(shape, a, a_stride, b, b_stride, x, begin, end);
      });
    }
  });
}

LXK_INSTANTIATE_RUN(SmallQrCall);

#else

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
  SmallQrCall call;
  call.m = static_cast<int>(a_dims[a_dims.size() - 2]);
  call.n = static_cast<int>(a_dims[a_dims.size() - 1]);
  const int rows = trans ? call.n : call.m, cols = trans ? call.m : call.n;
  if (b_dims[b_dims.size() - 1] != rows || x_dims[x_dims.size() - 1] != cols) {
    return ffi::Error::InvalidArgument(
        "lxk_small_qr_solve: expected a: (..., m, n), b: (..., m) and x: (..., n) "
        "(b: (..., n) and x: (..., m) with trans)");
  }
  if (a.element_type() != b.element_type() ||
      a.element_type() != x->element_type()) {
    return ffi::Error::InvalidArgument("lxk_small_qr_solve: mismatched dtypes");
  }
  call.systems = NumSystems(*x, cols);
  call.na = NumSystems(a, int64_t{call.m} * call.n);
  call.nb = NumSystems(b, rows);
  if (!BatchMatches(call.na, call.systems) || !BatchMatches(call.nb, call.systems)) {
    return ffi::Error::InvalidArgument("lxk_small_qr_solve: mismatched batch sizes");
  }
  call.a = a.untyped_data();
  call.b = b.untyped_data();
  call.x = x->untyped_data();
  call.trans = trans;
  call.conj = conj;
  const int64_t n = call.m == 0 || call.n == 0 ? 0 : call.systems;
  return RunTyped(pool, a.element_type(), n, call);
}

}  // namespace

LXK_REGISTER_TARGET("lxk_small_qr_solve", LxkSmallQrSolve, SmallQrSolve,
                    ffi::Ffi::Bind()
                        .Ctx<ffi::ThreadPool>()
                        .Arg<ffi::AnyBuffer>()
                        .Arg<ffi::AnyBuffer>()
                        .Ret<ffi::AnyBuffer>()
                        .Attr<bool>("trans")
                        .Attr<bool>("conj"));

#endif  // LXK_ELEMENT_TYPE

}  // namespace lxk
