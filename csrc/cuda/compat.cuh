// The one header every CUDA kernel source includes. Under nvcc it is the CUDA runtime plus two
// macros; compiled as host C++ (FASTNN_CUDA_EMULATE, tests only) it is the emulator of
// csrc/cuda/emu/runtime.h, so the same kernel text runs on the CPU.
//
//   FASTNN_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...);
//   FASTNN_DYNAMIC_SHARED(T, name);   // T* name: the block's dynamic shared memory
//
// `kernel` is a function or a function pointer (bind template arguments to a pointer first:
// commas do not pass through a macro). No #ifdef __CUDA_ARCH__ in kernel bodies: the emulator
// would test other code.
#pragma once

#if defined(FASTNN_CUDA_EMULATE)
#include "cuda/emu/runtime.h"
#else
#include <cuda_runtime.h>
#define FASTNN_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define FASTNN_DYNAMIC_SHARED(T, name)                              \
  extern __shared__ __align__(16) unsigned char fastnn_dyn_smem_[]; \
  T* name = reinterpret_cast<T*>(fastnn_dyn_smem_)
#endif
