// Attention compiled for portable C++ (baseline x86-64 after auto-vectorisation): csrc/cpu/attention_impl.h's
// tiles with its portable micro-kernels under this unit's flags.
#include "cpu/attention_impl.h"

namespace fastnn {

void attention_forward_default(const AttentionArgs& a, float* out, float* lse, int64_t w0, int64_t w1) {
  attention_forward_tiles<PortableKernels>(a, out, lse, w0, w1);
}

void attention_backward_default(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                                float* dq, float* dk, float* dv, int64_t p0, int64_t p1) {
  attention_backward_tiles<PortableKernels>(a, dout, out, lse, dq, dk, dv, p0, p1);
}

}  // namespace fastnn
