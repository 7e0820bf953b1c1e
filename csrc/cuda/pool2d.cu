// Pooling on the GPU (the contract of csrc/ops/pool2d.h; geometry checked on the host by
// pool2d_shape). One thread per output element for the forwards (the same window walk as the
// CPU: max takes the first maximum, a NaN replaces anything; avg divides by the same count).
// Backward: max adds dy at the forward's indices with atomicAdd (windows may overlap: the
// order of the additions varies); avg gathers, one thread per input element summing the
// outputs whose windows cover it (deterministic), each as dy times the correctly rounded
// reciprocal of its divisor (within an ulp of the CPU's dy / d: a division there would call
// CUDA's slow-path routine and spill). Global average: a block per plane.
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "ops/pool2d.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 256;

__global__ void __launch_bounds__(THREADS)
    max_forward_kernel(Pool2dShape g, const float* __restrict__ x, float* y, int64_t* idx) {
  const int64_t total = g.N * g.C * g.OH * g.OW, step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t ow = e % g.OW, oh = e / g.OW % g.OH, p = e / (g.OW * g.OH);
    const float* xp = x + p * g.H * g.W;
    int64_t h0 = oh * g.SH - g.PH, w0 = ow * g.SW - g.PW;
    const int64_t h1 = min(h0 + (g.KH - 1) * g.DH + 1, g.H), w1 = min(w0 + (g.KW - 1) * g.DW + 1, g.W);
    if (h0 < 0) h0 += (-h0 + g.DH - 1) / g.DH * g.DH;  // the first tap inside, in O(1)
    if (w0 < 0) w0 += (-w0 + g.DW - 1) / g.DW * g.DW;  // the first tap inside, in O(1)
    float m = -INFINITY;
    int64_t mi = h0 * g.W + w0;
    for (int64_t ih = h0; ih < h1; ih += g.DH)
      for (int64_t iw = w0; iw < w1; iw += g.DW) {
        const float v = xp[ih * g.W + iw];
        if (v > m || v != v) {
          m = v;
          mi = ih * g.W + iw;
        }
      }
    y[e] = m;
    idx[e] = mi;
  }
}

__global__ void __launch_bounds__(THREADS) fill_kernel(float* p, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += step) p[e] = 0.0f;
}

__global__ void __launch_bounds__(THREADS)
    max_backward_kernel(Pool2dShape g, const float* __restrict__ dy, const int64_t* __restrict__ idx,
                        const float* __restrict__ relu_x, float* dx) {
  const int64_t out = g.OH * g.OW, in = g.H * g.W, total = g.N * g.C * out;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t i = (e / out) * in + idx[e];  // indices checked on the host to lie in [0, in)
    if (relu_x && relu_x[i] <= 0.0f) continue;  // through the ReLU (NaN passes, as torch)
    atomicAdd(dx + i, dy[e]);
  }
}

// Window of output (oh, ow) clipped to the input, and its divisor.
struct Window {
  int64_t h0, h1, w0, w1;
  float d;
};
__device__ __forceinline__ Window avg_window(const Pool2dShape& g, bool cip, int64_t oh, int64_t ow) {
  const int64_t hs = oh * g.SH - g.PH, he = min(hs + g.KH, g.H + g.PH);
  const int64_t ws = ow * g.SW - g.PW, we = min(ws + g.KW, g.W + g.PW);
  Window w{max(hs, int64_t{0}), min(he, g.H), max(ws, int64_t{0}), min(we, g.W), 0.0f};
  w.d = static_cast<float>(cip ? (he - hs) * (we - ws) : (w.h1 - w.h0) * (w.w1 - w.w0));
  return w;
}

__global__ void __launch_bounds__(THREADS)
    avg_forward_kernel(Pool2dShape g, bool cip, const float* __restrict__ x, float* y) {
  const int64_t total = g.N * g.C * g.OH * g.OW, step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t ow = e % g.OW, oh = e / g.OW % g.OH, p = e / (g.OW * g.OH);
    const Window w = avg_window(g, cip, oh, ow);
    const float* xp = x + p * g.H * g.W;
    float s = 0.0f;
    for (int64_t ih = w.h0; ih < w.h1; ++ih)
      for (int64_t iw = w.w0; iw < w.w1; ++iw) s += xp[ih * g.W + iw];
    y[e] = s / w.d;
  }
}

// Outputs o along one axis whose window [o*s - p, o*s - p + k) covers input i (32-bit: a plane
// holds fewer than 2^31 elements, pool2d_shape's limit).
__device__ __forceinline__ void covering(int i, int k, int s, int p, int n, int* o0, int* o1) {
  const int lo = i + p - k + 1;  // o*s >= lo
  *o0 = lo <= 0 ? 0 : (lo + s - 1) / s;
  *o1 = min((i + p) / s + 1, n);
}

// count_include_pad or not: the divisor of output (oh, ow), in 32-bit plane coordinates.
__device__ __forceinline__ float avg_divisor(int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                                             bool cip, int oh, int ow) {
  const int hs = oh * SH - PH, he = min(hs + KH, H + PH), ws = ow * SW - PW, we = min(ws + KW, W + PW);
  if (cip) return static_cast<float>((he - hs) * (we - ws));
  return static_cast<float>((min(he, H) - max(hs, 0)) * (min(we, W) - max(ws, 0)));
}

