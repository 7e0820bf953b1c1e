// softmax / log_softmax and the fused cross-entropy (log-softmax + negative log-likelihood).
//
//   softmax:      y[o, i, j] = exp(x[o, i, j] - m) / sum_k exp(x[o, k, j] - m),  m = max_k x[o, k, j]
//   log_softmax:  y[o, i, j] = x[o, i, j] - m - log sum_k exp(x[o, k, j] - m)
//     over the middle axis of x viewed as (outer, n, inner) float32 (the softmax dim is n).
//   backward:     softmax:     dx = y * (dy - sum_i dy * y)
//                 log_softmax: dx = dy - exp(y) * sum_i dy
//   cross_entropy, per row i of logits (N, C) with target t_i (PyTorch's CrossEntropyLoss):
//     lse_i = log sum_c exp(x_ic);  w = class weights (1 without); W = sum_c w_c
//     loss_i = (1 - e) w_t (lse_i - x_it) + (e / C) (W lse_i - sum_c w_c x_ic),  e = label smoothing
//     weight_i = w_t (the mean's denominator term); both 0 where t_i == ignore_index.
//   cross_entropy backward, per row with scale s_i (the upstream gradient over the reduction):
//     dx_ic = s_i ((p_ic ((1 - e) w_t + e W / C)) - (1 - e) w_t [c == t] - (e / C) w_c),
//     p = softmax(x_i); rows with t_i == ignore_index get 0.
// Sums over a row run in float32 in 16 fixed lanes combined in a fixed order, the per-row losses
// in float64: results depend neither on the thread count nor on where a thread's rows start.
// Rows are split over threads; targets are checked (in [0, C) or ignore_index) by the caller.
#pragma once
#include <cstdint>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

struct SoftmaxShape {
  int64_t outer = 1, n = 1, inner = 1;
};

void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y, Isa isa, int nthreads);
void softmax_backward(const SoftmaxShape& s, bool log, const float* dy, const float* y, float* dx, Isa isa,
                      int nthreads);

struct CrossEntropyArgs {
  int64_t N = 0, C = 0;
  const float* logits = nullptr;    // (N, C)
  const int64_t* target = nullptr;  // (N,)
  const float* weight = nullptr;    // (C,) or null
  int64_t ignore_index = -100;
  float smoothing = 0.0f;
  double weight_sum = 0.0;  // W = sum_c w_c (C without weights); set by the dispatcher
};

// loss (N,) and weight (N,) per row, float64.
void cross_entropy_forward(const CrossEntropyArgs& a, double* loss, double* weight, Isa isa, int nthreads);
// dx (N, C) from the per-row scales (N,).
void cross_entropy_backward(const CrossEntropyArgs& a, const float* scale, float* dx, Isa isa, int nthreads);

// The rules of the softmax / log_softmax entries on every device (csrc/ops/softmax_meta.cpp;
// ArgError naming op): x (or dy and y of one shape) float32, C-contiguous, at least 1-D, dim in
// [-ndim, ndim); the shape split around dim returned.
SoftmaxShape softmax_forward_meta(const char* op, const ArrayRef& x, int64_t dim);
SoftmaxShape softmax_backward_meta(const char* op, const ArrayRef& dy, const ArrayRef& y, int64_t dim);

// The rules of the cross-entropy row entries on every device: logits float32 (N, C) with C >= 1,
// target int64 (N,), weight (optional) float32 (C,), label_smoothing in [0, 1]; the arguments
// returned with the pointers of logits, target and weight set. Each target must lie in [0, C)
// or be ignore_index: the binding checks that where the targets are (cross_entropy_check_targets
// on the host; the CUDA binding on the device), each with cross_entropy_bad_target's words.
CrossEntropyArgs cross_entropy_meta(const char* op, const ArrayRef& logits, const ArrayRef& target,
                                    const ArrayRef& weight, int64_t ignore_index, double smoothing);
void cross_entropy_check_targets(const char* op, const CrossEntropyArgs& a);
// The backward's per-row scales: float32 (N,).
void cross_entropy_scale_check(const char* op, const CrossEntropyArgs& a, const ArrayRef& scale);
[[noreturn]] void cross_entropy_bad_target(const char* op, const CrossEntropyArgs& a, int64_t value,
                                           int64_t row);

// The per-ISA row kernels (csrc/cpu/softmax_impl.h compiled into each ISA's unit, and the
// hand-vectorised rows of csrc/cpu/avx2/softmax.cpp and avx512/softmax.cpp), on rows [o0, o1)
// of the (outer, n, inner) view, or [r0, r1) of the logits; one thread.
struct SoftmaxKernels {
  void (*forward)(const SoftmaxShape& s, bool log, const float* x, float* y, int64_t o0, int64_t o1);
  void (*backward)(const SoftmaxShape& s, bool log, const float* dy, const float* y, float* dx, int64_t o0,
                   int64_t o1);
  void (*ce_forward)(const CrossEntropyArgs& a, double* loss, double* weight, int64_t r0, int64_t r1);
  void (*ce_backward)(const CrossEntropyArgs& a, const float* scale, float* dx, int64_t r0, int64_t r1);
};
extern const SoftmaxKernels softmax_kernels_default, softmax_kernels_avx2, softmax_kernels_avx512;

}  // namespace fastnn
