// Embedding on the GPU (the contract of csrc/ops/embedding.h). Forward: one thread per output
// element. Backward: dweight zeroed, then every (t, d) element added into its row with
// atomicAdd (the order of the additions varies: results may differ in the last bits from run
// to run, where the CPU sums in position order), then the padding row zeroed.
#include "cuda/check.cuh"
#include "cuda/kernels.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 256;

__global__ void __launch_bounds__(THREADS)
    emb_forward_kernel(int64_t t, int64_t d, const float* __restrict__ w, const int64_t* __restrict__ idx,
                       float* out) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < t * d; e += step)
    out[e] = w[idx[e / d] * d + e % d];
}

__global__ void __launch_bounds__(THREADS) fill_kernel(float* p, int64_t n, float v) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += step) p[e] = v;
}

__global__ void __launch_bounds__(THREADS)
    emb_backward_kernel(int64_t t, int64_t d, const float* __restrict__ dy, const int64_t* __restrict__ idx,
                        float* dw) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < t * d; e += step)
    atomicAdd(dw + idx[e / d] * d + e % d, dy[e]);
}

}  // namespace

void embedding_forward(int64_t t, int64_t d, const float* weight, const int64_t* idx, float* out,
                       Stream stream) {
  if (t == 0 || d == 0) return;
  FASTNN_LAUNCH(emb_forward_kernel, blocks_for(t * d, THREADS), THREADS, 0,
                static_cast<cudaStream_t>(stream))(t, d, weight, idx, out);
  check_launch("embedding_forward");
}

void embedding_backward(int64_t v, int64_t t, int64_t d, int64_t padding_idx, const float* dy,
                        const int64_t* idx, float* dweight, Stream stream) {
  if (v == 0 || d == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  FASTNN_LAUNCH(fill_kernel, blocks_for(v * d, THREADS), THREADS, 0, s)(dweight, v * d, 0.0f);
  check_launch("embedding_backward");
  if (t > 0) {
    FASTNN_LAUNCH(emb_backward_kernel, blocks_for(t * d, THREADS), THREADS, 0, s)(t, d, dy, idx, dweight);
    check_launch("embedding_backward");
  }
  if (padding_idx >= 0) {
    FASTNN_LAUNCH(fill_kernel, blocks_for(d, THREADS), THREADS, 0, s)(dweight + padding_idx * d, d, 0.0f);
    check_launch("embedding_backward");
  }
}

}  // namespace cuda
}  // namespace fastnn
