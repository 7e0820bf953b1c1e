// Recurrent gate kernels compiled for AVX2 + FMA: the loops of csrc/cpu/rnn_impl.h, 8-wide.
#include "cpu/rnn_impl.h"

namespace fastnn {

const RnnKernels rnn_kernels_avx2 = kRnnKernels;

}  // namespace fastnn
