// Layer norm compiled for AVX-512 (16-wide after auto-vectorisation): the loops of csrc/cpu/layernorm_impl.h
// under this unit's flags.
#include "cpu/layernorm_impl.h"

namespace fastnn {

void layer_norm_forward_avx512(const LayerNormArgs& a, const float* x, float* y, float* mean, float* rstd,
                               int64_t r0, int64_t r1) {
  layer_norm_forward_impl(a, x, y, mean, rstd, r0, r1);
}

void layer_norm_backward_avx512(const LayerNormArgs& a, const float* dy, const float* x, const float* mean,
                                const float* rstd, float* dx, float* part, int64_t r0, int64_t r1) {
  layer_norm_backward_impl(a, dy, x, mean, rstd, dx, part, r0, r1);
}

}  // namespace fastnn
