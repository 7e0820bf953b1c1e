// Kernels with one CUDA bug each, run by tests/test_cuda_emu.py to show that the emulator
// reports it (compiled into the test-only _fastnn_cuda_emu module, never shipped), and one
// correct kernel of the same shape as a control.
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"

namespace fastnn {
namespace cuda {
namespace {

constexpr unsigned FULL = 0xffffffffu;

// Control: out[i] = in[i] + in[(i + 1) % n] through shared memory, with the barrier.
__global__ void neighbour_sum(const float* in, float* out, int n, bool barrier) {
  FASTNN_DYNAMIC_SHARED(float, s);
  const int i = threadIdx.x;
  s[i] = in[i];
  if (barrier) __syncthreads();  // without it, a thread may read its neighbour's unwritten slot
  out[i] = s[i] + s[(i + 1) % n];
}

__global__ void early_return(float* out) {
  if (threadIdx.x == 5) return;  // thread 5 never reaches the barrier
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void divergent_barriers(float* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

__global__ void shuffle_from_exited(float* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(FULL, 1.0f * threadIdx.x, 1);
}

__global__ void shuffle_outside_mask(float* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1.0f * threadIdx.x, 20);
}

__global__ void warp_sum(const float* in, float* out) {
  float v = in[threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(FULL, v, o);
  if (threadIdx.x % 32 == 0) out[threadIdx.x / 32] = v;
}

// Every block adds its element into out[0]: a race between blocks without the atomic
// (ThreadSanitizer reports it when two blocks run on different workers).
__global__ void cross_block_sum(const float* in, float* out, bool atomic) {
  if (atomic) {
    atomicAdd(out, in[blockIdx.x]);
  } else {
    out[0] += in[blockIdx.x];
  }
}

}  // namespace

// Runs selftest `name` on host buffers in/out of n floats (n threads in one block, or n blocks
// of one thread for the cross-block ones).
void emu_selftest(const std::string& name, const float* in, float* out, int n) {
  if (name == "neighbour_sum" || name == "missing_barrier") {
    FASTNN_LAUNCH(neighbour_sum, 1, n, n * sizeof(float), nullptr)(in, out, n, name == "neighbour_sum");
  } else if (name == "early_return") {
    FASTNN_LAUNCH(early_return, 1, n, 0, nullptr)(out);
  } else if (name == "divergent_barriers") {
    FASTNN_LAUNCH(divergent_barriers, 1, n, 0, nullptr)(out);
  } else if (name == "shuffle_from_exited") {
    FASTNN_LAUNCH(shuffle_from_exited, 1, n, 0, nullptr)(out);
  } else if (name == "shuffle_outside_mask") {
    FASTNN_LAUNCH(shuffle_outside_mask, 1, n, 0, nullptr)(out);
  } else if (name == "warp_sum") {
    FASTNN_LAUNCH(warp_sum, 1, n, 0, nullptr)(in, out);
  } else if (name == "cross_block_race" || name == "cross_block_atomic") {
    for (int i = 0; i < n; ++i) out[i] = 0.0f;
    FASTNN_LAUNCH(cross_block_sum, n, 1, 0, nullptr)(in, out, name == "cross_block_atomic");
  } else if (name == "too_many_threads") {
    FASTNN_LAUNCH(warp_sum, 1, 2048, 0, nullptr)(in, out);
  } else {
    throw std::invalid_argument("emu_selftest: no test named " + name);
  }
  check_launch(name.c_str());
}

}  // namespace cuda
}  // namespace fastnn
