// Launch checking shared by the kernel sources.
#pragma once
#include <stdexcept>
#include <string>

#include "cuda/compat.cuh"

namespace fastnn {
namespace cuda {

// After a launch: a CUDA error (bad configuration, no device) as std::runtime_error naming op.
inline void check_launch(const char* op) {
#if !defined(FASTNN_CUDA_EMULATE)
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(op) + ": CUDA error " + cudaGetErrorName(e) + ": " +
                             cudaGetErrorString(e));
#else
  (void)op;  // the emulator throws from the launch itself
#endif
}

inline unsigned blocks_for(int64_t n, int per_block, unsigned cap = 65535u * 8u) {
  const int64_t b = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

}  // namespace cuda
}  // namespace fastnn
