// Attention compiled for portable C++ (baseline x86-64 after auto-vectorisation): csrc/cpu/attention_impl.h's
// tiles with its portable micro-kernels under this unit's flags.
#include "cpu/attention_impl.h"

namespace fastnn {

const AttentionKernels attention_kernels_default{attention_forward_tiles<PortableKernels>,
                                                 attention_backward_tiles<PortableKernels>};

}  // namespace fastnn
