// Recurrent gate kernels compiled for AVX-512: the loops of csrc/cpu/rnn_impl.h, 16-wide.
#include "cpu/rnn_impl.h"

namespace fastnn {

const RnnKernels rnn_kernels_avx512 = kRnnKernels;

}  // namespace fastnn
