// Fused optimizer updates: one call updates every parameter of a list in place, with
// torch.optim's per-element formulas (its single-tensor code path, in float32):
//
//   SGD:   d = (maximize ? -g : g) + weight_decay * p
//          with momentum: buf = first_step ? d : momentum * buf + (1 - dampening) * d
//                         d = nesterov ? d + momentum * buf : buf
//          p = p - lr * d
//   Adam:  g = maximize ? -g : g;  decoupled (AdamW): p = p * (1 - lr * weight_decay),
//          else g = g + weight_decay * p
//          m = m + (g - m) * (1 - beta1);  v = v * beta2 + (1 - beta2) * g * g
//          amsgrad: vmax = max(vmax, v), used for v below
//          p = p - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//
// Elementwise: the elements of all tensors are split over threads as one range; a result does
// not depend on the thread count. The binding checks shapes, dtypes and aliasing.
#pragma once
#include <cstdint>
#include <vector>

namespace fastnn {

struct SgdArgs {
  float lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false, first_step = false;
};

struct AdamArgs {
  float lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  bool amsgrad = false, decoupled = false, maximize = false;
  int64_t step = 1;
};

// One tensor of the list: its size and arrays (buffers unused by the update may be null).
struct OptimTensor {
  int64_t n = 0;
  float* p = nullptr;
  const float* g = nullptr;
  float* a = nullptr;   // SGD: momentum buffer; Adam: exp_avg
  float* b = nullptr;   // Adam: exp_avg_sq
  float* c = nullptr;   // Adam with amsgrad: max_exp_avg_sq
};

void sgd_step(const SgdArgs& args, const std::vector<OptimTensor>& ts, int nthreads);
void adam_step(const AdamArgs& args, const std::vector<OptimTensor>& ts, int nthreads);

}  // namespace fastnn
