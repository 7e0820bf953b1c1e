// Activations compiled for AVX-512 (16-wide after auto-vectorisation): the loops of
// csrc/cpu/act_impl.h under this unit's flags.
#include "cpu/act_impl.h"

namespace fastnn {

void act_forward_avx512(const ActArgs& a, const float* x, float* y, int64_t n) {
  act_forward_impl(a, x, y, n);
}

void act_backward_avx512(const ActArgs& a, const float* dy, const float* xy, float* dx, int64_t n) {
  act_backward_impl(a, dy, xy, dx, n);
}

}  // namespace fastnn
