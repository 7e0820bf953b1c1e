// Fused optimizer updates and the gradient norm: one call updates every parameter of a list in
// place (outputs are the inputs: p, and the state buffers, are overwritten), with torch.optim's
// per-element formulas, i.e. its single-tensor code path evaluated in float32:
//
//   SGD:   d = (maximize ? -g : g) [+ weight_decay * p]
//          with momentum: buf = first_step ? d : momentum * buf + (1 - dampening) * d
//                         d = nesterov ? d + momentum * buf : buf
//          p = p - lr * d
//   Adam:  g = maximize ? -g : g;  decoupled (AdamW): p = p * (1 - lr * weight_decay),
//          else g = g + weight_decay * p                   (both only when weight_decay != 0)
//          m = lerp(m, g, 1 - beta1);  v = v * beta2 + (1 - beta2) * g * g
//          amsgrad: vmax = max(vmax, v) (NaN propagates), used for v below
//          p = p + (-(lr / (1 - beta1^step)) * m) / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//   grad_norm: (sum over all arrays of |x|^p)^(1/p), or max |x| for p = inf, in float64.
//
// Rounding follows torch: the scalars are combined in double (as Python does) and rounded to
// float once; the AVX2 and AVX-512 units fuse exactly the multiply-adds that torch's vectorised
// kernels fuse (add with alpha, lerp, addcmul) and no others (they are compiled with
// -ffp-contract=off), so SGD matches torch.optim.SGD bit for bit on such CPUs; Adam differs
// where torch's vectorised sqrt is not correctly rounded (~1% of elements, by 1 ulp). The
// portable unit has no FMA instruction and rounds each product.
// Parallel: the update splits the concatenated elements of all tensors over threads (each
// element's arithmetic does not depend on the split); grad_norm sums fixed blocks of
// kNormBlock elements of each array (8 float64 lanes each) and adds the block sums in order,
// so all results are independent of the thread count. grad_norm is also ISA-independent.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

struct SgdArgs {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false, first_step = false;
};

struct AdamArgs {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  bool amsgrad = false, decoupled = false, maximize = false;
  int64_t step = 1;  // 1-based: the step after incrementing
};

// One tensor of the list: its size and arrays (buffers unused by the update may be null).
struct OptimTensor {
  int64_t n = 0;
  float* p = nullptr;
  const float* g = nullptr;
  float* a = nullptr;  // SGD: momentum buffer; Adam: exp_avg
  float* b = nullptr;  // Adam: exp_avg_sq
  float* c = nullptr;  // Adam with amsgrad: max_exp_avg_sq
};

void sgd_step(const SgdArgs& args, const std::vector<OptimTensor>& ts, Isa isa, int nthreads);
void adam_step(const AdamArgs& args, const std::vector<OptimTensor>& ts, Isa isa, int nthreads);

// The total norm of order p over arrays xs[i] of ns[i] floats: p = 2, 1, +inf, or any other
// p > 0 (scalar pow, portable). Empty lists and arrays contribute 0.
constexpr int64_t kNormBlock = 8192;
double grad_norm(const std::vector<const float*>& xs, const std::vector<int64_t>& ns, double p, Isa isa,
                 int nthreads);

// The rules of sgd_step, adam_step and grad_norm on every device (csrc/ops/optim_meta.cpp;
// fastnn._core and fastnn._cuda both call them). A list argument is one ArrayRef per element,
// named "<list>[i]"; an optional list left out (None) is a null pointer. Every array is float32
// and C-contiguous; params and the state lists are writeable, of params[i]'s shape at index i,
// one per param; no array that the update writes shares memory with any other array of the
// call (grads may share memory with each other). The update's tensors come back with the
// arrays' pointers (host or device).
// The state lists read: SGD's momentum_buffers only with momentum != 0, Adam's max_exp_avg_sqs
// only with amsgrad (otherwise those arguments are ignored, whatever they hold).
inline bool sgd_uses_buffers(const SgdArgs& a) { return a.momentum != 0; }
std::vector<OptimTensor> sgd_step_meta(const SgdArgs& a, const std::vector<ArrayRef>& params,
                                       const std::vector<ArrayRef>& grads,
                                       const std::vector<ArrayRef>* momentum_buffers);
