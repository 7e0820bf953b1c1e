// grad_norm on the GPU (the contract of csrc/ops/optim.h): the total norm of order p over a
// list of float32 arrays, accumulated in float64.
//   p = 2: sqrt(sum x^2); p = 1: sum |x|; p = inf: max |x| (a NaN anywhere gives NaN, as the CPU
//   and torch); other p > 0: (sum |x|^p)^(1/p) with a float64 pow per element.
// Pass 1, one launch per array of n > 0 elements: grad_norm_partials(n) blocks of 256 threads
// (4096 elements per block, at most 1024 blocks: a count fixed by n, not by the GPU) stride over
// the array; each thread adds its elements in order into a float64 sum (or keeps the max), and
// a fixed-tree block reduction writes the block's value to its own slot of `partials` (the
// arrays' slots follow each other in list order). Pass 2, one block: each thread adds the slots
// i = tid (mod 256) in order, a fixed-tree block reduction adds the 256 sums, thread 0 takes
// the root and writes *out. No atomics, so the result is the same on every run and every GPU;
// it differs from the CPU's (blocks of 8192 in 8 lanes) only by float64 rounding.
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 256;

enum Kind : int { kL2 = 0, kL1 = 1, kInf = 2, kP = 3 };

// The max of a and b, NaN if either is NaN (whichever argument it is in).
__device__ __forceinline__ double max_nan(double a, double b) { return (b > a || b != b) ? b : a; }

// Block max of values >= 0 (or NaN), as block_sum: every thread calls it, every thread gets it.
__device__ __forceinline__ double block_max_nan(double v, double* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_xor_sync(kFullMask, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

__global__ void __launch_bounds__(THREADS)
    norm_partial_kernel(int kind, double p, const float* __restrict__ x, int64_t n, double* part) {
  __shared__ double scratch[32];
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  double acc = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const double v = fabs(static_cast<double>(x[i]));
    if (kind == kL2) {
      acc += v * v;
    } else if (kind == kL1) {
      acc += v;
    } else if (kind == kInf) {
      acc = max_nan(acc, v);
    } else {
      acc += pow(v, p);
    }
  }
  acc = kind == kInf ? block_max_nan(acc, scratch) : block_sum(acc, scratch);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(THREADS)
    norm_final_kernel(int kind, double p, const double* __restrict__ part, int64_t total, double* out) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < total; i += blockDim.x)
    acc = kind == kInf ? max_nan(acc, part[i]) : acc + part[i];
  acc = kind == kInf ? block_max_nan(acc, scratch) : block_sum(acc, scratch);
  if (threadIdx.x == 0)
    *out = kind == kL2 ? sqrt(acc) : (kind == kL1 || kind == kInf) ? acc : pow(acc, 1.0 / p);
}

}  // namespace

void grad_norm(int64_t count, const float* const* xs, const int64_t* ns, double p, double* partials,
               double* out, Stream stream) {
  const int kind = p == 2.0 ? kL2 : p == 1.0 ? kL1 : std::isinf(p) ? kInf : kP;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  int64_t first = 0;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t blocks = grad_norm_partials(ns[i]);
    if (blocks == 0) continue;
    FASTNN_LAUNCH(norm_partial_kernel, static_cast<unsigned>(blocks), THREADS, 0, s)(kind, p, xs[i], ns[i],
                                                                                     partials + first);
    check_launch("grad_norm");
    first += blocks;
  }
  FASTNN_LAUNCH(norm_final_kernel, 1u, THREADS, 0, s)(kind, p, partials, first, out);
  check_launch("grad_norm");
}

}  // namespace cuda
}  // namespace fastnn