__global__ void __launch_bounds__(THREADS)
    avg_backward_kernel(Pool2dShape g, bool cip, const float* __restrict__ dy, float* dx) {
  const int H = static_cast<int>(g.H), W = static_cast<int>(g.W), OH = static_cast<int>(g.OH),
            OW = static_cast<int>(g.OW);
  const int KH = static_cast<int>(g.KH), KW = static_cast<int>(g.KW), SH = static_cast<int>(g.SH),
            SW = static_cast<int>(g.SW), PH = static_cast<int>(g.PH), PW = static_cast<int>(g.PW);
  const int64_t plane = static_cast<int64_t>(H) * W, total = g.N * g.C * plane;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t p = e / plane;
    const int r = static_cast<int>(e - p * plane), iw = r % W, ih = r / W;
    int oh0, oh1, ow0, ow1;
    covering(ih, KH, SH, PH, OH, &oh0, &oh1);
    covering(iw, KW, SW, PW, OW, &ow0, &ow1);
    const float* dyp = dy + p * OH * OW;
    float s = 0.0f;
    for (int oh = oh0; oh < oh1; ++oh)
      for (int ow = ow0; ow < ow1; ++ow)
        s += dyp[oh * OW + ow] * __frcp_rn(avg_divisor(H, W, KH, KW, SH, SW, PH, PW, cip, oh, ow));
    dx[e] = s;
  }
}

__global__ void __launch_bounds__(THREADS)
    global_forward_kernel(int64_t hw, const float* __restrict__ x, float* y) {
  __shared__ float scratch[32];
  const float* xp = x + static_cast<int64_t>(blockIdx.x) * hw;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) s += xp[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) y[blockIdx.x] = s / static_cast<float>(hw);
}

__global__ void __launch_bounds__(THREADS)
    global_backward_kernel(int64_t planes, int64_t hw, const float* __restrict__ dy, float* dx) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < planes * hw; e += step)
    dx[e] = dy[e / hw] / static_cast<float>(hw);
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& g, const float* x, float* y, int64_t* idx, Stream stream) {
  const int64_t total = g.N * g.C * g.OH * g.OW;
  if (total == 0) return;
  FASTNN_LAUNCH(max_forward_kernel, blocks_for(total, THREADS), THREADS, 0,
                static_cast<cudaStream_t>(stream))(g, x, y, idx);
  check_launch("max_pool2d_forward");
}

void max_pool2d_backward(const Pool2dShape& g, const float* dy, const int64_t* idx, const float* relu_x,
                         float* dx, Stream stream) {
  const int64_t in = g.N * g.C * g.H * g.W, total = g.N * g.C * g.OH * g.OW;
  if (in == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  FASTNN_LAUNCH(fill_kernel, blocks_for(in, THREADS), THREADS, 0, s)(dx, in);
  check_launch("max_pool2d_backward");
  if (total == 0) return;
  FASTNN_LAUNCH(max_backward_kernel, blocks_for(total, THREADS), THREADS, 0, s)(g, dy, idx, relu_x, dx);
  check_launch("max_pool2d_backward");
}

void avg_pool2d_forward(const Pool2dShape& g, bool count_include_pad, const float* x, float* y,
                        Stream stream) {
  const int64_t total = g.N * g.C * g.OH * g.OW;
  if (total == 0) return;
  FASTNN_LAUNCH(avg_forward_kernel, blocks_for(total, THREADS), THREADS, 0,
                static_cast<cudaStream_t>(stream))(g, count_include_pad, x, y);
  check_launch("avg_pool2d_forward");
}

void avg_pool2d_backward(const Pool2dShape& g, bool count_include_pad, const float* dy, float* dx,
                         Stream stream) {
  const int64_t total = g.N * g.C * g.H * g.W;
  if (total == 0) return;
  FASTNN_LAUNCH(avg_backward_kernel, blocks_for(total, THREADS), THREADS, 0,
                static_cast<cudaStream_t>(stream))(g, count_include_pad, dy, dx);
  check_launch("avg_pool2d_backward");
}

void global_avg_pool2d_forward(int64_t planes, int64_t hw, const float* x, float* y, Stream stream) {
  if (planes == 0 || hw == 0) return;
  FASTNN_LAUNCH(global_forward_kernel, blocks_for(planes, 1, 2147483647u), THREADS, 0,
                static_cast<cudaStream_t>(stream))(hw, x, y);
  check_launch("global_avg_pool2d_forward");
}

void global_avg_pool2d_backward(int64_t planes, int64_t hw, const float* dy, float* dx, Stream stream) {
  if (planes == 0 || hw == 0) return;
  FASTNN_LAUNCH(global_backward_kernel, blocks_for(planes * hw, THREADS), THREADS, 0,
                static_cast<cudaStream_t>(stream))(planes, hw, dy, dx);
  check_launch("global_avg_pool2d_backward");
}

}  // namespace cuda
}  // namespace fastnn
