// Recurrent gate kernels compiled for AVX2 + FMA: the loops of csrc/cpu/rnn_impl.h, 8-wide.
#include "cpu/rnn_impl.h"

namespace fastnn {

const RnnGateKernels rnn_gates_avx2 = kRnnGates;

}  // namespace fastnn
