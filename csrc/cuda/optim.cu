// Optimizer updates on the GPU, one launch per tensor: the per-element formulas of
// csrc/cpu/optim_impl.h (torch.optim's single-tensor path in float32, with the multiply-adds
// that torch fuses as fmaf and IEEE sqrt and division), the constants from ops/optim.h. The
// flags are uniform over a launch, so their branches do not diverge.
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "ops/optim.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int THREADS = 256;

__global__ void __launch_bounds__(THREADS)
    sgd_kernel(SgdConsts k, float* p, const float* __restrict__ g, float* buf, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    float d = g[i] * k.sign;
    if (k.has_wd) d = fmaf(p[i], k.wd, d);
    if (!k.has_momentum) {
      p[i] = fmaf(d, k.neg_lr, p[i]);
    } else {
      const float nb = k.first_step ? d : fmaf(d, k.damp1, buf[i] * k.momentum);
      buf[i] = nb;
      const float u = k.nesterov ? fmaf(nb, k.momentum, d) : nb;
      p[i] = fmaf(u, k.neg_lr, p[i]);
    }
  }
}

__global__ void __launch_bounds__(THREADS) adam_kernel(AdamConsts k, float* p, const float* __restrict__ g,
                                                       float* m, float* v, float* vmax, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    float pi = p[i];
    if (k.decoupled) pi = pi * k.decay;
    float gi = g[i] * k.sign;
    if (k.l2) gi = fmaf(pi, k.wd, gi);
    const float mo = m[i];
    const float mi = k.lerp_low ? fmaf(k.w1, gi - mo, mo) : fmaf(k.w1m1, gi - mo, gi);
    const float vi = fmaf(k.omb2 * gi, gi, v[i] * k.b2);
    m[i] = mi;
    v[i] = vi;
    float vu = vi;
    if (k.amsgrad) {
      const float vo = vmax[i];
      vu = (vo > vi || vo != vo) ? vo : vi;  // NaN propagates, as torch.maximum
      vmax[i] = vu;
    }
    const float denom = sqrtf(vu) / k.bc2_sqrt + k.eps;
    p[i] = pi + (k.neg_step * mi) / denom;
  }
}

}  // namespace

void sgd_step(const SgdArgs& a, float* p, const float* g, float* buf, int64_t n, Stream stream) {
  if (n == 0) return;
  FASTNN_LAUNCH(sgd_kernel, blocks_for(n, THREADS), THREADS, 0, static_cast<cudaStream_t>(stream))(
      sgd_consts(a), p, g, buf, n);
  check_launch("sgd_step");
}

void adam_step(const AdamArgs& a, float* p, const float* g, float* m, float* v, float* vmax, int64_t n,
               Stream stream) {
  if (n == 0) return;
  FASTNN_LAUNCH(adam_kernel, blocks_for(n, THREADS), THREADS, 0, static_cast<cudaStream_t>(stream))(
      adam_consts(a), p, g, m, v, vmax, n);
  check_launch("adam_step");
}

}  // namespace cuda
}  // namespace fastnn
