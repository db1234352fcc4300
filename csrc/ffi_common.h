// What every FFI handler of lineax-kernels shares: the registry of FFI targets,
// batch sizes from buffer shapes, dispatch on element type and on the static
// size, and splitting a batch over XLA's CPU thread pool.
//
// A kernel is one source, csrc/<k>.cc, that CMakeLists.txt compiles once per
// element type (LXK_ELEMENT_TYPE defined: the typed driver) and once more without
// it (the handler), so that the four instantiations build in parallel. Its shape:
//
//   struct FooCall {             // one call: sizes, pointers, flags
//     ...;
//     template <typename T> void Run(ffi::ThreadPool& pool) const;
//   };
//   #ifdef LXK_ELEMENT_TYPE
//   template <typename T> void FooCall::Run(ffi::ThreadPool& pool) const {...}
//   LXK_INSTANTIATE_RUN(FooCall);
//   #else
//   ffi::Error Foo(...) { ...check shapes...; return RunTyped(pool, type, n, call); }
//   LXK_REGISTER_TARGET("lxk_foo", LxkFoo, Foo, ffi::Ffi::Bind()...);
//   #endif
#ifndef LINEAX_KERNELS_FFI_COMMON_H_
#define LINEAX_KERNELS_FFI_COMMON_H_

#include <algorithm>
#include <atomic>
#include <complex>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "simd.h"
#include "xla/ffi/api/ffi.h"

namespace lxk {

namespace ffi = xla::ffi;

// ---- The registry of FFI targets -------------------------------------------------

// One FFI target: its name and its handler.
struct Target {
  const char* name;
  XLA_FFI_Handler* handler;
};

// Every target of the library, in the order their sources' static initialisers
// ran; read by the exported lxk_num_targets / lxk_target_name /
// lxk_target_handler (native.cc).
inline std::vector<Target>& Targets() {
  static std::vector<Target> targets;
  return targets;
}

struct RegisterTarget {
  RegisterTarget(const char* name, XLA_FFI_Handler* handler) {
    Targets().push_back({name, handler});
  }
};

}  // namespace lxk

// Defines the XLA FFI handler `symbol` (exported, extern "C") that binds its
// arguments as the binding `...` says and calls `impl`, and records it in the
// registry as the FFI target `name`.
#define LXK_REGISTER_TARGET(name, symbol, impl, ...)                            \
  _Pragma("GCC visibility push(default)")                                      \
      XLA_FFI_DEFINE_HANDLER_SYMBOL(symbol, impl, __VA_ARGS__);                \
  _Pragma("GCC visibility pop") static const ::lxk::RegisterTarget             \
      lxk_register_##symbol(name, symbol)

// In a source compiled for one element type: instantiates Call::Run for it.
#define LXK_INSTANTIATE_RUN(Call) \
  template void Call::Run<LXK_ELEMENT_TYPE>(::lxk::ffi::ThreadPool&) const

