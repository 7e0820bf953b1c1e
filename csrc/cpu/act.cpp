// Activations compiled for portable C++ (baseline x86-64: SSE2 after auto-vectorisation): the loops of
// csrc/cpu/act_impl.h under this unit's flags.
#include "cpu/act_impl.h"

namespace fastnn {

const ActKernels act_kernels_default{act_forward_impl, act_backward_impl};

}  // namespace fastnn
