// gemm on the GPU: shared-memory tiles of 64x64 outputs per block of 16x16 threads, each
// thread a 4x4 register block; K in steps of 16 staged through shared memory (A transposed on
// the way in, so both operands are read along rows in the inner loop). Edges and the K tail are
// zero-filled on load, so any M, N, K (including K smaller than the tile) takes the same path.
#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "ops/gemm.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
constexpr int THREADS = (BM / TM) * (BN / TN);  // 256

__device__ __forceinline__ float load_a(const GemmArgs& g, int64_t i, int64_t k) {
  if (i >= g.M || k >= g.K) return 0.0f;
  return g.trans_a ? g.a[k * g.lda + i] : g.a[i * g.lda + k];
}
__device__ __forceinline__ float load_b(const GemmArgs& g, int64_t k, int64_t j) {
  if (k >= g.K || j >= g.N) return 0.0f;
  return g.trans_b ? g.b[j * g.ldb + k] : g.b[k * g.ldb + j];
}

__global__ void __launch_bounds__(THREADS) gemm_kernel(GemmArgs g) {
  __shared__ float as[BK][BM + 4];  // as[k][i]: the A tile transposed
  __shared__ float bs[BK][BN + 4];  // bs[k][j]
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * (BN / TN) + tx;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * BM, col0 = static_cast<int64_t>(blockIdx.x) * BN;
  float acc[TM][TN];
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
  for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
    for (int e = tid; e < BM * BK; e += THREADS) {  // A: BM x BK
      const int r = e / BK, c = e % BK;
      as[c][r] = load_a(g, row0 + r, k0 + c);
    }
    for (int e = tid; e < BK * BN; e += THREADS) {  // B: BK x BN
      const int r = e / BN, c = e % BN;
      bs[r][c] = load_b(g, k0 + r, col0 + c);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = as[kk][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = bs[kk][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // the tile is read by all before the next one overwrites it
  }
  for (int i = 0; i < TM; ++i) {
    const int64_t r = row0 + ty * TM + i;
    if (r >= g.M) break;
    for (int j = 0; j < TN; ++j) {
      const int64_t c = col0 + tx * TN + j;
      if (c >= g.N) break;
      float v = g.alpha * acc[i][j];
      if (g.beta != 0.0f) v = fmaf(g.beta, g.c[r * g.ldc + c], v);
      if (g.bias) v += g.bias[c];
      if (g.act == Activation::Relu) v = fmaxf(v, 0.0f);
      g.out[r * g.ldc + c] = v;
    }
  }
}

}  // namespace

void gemm(const GemmArgs& g, Stream stream) {
  if (g.bias_row || g.a_packed || g.b_packed)
    throw std::invalid_argument("gemm: bias_row and packed operands are not supported on the GPU");
  if (g.M == 0 || g.N == 0) return;
  if ((g.M + BM - 1) / BM > 65535 || (g.N + BN - 1) / BN > 2147483647)
    throw std::invalid_argument("gemm: " + std::to_string(g.M) + " rows exceed the CUDA grid (at most " +
                                std::to_string(65535 * BM) + ")");
  const dim3 grid(static_cast<unsigned>((g.N + BN - 1) / BN), static_cast<unsigned>((g.M + BM - 1) / BM));
  const dim3 block(BN / TN, BM / TM);
  FASTNN_LAUNCH(gemm_kernel, grid, block, 0, static_cast<cudaStream_t>(stream))(g);
  check_launch("gemm");
}

}  // namespace cuda
}  // namespace fastnn
