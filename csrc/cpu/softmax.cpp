// softmax / log_softmax / cross-entropy compiled for portable C++ (baseline x86-64: SSE2 after
// auto-vectorisation): the loops of csrc/cpu/softmax_impl.h under this unit's flags.
#include "cpu/softmax_impl.h"

namespace fastnn {

void softmax_forward_default(const SoftmaxShape& s, bool log, const float* x, float* y, int64_t o0,
                             int64_t o1) {
  softmax_forward_impl(s, log, x, y, o0, o1);
}

void softmax_backward_default(const SoftmaxShape& s, bool log, const float* dy, const float* y, float* dx,
                              int64_t o0, int64_t o1) {
  softmax_backward_impl(s, log, dy, y, dx, o0, o1);
}

void cross_entropy_forward_default(const CrossEntropyArgs& a, double* loss, double* weight, int64_t r0,
                                   int64_t r1) {
  cross_entropy_forward_impl(a, loss, weight, r0, r1);
}

void cross_entropy_backward_default(const CrossEntropyArgs& a, const float* scale, float* dx, int64_t r0,
                                    int64_t r1) {
  cross_entropy_backward_impl(a, scale, dx, r0, r1);
}

}  // namespace fastnn