std::vector<OptimTensor> adam_step_meta(const AdamArgs& a, const std::vector<ArrayRef>& params,
                                        const std::vector<ArrayRef>& grads,
                                        const std::vector<ArrayRef>* exp_avgs,
                                        const std::vector<ArrayRef>* exp_avg_sqs,
                                        const std::vector<ArrayRef>* max_exp_avg_sqs);

// grad_norm's arguments checked: norm_type > 0, float32 C-contiguous arrays; their pointers and
// sizes for the kernels.
struct GradNormArgs {
  double p = 2.0;
  std::vector<const float*> xs;
  std::vector<int64_t> ns;
};
GradNormArgs grad_norm_meta(double norm_type, const std::vector<ArrayRef>& arrays);

// The float32 constants of one update, rounded from the double arguments where torch rounds its
// Python scalars (csrc/ops/optim.cpp), and the flags that pick a loop.
struct SgdConsts {
  float sign = 1, wd = 0, momentum = 0, damp1 = 1, neg_lr = 0;
  bool has_wd = false, has_momentum = false, first_step = false, nesterov = false;
};
struct AdamConsts {
  float sign = 1, decay = 1, wd = 0, w1 = 0, w1m1 = 0, b2 = 0, omb2 = 0, bc2_sqrt = 1, eps = 0, neg_step = 0;
  bool decoupled = false, l2 = false, amsgrad = false, lerp_low = true;  // lerp_low: weight < 0.5
};

// The constants of one update from its arguments (shared by the CPU and CUDA updates).
inline SgdConsts sgd_consts(const SgdArgs& a) {
  SgdConsts k;
  k.sign = a.maximize ? -1.0f : 1.0f;
  k.has_wd = a.weight_decay != 0;
  k.wd = static_cast<float>(a.weight_decay);
  k.has_momentum = a.momentum != 0;
  k.momentum = static_cast<float>(a.momentum);
  k.damp1 = static_cast<float>(1.0 - a.dampening);
  k.neg_lr = static_cast<float>(-a.lr);
  k.first_step = a.first_step;
  k.nesterov = a.nesterov;
  return k;
}

inline AdamConsts adam_consts(const AdamArgs& a) {
  AdamConsts k;
  const double step = static_cast<double>(a.step);
  const double bc1 = 1.0 - std::pow(a.beta1, step), bc2 = 1.0 - std::pow(a.beta2, step);
  k.sign = a.maximize ? -1.0f : 1.0f;
  k.decoupled = a.decoupled && a.weight_decay != 0;
  k.l2 = !a.decoupled && a.weight_decay != 0;
  k.decay = static_cast<float>(1.0 - a.lr * a.weight_decay);
  k.wd = static_cast<float>(a.weight_decay);
  k.w1 = static_cast<float>(1.0 - a.beta1);
  k.lerp_low = std::fabs(k.w1) < 0.5f;
  k.w1m1 = k.w1 - 1.0f;  // exact for w1 in [0.5, 2] (Sterbenz), as torch computes it
  k.b2 = static_cast<float>(a.beta2);
  k.omb2 = static_cast<float>(1.0 - a.beta2);
  k.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  k.eps = static_cast<float>(a.eps);
  k.neg_step = static_cast<float>(-(a.lr / bc1));
  k.amsgrad = a.amsgrad;
  return k;
}

enum class NormKind : int { L2 = 0, L1 = 1, Inf = 2, P = 3 };

// The per-ISA kernels (csrc/cpu/optim_impl.h compiled into csrc/cpu/optim.cpp,
// csrc/cpu/avx2/optim.cpp, csrc/cpu/avx512/optim.cpp) on elements [b, e) of one tensor, one
// thread; norm_block: the float64 sum (or max) of one block.
struct OptimKernels {
  void (*sgd)(const SgdConsts& k, const OptimTensor& t, int64_t b, int64_t e);
  void (*adam)(const AdamConsts& k, const OptimTensor& t, int64_t b, int64_t e);
  double (*norm_block)(NormKind kind, double p, const float* x, int64_t n);
};
extern const OptimKernels optim_kernels_default, optim_kernels_avx2, optim_kernels_avx512;

}  // namespace fastnn
