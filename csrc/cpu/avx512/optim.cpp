// Optimizer updates and norm blocks compiled for AVX-512 (16-wide after auto-vectorisation; torch's fused
// multiply-adds): the loops of csrc/cpu/optim_impl.h under this unit's flags.
#include "cpu/optim_impl.h"

namespace fastnn {

const OptimKernels optim_kernels_avx512{sgd_range_impl, adam_range_impl, norm_block_impl};

}  // namespace fastnn
