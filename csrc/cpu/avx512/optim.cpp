// Optimizer updates and norm blocks compiled for AVX-512 (16-wide after auto-vectorisation; torch's fused
// multiply-adds): the loops of csrc/cpu/optim_impl.h under this unit's flags.
#include "cpu/optim_impl.h"

namespace fastnn {

void sgd_range_avx512(const SgdConsts& k, const OptimTensor& t, int64_t b, int64_t e) {
  sgd_range_impl(k, t, b, e);
}

void adam_range_avx512(const AdamConsts& k, const OptimTensor& t, int64_t b, int64_t e) {
  adam_range_impl(k, t, b, e);
}

double norm_block_avx512(NormKind kind, double p, const float* x, int64_t n) {
  return norm_block_impl(kind, p, x, n);
}

}  // namespace fastnn
