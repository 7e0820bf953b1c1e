// Recurrent gate kernels, portable build (baseline x86-64 or the target's default): the loops of
// csrc/cpu/rnn_impl.h under this unit's flags.
#include "cpu/rnn_impl.h"

namespace fastnn {

const RnnKernels rnn_kernels_default = kRnnKernels;

}  // namespace fastnn