namespace lxk {

// Returns `expr`'s ffi::Error if it is a failure.
#define LXK_RETURN_IF_ERROR(expr)                   \
  do {                                              \
    if (auto lxk_error = (expr); lxk_error.failure()) \
      return lxk_error;                             \
  } while (false)

// ---- Batch sizes -----------------------------------------------------------------

// The number of systems in a buffer whose every system has `per_system` entries:
// all leading dimensions are batch dimensions (nested vmap, sharding), and an
// operand shared by the whole batch has exactly one system.
inline int64_t NumSystems(const ffi::AnyBuffer& buffer, int64_t per_system) {
  return per_system == 0 ? 0 : buffer.element_count() / per_system;
}

// Checks that an operand holds `n` systems or one shared by all.
inline bool BatchMatches(int64_t systems, int64_t n) {
  return systems == n || systems == 1;
}

// The stride between an operand's systems: 0 for one shared by the whole batch.
inline std::ptrdiff_t Stride(int64_t systems, int64_t per_system) {
  return systems == 1 ? 0 : per_system;
}

// The batch of a dense solve `a: (..., d, d), b: (..., d) -> x: (..., d)`: the
// size d, the number of systems n and those of each operand (n, or 1 for an
// operand shared by the whole batch).
struct DenseBatch {
  int d = 0;
  int64_t n = 0, na = 0, nb = 0;
};

// Checks the shapes and dtypes of a dense solve (an error here is a bug in the
// Python wrapper, not bad data) and gives its batch.
inline ffi::Error CheckDenseBatch(const char* name, const ffi::AnyBuffer& a,
                                  const ffi::AnyBuffer& b, const ffi::AnyBuffer& x,
                                  DenseBatch& out) {
  auto a_dims = a.dimensions();
  auto b_dims = b.dimensions();
  if (a_dims.size() < 2 || b_dims.size() < 1 ||
      a_dims[a_dims.size() - 1] != a_dims[a_dims.size() - 2] ||
      a_dims[a_dims.size() - 1] != b_dims[b_dims.size() - 1]) {
    return ffi::Error::InvalidArgument(std::string(name) +
                                       ": expected a: (..., d, d) and b: (..., d)");
  }
  if (a.element_type() != b.element_type() || a.element_type() != x.element_type()) {
    return ffi::Error::InvalidArgument(std::string(name) + ": mismatched dtypes");
  }
  out.d = static_cast<int>(b_dims[b_dims.size() - 1]);
  out.n = NumSystems(x, out.d);
  out.na = NumSystems(a, int64_t{out.d} * out.d);
  out.nb = NumSystems(b, out.d);
  if (!BatchMatches(out.na, out.n) || !BatchMatches(out.nb, out.n)) {
    return ffi::Error::InvalidArgument(std::string(name) + ": mismatched batch sizes");
  }
  return ffi::Error::Success();
}

// ---- Dispatch on element type and size -------------------------------------------

// Calls call.Run<T>(pool) for the element type T of `type`; nothing for an empty
// batch (`n` systems).
template <typename Call>
ffi::Error RunTyped(ffi::ThreadPool& pool, ffi::DataType type, int64_t n,
                    const Call& call) {
  auto run = [&]<typename T>() {
    if (n > 0) call.template Run<T>(pool);
    return ffi::Error::Success();
  };
  switch (type) {
    case ffi::DataType::F32:
      return run.template operator()<float>();
    case ffi::DataType::F64:
      return run.template operator()<double>();
    case ffi::DataType::C64:
      return run.template operator()<std::complex<float>>();
    case ffi::DataType::C128:
      return run.template operator()<std::complex<double>>();
    default:
      return ffi::Error::InvalidArgument(
          "lineax-kernels: unsupported element type (float32, float64, complex64 "
          "and complex128 are supported)");
  }
}

// The sizes with a straight-line (fully unrolled) instantiation; larger ones run
// the same code with loops (D = 0).
inline constexpr int kMaxStaticSize = 8;

// Calls f.template operator()<D>() with D = d for d <= kMaxStaticSize, else D = 0.
template <int D = 1, typename F>
void DispatchSize(int d, F&& f) {
  if constexpr (D > kMaxStaticSize) {
    f.template operator()<0>();
  } else {
    if (d == D) return f.template operator()<D>();
    DispatchSize<D + 1>(d, std::forward<F>(f));
  }
}

// ---- Splitting a batch over the thread pool --------------------------------------

// Batches smaller than this many bytes of input run on one thread: below it the
// cost of waking pool threads exceeds the work.
inline constexpr int64_t kParallelBytes = 1 << 18;

// The input of a batch, which decides how it is split: `total` bytes (an operand
// shared by the whole batch counted once) and `per_system` bytes of one system.
struct BatchBytes {
  int64_t total, per_system;
};

// The input of a dense solve of element type T.
template <typename T>
BatchBytes DenseBytes(const DenseBatch& batch) {
  const int64_t d = batch.d, size = sizeof(T);
  return {(batch.na * d * d + batch.nb * d) * size, d * (d + 1) * size};
}

// Threads a kernel may use: XLA's intra-op pool plus the calling thread, capped by
// the environment variable LINEAX_KERNELS_NUM_THREADS if set (read once; used by
// the benchmarks to compare 1 and 2 threads).
inline int64_t MaxThreads(ffi::ThreadPool& pool) {
  static const int64_t cap = [] {
    const char* env = std::getenv("LINEAX_KERNELS_NUM_THREADS");
    return env != nullptr ? std::max<int64_t>(1, std::atoll(env)) : int64_t{1} << 30;
  }();
  return std::min<int64_t>(cap, std::max<int64_t>(1, pool.num_threads()) + 1);
}

// Runs fn(begin, end) over [0, n) in chunks of at least `grain`, on the calling
// thread and on XLA's intra-op thread pool. Chunks are claimed from a shared
// counter, so the caller never waits for a pool task that has not started (no
// deadlock if the pool is busy): it waits only for chunks already claimed.
template <typename Fn>
void ParallelFor(ffi::ThreadPool& pool, int64_t n, int64_t grain, Fn fn) {
  const int64_t max_chunks = MaxThreads(pool);
  const int64_t chunks =
      std::min<int64_t>(max_chunks, std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
  if (chunks <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0};
    int64_t done = 0;
    std::mutex mu;
    std::condition_variable cv;
  };
  auto shared = std::make_shared<Shared>();
  const int64_t per_chunk = (n + chunks - 1) / chunks;
  // `fn` lives on the caller's stack; tasks touch it only after claiming a chunk,
  // and the caller returns only once every chunk is done.
  auto work = [shared, chunks, per_chunk, n, &fn]() {
    for (;;) {
      const int64_t c = shared->next.fetch_add(1);
      if (c >= chunks) return;
      fn(c * per_chunk, std::min(n, (c + 1) * per_chunk));
      std::lock_guard<std::mutex> lock(shared->mu);
      if (++shared->done == chunks) shared->cv.notify_all();
    }
  };
  for (int64_t t = 0; t < chunks - 1; ++t) {
    auto task = work;
    pool.Schedule(std::move(task));
  }
  work();
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done == chunks; });
}

// Runs range(begin, end) over systems [0, n) of element type T: on the calling
// thread for a batch of fewer than kParallelBytes of input, else split over the
// thread pool in chunks of whole SIMD tiles (Lanes<T>::W systems), each of at
// least kParallelBytes of input.
template <typename T, typename Range>
void RunBatch(ffi::ThreadPool& pool, int64_t n, BatchBytes bytes, Range&& range) {
  if (bytes.total < kParallelBytes) {
    range(int64_t{0}, n);
    return;
  }
  const int64_t w = Lanes<T>::W;
  const int64_t tiles = (n + w - 1) / w;
  const int64_t grain = std::max<int64_t>(1, kParallelBytes / (w * bytes.per_system));
  ParallelFor(pool, tiles, grain, [&](int64_t t0, int64_t t1) {
    range(t0 * w, std::min(n, t1 * w));
  });
}

}  // namespace lxk

#endif  // LINEAX_KERNELS_FFI_COMMON_H_
