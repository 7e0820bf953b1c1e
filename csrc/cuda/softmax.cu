// softmax / log_softmax on the GPU. Rows (inner == 1): one warp per row, 8 rows per block of
// 256 threads; each lane strides over the row, max and sum are butterfly reductions with
// __shfl_xor_sync (every lane ends with the row's value). Columns (inner > 1): one thread per
// (outer, inner) column, looping over n.
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 256, WARPS = THREADS / 32;
// Every lane of a warp runs the loop the same number of times (rows are whole warps), so the
// shuffles see all 32 lanes.
__global__ void __launch_bounds__(THREADS)
    softmax_rows_kernel(int64_t rows, int64_t n, bool log, const float* __restrict__ x, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * WARPS + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp leaves together
  const float* xr = x + row * n;
  float* yr = y + row * n;
  float m = -INFINITY;
  for (int64_t i = lane; i < n; i += 32) m = fmaxf(m, xr[i]);
  m = warp_max(m);
  float s = 0.0f;
  for (int64_t i = lane; i < n; i += 32) s += expf(xr[i] - m);
  s = warp_sum(s);
  if (log) {
    const float ls = logf(s);
    for (int64_t i = lane; i < n; i += 32) yr[i] = xr[i] - m - ls;
  } else {
    const float r = 1.0f / s;
    for (int64_t i = lane; i < n; i += 32) yr[i] = expf(xr[i] - m) * r;
  }
}

__global__ void __launch_bounds__(THREADS)
    softmax_rows_backward_kernel(int64_t rows, int64_t n, bool log, const float* __restrict__ dy,
                                 const float* __restrict__ y, float* dx) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * WARPS + threadIdx.x / 32;
  if (row >= rows) return;
  const float *dyr = dy + row * n, *yr = y + row * n;
  float* dxr = dx + row * n;
  float s = 0.0f;
  for (int64_t i = lane; i < n; i += 32) s += log ? dyr[i] : dyr[i] * yr[i];
  s = warp_sum(s);
  for (int64_t i = lane; i < n; i += 32) dxr[i] = log ? dyr[i] - expf(yr[i]) * s : yr[i] * (dyr[i] - s);
}

__global__ void __launch_bounds__(THREADS)
    softmax_cols_kernel(int64_t outer, int64_t n, int64_t inner, bool log, const float* __restrict__ x,
                        float* y) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= outer * inner) return;
  const int64_t o = col / inner, j = col % inner;
  const float* xc = x + o * n * inner + j;
  float* yc = y + o * n * inner + j;
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = fmaxf(m, xc[i * inner]);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += expf(xc[i * inner] - m);
  const float ls = logf(s), r = 1.0f / s;
  for (int64_t i = 0; i < n; ++i) yc[i * inner] = log ? xc[i * inner] - m - ls : expf(xc[i * inner] - m) * r;
}

__global__ void __launch_bounds__(THREADS)
    softmax_cols_backward_kernel(int64_t outer, int64_t n, int64_t inner, bool log,
                                 const float* __restrict__ dy, const float* __restrict__ y, float* dx) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= outer * inner) return;
  const int64_t base = col / inner * n * inner + col % inner;
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = base + i * inner;
    s += log ? dy[k] : dy[k] * y[k];
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = base + i * inner;
    dx[k] = log ? dy[k] - expf(y[k]) * s : y[k] * (dy[k] - s);
  }
}

}  // namespace

void softmax_forward(int64_t outer, int64_t n, int64_t inner, bool log, const float* x, float* y,
                     Stream stream) {
  if (outer == 0 || n == 0 || inner == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (inner == 1) {
    FASTNN_LAUNCH(softmax_rows_kernel, blocks_for(outer, WARPS, 2147483647u), THREADS, 0, s)(outer, n, log, x,
                                                                                             y);
  } else {
    FASTNN_LAUNCH(softmax_cols_kernel, blocks_for(outer * inner, THREADS, 2147483647u), THREADS, 0, s)(
        outer, n, inner, log, x, y);
  }
  check_launch("softmax_forward");
}

void softmax_backward(int64_t outer, int64_t n, int64_t inner, bool log, const float* dy, const float* y,
                      float* dx, Stream stream) {
  if (outer == 0 || n == 0 || inner == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (inner == 1) {
    FASTNN_LAUNCH(softmax_rows_backward_kernel, blocks_for(outer, WARPS, 2147483647u), THREADS, 0, s)(
        outer, n, log, dy, y, dx);
  } else {
    FASTNN_LAUNCH(softmax_cols_backward_kernel, blocks_for(outer * inner, THREADS, 2147483647u), THREADS, 0,
                  s)(outer, n, inner, log, dy, y, dx);
  }
  check_launch("softmax_backward");
}

}  // namespace cuda
}  // namespace fastnn
