// softmax / log_softmax / cross-entropy compiled for portable C++ (baseline x86-64: SSE2 after
// auto-vectorisation): the loops of csrc/cpu/softmax_impl.h under this unit's flags.
#include "cpu/softmax_impl.h"

namespace fastnn {

const SoftmaxKernels softmax_kernels_default{softmax_forward_impl, softmax_backward_impl,
                                             cross_entropy_forward_impl, cross_entropy_backward_impl};

}  // namespace fastnn
