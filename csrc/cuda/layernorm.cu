// Layer norm on the GPU (the contract of csrc/ops/layernorm.h; sums in float32 on the GPU).
// Forward and dx: one block of 256 threads per row, block reductions for the row sums (mean,
// then the variance about it: two passes, as the CPU). dweight / dbias: one thread per column,
// summing the rows in order (deterministic).
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 256;

__global__ void __launch_bounds__(THREADS)
    ln_forward_kernel(int64_t n, const float* __restrict__ x, const float* __restrict__ weight,
                      const float* __restrict__ bias, float eps, float* y, float* mean_out, float* rstd_out) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * n;
  float* yr = y + row * n;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += xr[i];
  const float mean = block_sum(s, scratch) / static_cast<float>(n);
  float q = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = xr[i] - mean;
    q = fmaf(d, d, q);
  }
  const float var = block_sum(q, scratch) / static_cast<float>(n);
  const float rstd = 1.0f / sqrtf(var + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = (xr[i] - mean) * rstd;
    if (weight) v = v * weight[i];
    if (bias) v = v + bias[i];
    yr[i] = v;
  }
  if (threadIdx.x == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

__global__ void __launch_bounds__(THREADS)
    ln_backward_kernel(int64_t n, const float* __restrict__ dy, const float* __restrict__ x,
                       const float* __restrict__ mean, const float* __restrict__ rstd,
                       const float* __restrict__ weight, float* dx) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float *dyr = dy + row * n, *xr = x + row * n;
  const float mu = mean[row], rs = rstd[row];
  float sg = 0.0f, sgx = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float g = weight ? dyr[i] * weight[i] : dyr[i];
    sg += g;
    sgx = fmaf(g, (xr[i] - mu) * rs, sgx);
  }
  const float inv_n = 1.0f / static_cast<float>(n);
  const float mg = block_sum(sg, scratch) * inv_n;
  const float mgx = block_sum(sgx, scratch) * inv_n;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float g = weight ? dyr[i] * weight[i] : dyr[i];
    const float xhat = (xr[i] - mu) * rs;
    dx[row * n + i] = rs * (g - mg - xhat * mgx);
  }
}

__global__ void __launch_bounds__(THREADS)
    ln_param_grads_kernel(int64_t m, int64_t n, const float* __restrict__ dy, const float* __restrict__ x,
                          const float* __restrict__ mean, const float* __restrict__ rstd, float* dweight,
                          float* dbias) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= n) return;
  float sw = 0.0f, sb = 0.0f;
  for (int64_t r = 0; r < m; ++r) {
    const float d = dy[r * n + col];
    sw = fmaf(d, (x[r * n + col] - mean[r]) * rstd[r], sw);
    sb += d;
  }
  dweight[col] = sw;
  dbias[col] = sb;
}

}  // namespace

void layer_norm_forward(int64_t m, int64_t n, const float* x, const float* weight, const float* bias,
                        float eps, float* y, float* mean, float* rstd, Stream stream) {
  if (m == 0 || n == 0) return;
  FASTNN_LAUNCH(ln_forward_kernel, blocks_for(m, 1, 2147483647u), THREADS, 0,
                static_cast<cudaStream_t>(stream))(n, x, weight, bias, eps, y, mean, rstd);
  check_launch("layer_norm_forward");
}

void layer_norm_backward(int64_t m, int64_t n, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* weight, float* dx, float* dweight, float* dbias,
                         Stream stream) {
  if (n == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (m > 0) {
    FASTNN_LAUNCH(ln_backward_kernel, blocks_for(m, 1, 2147483647u), THREADS, 0, s)(n, dy, x, mean, rstd,
                                                                                    weight, dx);
    check_launch("layer_norm_backward");
  }
  if (dweight && dbias) {  // zeros for an empty batch
    FASTNN_LAUNCH(ln_param_grads_kernel, blocks_for(n, THREADS, 2147483647u), THREADS, 0, s)(
        m, n, dy, x, mean, rstd, dweight, dbias);
    check_launch("layer_norm_backward");
  }
}

}  // namespace cuda
}  // namespace fastnn
