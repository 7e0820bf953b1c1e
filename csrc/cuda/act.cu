// Elementwise activations on the GPU: a grid-stride loop, one element per thread per step.
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 256;
constexpr float kSqrt1_2 = 0.70710678118654752f;      // 1/sqrt(2)
constexpr float kInvSqrt2Pi = 0.39894228040143268f;   // 1/sqrt(2 pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;  // sqrt(2/pi)
constexpr float kGeluK = 0.044715f;

__device__ __forceinline__ float act_one(int kind, float alpha, float x) {
  switch (kind) {
    case 0:
      return x > 0.0f ? x : (x == x ? 0.0f : x);  // NaN stays NaN
    case 1:
      return x > 0.0f ? x : alpha * x;
    case 2:
      return 1.0f / (1.0f + expf(-x));
    case 3:
      return tanhf(x);
    case 4:
      return 0.5f * x * erfcf(-x * kSqrt1_2);
    default: {  // x sigmoid(2u): no cancellation in the left tail, unlike x (1 + tanh u) / 2
      const float u = kSqrt2OverPi * (x + kGeluK * x * x * x);
      return x / (1.0f + expf(-2.0f * u));
    }
  }
}

// dy * d for a gelu derivative d, as the CPU's (csrc/cpu/act_impl.h, gelu_times): an infinite
// dy where d underflowed to 0 below x = -5 (x finite) gives -dy, not inf * 0 = NaN.
__device__ __forceinline__ float gelu_times(float dy, float x, float d) {
  return d == 0.0f && x < -5.0f && x > -INFINITY && (dy == INFINITY || dy == -INFINITY) ? -dy : dy * d;
}

// dy * act'(xy), xy being x (relu, leaky_relu, gelus) or y (sigmoid, tanh).
__device__ __forceinline__ float grad_one(int kind, float alpha, float dy, float xy) {
  switch (kind) {
    case 0:
      return dy * (xy > 0.0f ? 1.0f : 0.0f);
    case 1:
      return dy * (xy > 0.0f ? 1.0f : alpha);
    case 2:
      return dy * xy * (1.0f - xy);
    case 3:
      return dy * (1.0f - xy * xy);
    case 4: {
      const float phi = 0.5f * erfcf(-xy * kSqrt1_2);
      return gelu_times(dy, xy, phi + xy * kInvSqrt2Pi * expf(-0.5f * xy * xy));
    }
    default: {  // d/dx x s(2u) = s + 2 x s (1 - s) u'
      const float x2 = xy * xy, u = kSqrt2OverPi * (xy + kGeluK * x2 * xy);
      const float s = 1.0f / (1.0f + expf(-2.0f * u)), du = kSqrt2OverPi * (1.0f + 3.0f * kGeluK * x2);
      // s (1 - s) = 0 for a finite x (|x| past ~1e13): the second term is 0, though du may be inf
      const bool vanishes = s * (1.0f - s) == 0.0f && xy - xy == 0.0f;
      return gelu_times(dy, xy, s + (vanishes ? 0.0f : 2.0f * xy * s * (1.0f - s) * du));
    }
  }
}

__global__ void __launch_bounds__(THREADS)
    act_forward_kernel(int kind, float alpha, const float* __restrict__ x, float* y, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    y[i] = act_one(kind, alpha, x[i]);
}

__global__ void __launch_bounds__(THREADS)
    act_backward_kernel(int kind, float alpha, const float* dy, const float* __restrict__ xy, float* dx,
                        int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    dx[i] = grad_one(kind, alpha, dy[i], xy[i]);
}

}  // namespace

void act_forward(int kind, float alpha, const float* x, float* y, int64_t n, Stream stream) {
  if (n == 0) return;
  FASTNN_LAUNCH(act_forward_kernel, blocks_for(n, THREADS), THREADS, 0, static_cast<cudaStream_t>(stream))(
      kind, alpha, x, y, n);
  check_launch("act_forward");
}

void act_backward(int kind, float alpha, const float* dy, const float* xy, float* dx, int64_t n,
                  Stream stream) {
  if (n == 0) return;
  FASTNN_LAUNCH(act_backward_kernel, blocks_for(n, THREADS), THREADS, 0, static_cast<cudaStream_t>(stream))(
      kind, alpha, dy, xy, dx, n);
  check_launch("act_backward");
}

}  // namespace cuda
}  // namespace fastnn
