// Layer norm compiled for portable C++ (baseline x86-64 after auto-vectorisation): the loops of
// csrc/cpu/layernorm_impl.h under this unit's flags.
#include "cpu/layernorm_impl.h"

namespace fastnn {

const LayerNormKernels layer_norm_kernels_default{layer_norm_forward_impl, layer_norm_backward_impl};

}  // namespace fastnn
