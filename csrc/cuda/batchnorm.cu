// Batch normalisation of NCHW float32 on the GPU (the contract of csrc/ops/batchnorm.h: the
// same formulas, the same float64 statistics, running statistics updated in place with the
// unbiased variance, save_mean / save_invstd as float32).
// One block of 512 threads per channel c; its M = N*H*W values are walked as one flat index j
// (run j / HW, offset j % HW, kept incrementally after two 32-bit divisions per thread), so
// consecutive threads read consecutive floats however small H*W is. Each thread adds its values
// in a fixed order into float64 partial sums, then a fixed-tree block reduction (warp
// butterflies, then the 16 warp sums) gives the channel's sums: the results depend on nothing
// but the input (not on timing, nor on the GPU), and they are at least as accurate as the CPU's.
// Why float64 partial sums and not compensated float32: a float converts to float64 exactly, and
// a thread's float64 sum of ~M/512 values has a relative error (~M/512 * 2^-53) far below
// float32's, for one add per element; Kahan summation costs four dependent float32 operations
// per element and still leaves the block reduction in float32. The passes are bound by memory
// on sm_80 / sm_90 (float64 at half the float32 rate): a few float64 operations per 4-byte
// load. (On consumer parts, float64 at 1/64 of the rate, the second pass nears the compute limit.)
// Forward, training: pass 1 sums x; mf = float(sum / M); pass 2 sums d = x - mf and d^2 in
// float64, mean = mf + sum d / M, var = sum d^2 / M - (sum d / M)^2 (the CPU's correction for
// the rounding of mf). Thread 0 updates running_mean / running_var (when given) and writes
// save_mean / save_invstd; pass 3 writes y = (x - mean) * alpha + beta with one fused
// multiply-add. Eval: the running statistics, one pass. M = 0: save_* = 0, running untouched.
// Backward: sums sdy = sum dy and dot = sum (x - mean) dy in float64 (skipped in eval without
// weight), thread 0 writes dweight = dot * invstd and dbias = sdy, then
// dx = (dy - sdy/M - (x - mean) * dot * invstd^2 / M) * invstd * weight (training) or
// dy * invstd * weight (eval). M = 0: dweight = dbias = 0.
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "ops/batchnorm.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 512;

// f(k) for the offsets k (from the channel's first float) of this thread's elements of a
// channel: element j < m is run j / hw at offset j % hw, runs `stride` floats apart. The
// divisions are 32-bit (a 64-bit one is a call that spilled registers): hw > blockDim needs none.
template <class F>
__device__ __forceinline__ void over_channel(int64_t m, int64_t hw, int64_t stride, F f) {
  const unsigned t = threadIdx.x, step = blockDim.x;
  int64_t r = 0, i = t, step_r = 0, step_i = step;
  if (hw <= static_cast<int64_t>(step)) {
    const unsigned h = static_cast<unsigned>(hw);
    r = t / h;
    i = t % h;
    step_r = step / h;
    step_i = step % h;
  }
  for (int64_t j = t; j < m; j += step) {
    f(r * stride + i);
    r += step_r;
    i += step_i;
    if (i >= hw) {
      i -= hw;
      ++r;
    }
  }
}

