// Fused optimizer updates (see csrc/ops/optim.h): portable elementwise loops, vectorised by the
// compiler (memory-bound: Adam streams 7 floats per element). One parallel region splits the
// concatenated elements of all tensors over the threads.
#include "ops/optim.h"

#include <algorithm>
#include <cmath>

#include "core/threads.h"

namespace fastnn {
namespace {

constexpr int64_t kElemsPerThread = 1 << 15;

// f(tensor, begin, end) over the global element range [e0, e1) of the list.
template <class F>
void for_range(const std::vector<OptimTensor>& ts, int64_t e0, int64_t e1, F&& f) {
  int64_t base = 0;
  for (const OptimTensor& t : ts) {
    const int64_t b = std::max(e0, base), e = std::min(e1, base + t.n);
    if (b < e) f(t, b - base, e - base);
    base += t.n;
    if (base >= e1) break;
  }
}

template <class F>
void over_elements(const std::vector<OptimTensor>& ts, int nthreads, F&& f) {
  int64_t total = 0;
  for (const OptimTensor& t : ts) total += t.n;
  if (total == 0) return;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, total / kElemsPerThread)));
  parallel(nt, [&](int tid, int cnt) {
    long e0, e1;
    split_range(total, tid, cnt, &e0, &e1);
    for_range(ts, e0, e1, f);
  });
}

}  // namespace

void sgd_step(const SgdArgs& a, const std::vector<OptimTensor>& ts, int nthreads) {
  const float sign = a.maximize ? -1.0f : 1.0f;
  const float wd = a.weight_decay, mom = a.momentum, damp1 = 1.0f - a.dampening, lr = a.lr;
  over_elements(ts, nthreads, [&](const OptimTensor& t, int64_t b, int64_t e) {
    float* p = t.p;
    const float* g = t.g;
    float* buf = t.a;
    if (mom == 0.0f) {
      for (int64_t i = b; i < e; ++i) p[i] = p[i] - lr * (sign * g[i] + wd * p[i]);
    } else if (a.first_step) {
      for (int64_t i = b; i < e; ++i) {
        const float d = sign * g[i] + wd * p[i];
        buf[i] = d;
        p[i] = p[i] - lr * (a.nesterov ? d + mom * d : d);
      }
    } else {
      for (int64_t i = b; i < e; ++i) {
        const float d = sign * g[i] + wd * p[i];
        const float nb = mom * buf[i] + damp1 * d;
        buf[i] = nb;
        p[i] = p[i] - lr * (a.nesterov ? d + mom * nb : nb);
      }
    }
  });
}

void adam_step(const AdamArgs& a, const std::vector<OptimTensor>& ts, int nthreads) {
  const float sign = a.maximize ? -1.0f : 1.0f;
  const float b1 = a.beta1, b2 = a.beta2, omb1 = 1.0f - b1, omb2 = 1.0f - b2, eps = a.eps;
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step));
  const float step_size = static_cast<float>(a.lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = a.decoupled ? 1.0f - a.lr * a.weight_decay : 1.0f;
  const float l2 = a.decoupled ? 0.0f : a.weight_decay;
  over_elements(ts, nthreads, [&](const OptimTensor& t, int64_t b, int64_t e) {
    float* p = t.p;
    const float* g = t.g;
    float* m = t.a;
    float* v = t.b;
    float* vmax = t.c;
    for (int64_t i = b; i < e; ++i) {
      const float pi = p[i] * decay;
      const float gi = sign * g[i] + l2 * pi;
      const float mi = m[i] + (gi - m[i]) * omb1;
      const float vi = v[i] * b2 + omb2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      float vu = vi;
      if (vmax) {
        vu = std::max(vmax[i], vi);
        vmax[i] = vu;
      }
      const float denom = std::sqrt(vu) / bc2_sqrt + eps;
      p[i] = pi - step_size * (mi / denom);
    }
  });
}

}  // namespace fastnn
