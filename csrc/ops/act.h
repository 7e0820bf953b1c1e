// Elementwise activations, forward and backward:                     (outputs are overwritten)
//
//   relu        y = max(x, 0)                   dx = dy * (x > 0)
//   leaky_relu  y = x > 0 ? x : alpha * x       dx = dy * (x > 0 ? 1 : alpha)
//   sigmoid     y = 1 / (1 + exp(-x))           dx = dy * y * (1 - y)      (from the output y)
//   tanh        y = tanh(x)                     dx = dy * (1 - y * y)      (from the output y)
//   gelu        y = x * Phi(x) = x/2 * erfc(-x/sqrt(2))   dx = dy * (Phi(x) + x * phi(x))
//   gelu_tanh   y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))  dx: its derivative
//   Arrays are n contiguous float32 values of any shape; NaN propagates (as in PyTorch).
//   The backward reads x (relu, leaky_relu, gelu*) or y (sigmoid, tanh), as PyTorch saves them.
//   exp/erfc/tanh are our own float32 polynomial approximations: portable and branch free so
//   the compiler vectorises them (csrc/cpu/act_impl.h), and for the AVX-512 and AVX2 forward
//   of sigmoid, tanh and both gelus (and AVX2's gelu backward) hand-vectorised ones
//   (csrc/cpu/avx512/act.cpp, csrc/cpu/avx2/act.cpp): max error a few float32 ulp relative
//   to |y| plus a ~1e-38-scale absolute error in the far tails (tests/test_act.py states the
//   tolerances).
//   Parallel over contiguous element ranges; each element is computed by the same instruction
//   sequence whatever the split, so results are bit-identical for every thread count. They may
//   differ between ISAs in the last bit (FMA contraction).
#pragma once
#include <cstdint>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

enum class ActKind : int { Relu = 0, LeakyRelu = 1, Sigmoid = 2, Tanh = 3, Gelu = 4, GeluTanh = 5 };

struct ActArgs {
  ActKind kind = ActKind::Relu;
  float alpha = 0.01f;  // leaky_relu's negative slope
  int64_t n = 0;        // elements
};

// The rules of the entries on every device (csrc/ops/act_meta.cpp; ArgError naming op): x,
// or dy and the saved x / y, float32 and C-contiguous, dy of the saved array's shape.
ActArgs act_forward_meta(const char* op, ActKind kind, float alpha, const ArrayRef& x);
ActArgs act_backward_meta(const char* op, ActKind kind, float alpha, const ArrayRef& dy, const ArrayRef& xy);

// Forward: y[i] = act(x[i]). y may equal x (in place).
void act_forward(const ActArgs& a, const float* x, float* y, Isa isa, int nthreads);
// Backward: dx[i] = dy[i] * act'(...) where xy is x or y per the table above. dx may equal dy.
void act_backward(const ActArgs& a, const float* dy, const float* xy, float* dx, Isa isa, int nthreads);

// The per-ISA kernels (csrc/cpu/act.cpp, csrc/cpu/avx2/act.cpp, csrc/cpu/avx512/act.cpp), on the
// element range [0, n) of already-offset pointers, one thread.
struct ActKernels {
  void (*forward)(const ActArgs& a, const float* x, float* y, int64_t n);
  void (*backward)(const ActArgs& a, const float* dy, const float* xy, float* dx, int64_t n);
};
extern const ActKernels act_kernels_default, act_kernels_avx2, act_kernels_avx512;

}  // namespace fastnn