__global__ void __launch_bounds__(THREADS)
    bn_forward_kernel(int64_t n, int64_t hw, int64_t stride, bool training, double momentum, double eps,
                      const float* __restrict__ x, const float* __restrict__ weight,
                      const float* __restrict__ bias, float* running_mean, float* running_var, float* y,
                      float* save_mean, float* save_invstd) {
  __shared__ double scratch[32];
  const int64_t c = blockIdx.x, m = n * hw;
  // An empty batch (uniform over the block): nothing to normalise. The saved statistics are 0
  // in training (there are none) and, in eval, the running ones as for any batch.
  if (m == 0) {
    if (threadIdx.x == 0) {
      save_mean[c] = training ? 0.0f : running_mean[c];
      save_invstd[c] =
          training ? 0.0f : static_cast<float>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
    }
    return;
  }
  const float* xc = x + c * hw;
  double mean, var;
  if (training) {
    const double inv_m = 1.0 / static_cast<double>(m);
    double s = 0.0;
    over_channel(m, hw, stride, [&](int64_t k) { s += static_cast<double>(xc[k]); });
    const float mf = static_cast<float>(block_sum(s, scratch) * inv_m);
    double s1 = 0.0, s2 = 0.0;
    over_channel(m, hw, stride, [&](int64_t k) {
      const double d = static_cast<double>(xc[k]) - static_cast<double>(mf);
      s1 += d;
      s2 += d * d;
    });
    s1 = block_sum(s1, scratch);
    s2 = block_sum(s2, scratch);
    const double d = s1 * inv_m;
    mean = std::isinf(mf) ? static_cast<double>(mf) : static_cast<double>(mf) + d;  // (as the CPU's)
    var = s2 * inv_m - d * d;
    if (var < 0.0) var = 0.0;  // rounding; NaN stays NaN
    if (running_mean && threadIdx.x == 0) {
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
      const double unbiased = var * static_cast<double>(m) / static_cast<double>(m - 1);
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
  } else {
    mean = running_mean[c];
    var = running_var[c];
  }
  const double invstd = 1.0 / sqrt(var + eps);
  const float mean_f = static_cast<float>(mean);
  const float alpha = static_cast<float>(invstd * (weight ? weight[c] : 1.0f));
  const float beta = bias ? bias[c] : 0.0f;
  if (threadIdx.x == 0) {
    save_mean[c] = mean_f;
    save_invstd[c] = static_cast<float>(invstd);
  }
  float* yc = y + c * hw;
  over_channel(m, hw, stride, [&](int64_t k) { yc[k] = fmaf(xc[k] - mean_f, alpha, beta); });
}

__global__ void __launch_bounds__(THREADS)
    bn_backward_kernel(int64_t n, int64_t hw, int64_t stride, bool training, const float* __restrict__ dy,
                       const float* __restrict__ x, const float* __restrict__ weight,
                       const float* __restrict__ save_mean, const float* __restrict__ save_invstd, float* dx,
                       float* dweight, float* dbias) {
  __shared__ double scratch[32];
  const int64_t c = blockIdx.x, m = n * hw;
  if (m == 0) {
    if (dweight && threadIdx.x == 0) {
      dweight[c] = 0.0f;
      dbias[c] = 0.0f;
    }
    return;
  }
  const int64_t off = c * hw;
  const float *g = dy + off, *xc = x + off;
  float* dxc = dx + off;
  const float mf = save_mean[c];
  const double invstd = save_invstd[c], w = weight ? weight[c] : 1.0f;
  const float scale = static_cast<float>(invstd * w);
  if (!training && !weight) {  // nothing to sum (uniform over the block)
    over_channel(m, hw, stride, [&](int64_t k) { dxc[k] = g[k] * scale; });
    return;
  }
  double sdy = 0.0, dot = 0.0;
  over_channel(m, hw, stride, [&](int64_t k) {
    const double gk = g[k];
    sdy += gk;
    dot += (static_cast<double>(xc[k]) - static_cast<double>(mf)) * gk;
  });
  sdy = block_sum(sdy, scratch);
  dot = block_sum(dot, scratch);
  if (dweight && threadIdx.x == 0) {
    dweight[c] = static_cast<float>(dot * invstd);
    dbias[c] = static_cast<float>(sdy);
  }
  if (training) {
    const double inv_m = 1.0 / static_cast<double>(m);
    const float gm = static_cast<float>(sdy * inv_m), kk = static_cast<float>(dot * invstd * invstd * inv_m);
    over_channel(m, hw, stride, [&](int64_t k) { dxc[k] = fmaf(mf - xc[k], kk, g[k] - gm) * scale; });
  } else {
    over_channel(m, hw, stride, [&](int64_t k) { dxc[k] = g[k] * scale; });
  }
}

}  // namespace

void batch_norm2d_forward(const BatchNormArgs& a, const float* x, const float* weight, const float* bias,
                          float* running_mean, float* running_var, float* y, float* save_mean,
                          float* save_invstd, Stream stream) {
  if (a.c == 0) return;
  FASTNN_LAUNCH(bn_forward_kernel, blocks_for(a.c, 1, 2147483647u), THREADS, 0,
                static_cast<cudaStream_t>(stream))(a.n, a.hw, a.c * a.hw, a.training, a.momentum, a.eps, x,
                                                   weight, bias, running_mean, running_var, y, save_mean,
                                                   save_invstd);
  check_launch("batch_norm2d_forward");
}

void batch_norm2d_backward(const BatchNormArgs& a, const float* dy, const float* x, const float* weight,
                           const float* save_mean, const float* save_invstd, float* dx, float* dweight,
                           float* dbias, Stream stream) {
  if (a.c == 0) return;
  FASTNN_LAUNCH(bn_backward_kernel, blocks_for(a.c, 1, 2147483647u), THREADS, 0,
                static_cast<cudaStream_t>(stream))(a.n, a.hw, a.c * a.hw, a.training, dy, x, weight,
                                                   save_mean, save_invstd, dx, dweight, dbias);
  check_launch("batch_norm2d_backward");
}

}  // namespace cuda
}  // namespace fastnn
