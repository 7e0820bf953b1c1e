// The CUDA emulator: runs the kernels of csrc/cuda/*.cu, compiled as host C++, on the CPU, so
// that they are checked against the CPU kernels on machines without a GPU (tests only; never
// in a shipped module).
//
// Each block's threads run as cooperative fibers (ucontext, a guard page under every stack) on
// one worker thread; blocks are spread over a few workers. A fiber runs until it reaches a
// barrier, a warp collective or its end; the scheduler then releases the barrier or completes
// the collective. The order in which runnable fibers are resumed is forward, reversed or
// random (FASTNN_EMU_ORDER=forward|reverse|random, FASTNN_EMU_SEED), which exposes code that
// depends on it (a missing __syncthreads). Misuse is reported with file and line as an
// exception from the launch: a barrier some threads of the block never reach (an early
// return), two different barriers met at once, a warp collective whose mask names a lane that
// has exited or waits elsewhere, a shuffle from a lane outside the mask, more than 1024
// threads, too much dynamic shared memory. Dynamic shared memory is filled with NaN bytes
// before each block, so reads of unwritten shared memory show in the results.
//
// Happens-before is CUDA's: everything a block's threads wrote before a barrier or collective
// is visible after it (one worker runs the whole block). Blocks on different workers run
// concurrently, so a non-atomic cross-block update is a data race for ThreadSanitizer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>

namespace fastnn {
namespace emu {

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
using cudaStream_t = void*;

// The running fiber's coordinates.
struct ThreadCoords {
  uint3 thread, block;
  dim3 block_dim, grid_dim;
};
const ThreadCoords& coords();

// Blocking points of the running fiber (they return once the scheduler has resolved them).
void sync_threads(const char* file, int line);
void sync_warp(unsigned mask, const char* file, int line);
// Warp collectives on up to 8 bytes: kind 0 = shfl (idx), 1 = up, 2 = down, 3 = xor,
// 4 = ballot, 5 = any, 6 = all. Returns the value the lane receives (or the vote).
uint64_t warp_collective(int kind, unsigned mask, uint64_t value, int arg, int width, const char* file,
                         int line);
void* dynamic_shared();

// Runs kernel() for every thread of the grid; throws std::runtime_error on misuse (naming
// where), after every block has stopped.
void launch(dim3 grid, dim3 block, size_t shared_bytes, const char* where,
            const std::function<void()>& kernel);

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of <= 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

template <class F>
struct Launcher {
  F* kernel;
  dim3 grid, block;
  size_t shared;
  const char* where;
  template <class... Args>
  void operator()(Args... args) const {
    F* k = kernel;
    launch(grid, block, shared, where, [=] { k(args...); });
  }
};
// The stream is accepted and ignored: launches run to completion in order.
template <class F>
Launcher<F> launcher(F* kernel, dim3 grid, dim3 block, size_t shared, cudaStream_t /*stream*/,
                     const char* where) {
  return Launcher<F>{kernel, grid, block, shared, where};
}

// Atomic read-modify-write on global or shared memory (a compare-exchange loop for floats).
template <class T, class Op>
inline T atomic_update(T* p, Op op) {
  T old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  if constexpr (std::is_integral<T>::value) {
    while (!__atomic_compare_exchange_n(p, &old, op(old), true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
  } else {
    T desired = op(old);
    while (!__atomic_compare_exchange(p, &old, &desired, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
      desired = op(old);
  }
  return old;
}

}  // namespace emu
}  // namespace fastnn

// ---- The CUDA names, for the kernel sources ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define threadIdx (::fastnn::emu::coords().thread)
#define blockIdx (::fastnn::emu::coords().block)
#define blockDim (::fastnn::emu::coords().block_dim)
#define gridDim (::fastnn::emu::coords().grid_dim)
#define warpSize 32
#define __syncthreads() ::fastnn::emu::sync_threads(__FILE__, __LINE__)
using ::fastnn::emu::cudaStream_t;
using ::fastnn::emu::dim3;
using std::max;  // CUDA's min/max overloads for integers
using std::min;

namespace fastnn {
namespace emu {
// Call sites of the warp collectives, so that a misuse names its file and line.
struct At {
  const char* file;
  int line;
  void syncwarp(unsigned mask = 0xffffffffu) const { sync_warp(mask, file, line); }
  template <class T>
  T shfl(int kind, unsigned mask, T v, int arg, int width = 32) const {
    return from_bits<T>(warp_collective(kind, mask, to_bits(v), arg, width, file, line));
  }
  unsigned vote(int kind, unsigned mask, bool p) const {
    return static_cast<unsigned>(warp_collective(kind, mask, p ? 1 : 0, 0, 32, file, line));
  }
};
}  // namespace emu
}  // namespace fastnn

#define FASTNN_EMU_AT (::fastnn::emu::At{__FILE__, __LINE__})
#define __syncwarp(...) FASTNN_EMU_AT.syncwarp(__VA_ARGS__)
#define __shfl_sync(...) FASTNN_EMU_AT.shfl(0, __VA_ARGS__)
#define __shfl_up_sync(...) FASTNN_EMU_AT.shfl(1, __VA_ARGS__)
#define __shfl_down_sync(...) FASTNN_EMU_AT.shfl(2, __VA_ARGS__)
#define __shfl_xor_sync(...) FASTNN_EMU_AT.shfl(3, __VA_ARGS__)
#define __ballot_sync(mask, p) FASTNN_EMU_AT.vote(4, mask, (p))
#define __any_sync(mask, p) static_cast<int>(FASTNN_EMU_AT.vote(5, mask, (p)))
#define __all_sync(mask, p) static_cast<int>(FASTNN_EMU_AT.vote(6, mask, (p)))

template <class T>
inline T atomicAdd(T* p, T v) {
  return ::fastnn::emu::atomic_update(p, [v](T o) { return o + v; });
}
template <class T>
inline T atomicMax(T* p, T v) {
  return ::fastnn::emu::atomic_update(p, [v](T o) { return o < v ? v : o; });
}
template <class T>
inline T atomicExch(T* p, T v) {
  return ::fastnn::emu::atomic_update(p, [v](T) { return v; });
}

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

#define FASTNN_LAUNCH(kernel, grid, block, smem, stream) \
  ::fastnn::emu::launcher(kernel, grid, block, smem, stream, __FILE__ ":" FASTNN_EMU_STR(__LINE__))
#define FASTNN_EMU_STR2(x) #x
#define FASTNN_EMU_STR(x) FASTNN_EMU_STR2(x)
#define FASTNN_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::fastnn::emu::dynamic_shared())
