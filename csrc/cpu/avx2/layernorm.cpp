// Layer norm compiled for AVX2+FMA (8-wide after auto-vectorisation): the loops of csrc/cpu/layernorm_impl.h
// under this unit's flags.
#include "cpu/layernorm_impl.h"

namespace fastnn {

const LayerNormKernels layer_norm_kernels_avx2{layer_norm_forward_impl, layer_norm_backward_impl};

}  // namespace fastnn
