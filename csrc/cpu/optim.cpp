// Optimizer updates and norm blocks compiled for portable C++ (baseline x86-64: SSE2 after
// auto-vectorisation, no FMA): the loops of csrc/cpu/optim_impl.h under this unit's flags.
#include "cpu/optim_impl.h"

namespace fastnn {

const OptimKernels optim_kernels_default{sgd_range_impl, adam_range_impl, norm_block_impl};

}  // namespace fastnn
