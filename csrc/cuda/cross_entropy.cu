// Fused cross-entropy on the GPU over rows (M, C) of logits, the contract of
// csrc/ops/softmax.h: one warp per row (shuffle reductions for the max, the sum of exponentials
// and the weighted sums), per-row loss and weight out (the reduction is the caller's), and the
// backward from per-row scales. Targets are checked by the caller (in [0, C) or ignore_index).
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 256, WARPS = THREADS / 32;

// loss_i = (1 - e) w_t (lse - x_t) + (e / C) (W lse - sum_c w_c x_c); weight_i = w_t.
__global__ void __launch_bounds__(THREADS)
    ce_forward_kernel(int64_t rows, int64_t C, const float* __restrict__ x, const int64_t* __restrict__ t,
                      const float* __restrict__ w, int64_t ignore_index, float smoothing, float* loss,
                      float* weight) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * WARPS + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp leaves together
  const int64_t ti = t[row];
  if (ti == ignore_index) {
    if (lane == 0) loss[row] = weight[row] = 0.0f;
    return;
  }
  const float* xr = x + row * C;
  float m = -INFINITY;
  for (int64_t c = lane; c < C; c += 32) m = fmaxf(m, xr[c]);
  m = warp_max(m);
  float s = 0.0f, ws = 0.0f, wx = 0.0f;  // sum exp, sum w_c, sum w_c x_c
  for (int64_t c = lane; c < C; c += 32) {
    const float wc = w ? w[c] : 1.0f;
    s += expf(xr[c] - m);
    ws += wc;
    wx = fmaf(wc, xr[c], wx);
  }
  s = warp_sum(s);
  ws = warp_sum(ws);
  wx = warp_sum(wx);
  if (lane == 0) {
    const float lse = m + logf(s), wt = w ? w[ti] : 1.0f, e = smoothing;
    loss[row] = (1.0f - e) * wt * (lse - xr[ti]) + (e / static_cast<float>(C)) * (ws * lse - wx);
    weight[row] = wt;
  }
}

// dx_c = s_i (p_c ((1 - e) w_t + e W / C) - (1 - e) w_t [c == t] - (e / C) w_c).
__global__ void __launch_bounds__(THREADS)
    ce_backward_kernel(int64_t rows, int64_t C, const float* __restrict__ x, const int64_t* __restrict__ t,
                       const float* __restrict__ w, int64_t ignore_index, float smoothing,
                       const float* __restrict__ scale, float* dx) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * WARPS + threadIdx.x / 32;
  if (row >= rows) return;
  const int64_t ti = t[row];
  const float* xr = x + row * C;
  float* dr = dx + row * C;
  if (ti == ignore_index) {
    for (int64_t c = lane; c < C; c += 32) dr[c] = 0.0f;
    return;
  }
  float m = -INFINITY;
  for (int64_t c = lane; c < C; c += 32) m = fmaxf(m, xr[c]);
  m = warp_max(m);
  float s = 0.0f, ws = 0.0f;
  for (int64_t c = lane; c < C; c += 32) {
    s += expf(xr[c] - m);
    ws += w ? w[c] : 1.0f;
  }
  s = warp_sum(s);
  ws = warp_sum(ws);
  const float e = smoothing, wt = w ? w[ti] : 1.0f, inv = 1.0f / s, si = scale[row];
  const float pc = (1.0f - e) * wt + e * ws / static_cast<float>(C), ec = e / static_cast<float>(C);
  for (int64_t c = lane; c < C; c += 32) {
    const float p = expf(xr[c] - m) * inv, wc = w ? w[c] : 1.0f;
    dr[c] = si * (p * pc - (c == ti ? (1.0f - e) * wt : 0.0f) - ec * wc);
  }
}

}  // namespace

void cross_entropy_forward(int64_t rows, int64_t C, const float* x, const int64_t* target,
                           const float* weight, int64_t ignore_index, float label_smoothing, float* loss,
                           float* row_weight, Stream stream) {
  if (rows == 0) return;
  FASTNN_LAUNCH(ce_forward_kernel, blocks_for(rows, WARPS, 2147483647u), THREADS, 0,
                static_cast<cudaStream_t>(stream))(rows, C, x, target, weight, ignore_index, label_smoothing,
                                                   loss, row_weight);
  check_launch("cross_entropy_forward");
}

void cross_entropy_backward(int64_t rows, int64_t C, const float* x, const int64_t* target,
                            const float* weight, int64_t ignore_index, float label_smoothing,
                            const float* scale, float* dx, Stream stream) {
  if (rows == 0 || C == 0) return;
  FASTNN_LAUNCH(ce_backward_kernel, blocks_for(rows, WARPS, 2147483647u), THREADS, 0,
                static_cast<cudaStream_t>(stream))(rows, C, x, target, weight, ignore_index, label_smoothing,
                                                   scale, dx);
  check_launch("cross_entropy_backward");
}

}  // namespace cuda
}  // namespace fastnn
