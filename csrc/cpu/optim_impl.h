// Optimizer and norm loops, written once and compiled into each ISA's translation unit
// (csrc/cpu/optim.cpp, avx2/optim.cpp, avx512/optim.cpp) with that unit's flags; everything is
// in an anonymous namespace so the differently compiled copies never merge at link time.
// Each variant of an update (weight decay on/off, momentum mode, nesterov, amsgrad) is its own
// branch-free loop over restrict pointers, so the compiler vectorises it to the unit's width.
#pragma once
#include <cmath>
#include <cstdint>

#include "ops/optim.h"

namespace fastnn {
namespace {

// a * b + c rounded once where the unit has FMA: the operations torch's vectorised kernels
// compute with fmadd (add with alpha, lerp, addcmul). The portable unit (baseline x86-64 has no
// FMA instruction; std::fma would be a libm call per element) rounds the product first.
inline float madd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// kMode: 0 no momentum, 1 the first step (buf = d), 2 buf = momentum * buf + (1 - dampening) * d.
template <bool kWd, int kMode, bool kNesterov>
void sgd_loop(const SgdConsts& k, float* __restrict p, const float* __restrict g, float* __restrict buf,
              int64_t n) {
  const float sign = k.sign, wd = k.wd, mom = k.momentum, damp1 = k.damp1, neg_lr = k.neg_lr;
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i] * sign;           // exact: sign is +-1
    if (kWd) d = madd(p[i], wd, d);  // grad.add(param, alpha=weight_decay)
    if (kMode == 0) {
      p[i] = madd(d, neg_lr, p[i]);  // param.add_(grad, alpha=-lr)
    } else {
      const float nb = kMode == 1 ? d : madd(d, damp1, buf[i] * mom);  // buf.mul_(m).add_(d, alpha=1-damp)
      buf[i] = nb;
      const float u = kNesterov ? madd(nb, mom, d) : nb;  // grad.add(buf, alpha=momentum)
      p[i] = madd(u, neg_lr, p[i]);
    }
  }
}

template <bool kWd>
void sgd_pick(const SgdConsts& k, float* p, const float* g, float* buf, int64_t n) {
  if (!k.has_momentum) return sgd_loop<kWd, 0, false>(k, p, g, buf, n);
  if (k.first_step) {
    return k.nesterov ? sgd_loop<kWd, 1, true>(k, p, g, buf, n) : sgd_loop<kWd, 1, false>(k, p, g, buf, n);
  }
  return k.nesterov ? sgd_loop<kWd, 2, true>(k, p, g, buf, n) : sgd_loop<kWd, 2, false>(k, p, g, buf, n);
}

inline void sgd_range_impl(const SgdConsts& k, const OptimTensor& t, int64_t b, int64_t e) {
  float* buf = t.a ? t.a + b : nullptr;
  if (k.has_wd) {
    sgd_pick<true>(k, t.p + b, t.g + b, buf, e - b);
  } else {
    sgd_pick<false>(k, t.p + b, t.g + b, buf, e - b);
  }
}

// kDecay: AdamW's p *= 1 - lr * wd; kL2: Adam's g += wd * p; kLow: lerp weight 1 - beta1 < 0.5.
template <bool kDecay, bool kL2, bool kAms, bool kLow>
void adam_loop(const AdamConsts& k, float* __restrict p, const float* __restrict g, float* __restrict m,
               float* __restrict v, float* __restrict vmax, int64_t n) {
  const float sign = k.sign, decay = k.decay, wd = k.wd, w1 = k.w1, w1m1 = k.w1m1, b2 = k.b2, omb2 = k.omb2,
              bc2_sqrt = k.bc2_sqrt, eps = k.eps, neg_step = k.neg_step;
  for (int64_t i = 0; i < n; ++i) {
    float pi = p[i];
    if (kDecay) pi = pi * decay;  // param.mul_(1 - lr * weight_decay)
    float gi = g[i] * sign;
    if (kL2) gi = madd(pi, wd, gi);  // grad.add(param, alpha=weight_decay)
    const float mo = m[i];
    // exp_avg.lerp_(grad, w): torch's vectorised lerp is fma(w, g - m, m) for w < 0.5, else
    // fma(w - 1, g - m, g)
    const float mi = kLow ? madd(w1, gi - mo, mo) : madd(w1m1, gi - mo, gi);
    const float vi = madd(omb2 * gi, gi, v[i] * b2);  // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
    m[i] = mi;
    v[i] = vi;
    float vu = vi;
    if (kAms) {
      const float vo = vmax[i];
      vu = (vo > vi || vo != vo) ? vo : vi;  // torch.maximum: NaN propagates
      vmax[i] = vu;
    }
    const float denom = std::sqrt(vu) / bc2_sqrt + eps;
    p[i] = pi + (neg_step * mi) / denom;  // param.addcdiv_(m, denom, value=-step_size)
  }
}

template <bool kDecay, bool kL2>
void adam_pick(const AdamConsts& k, const OptimTensor& t, int64_t b, int64_t e) {
  float* vmax = t.c ? t.c + b : nullptr;
  auto run = [&](auto loop) { loop(k, t.p + b, t.g + b, t.a + b, t.b + b, vmax, e - b); };
  if (k.amsgrad) {
    k.lerp_low ? run(adam_loop<kDecay, kL2, true, true>) : run(adam_loop<kDecay, kL2, true, false>);
  } else {
    k.lerp_low ? run(adam_loop<kDecay, kL2, false, true>) : run(adam_loop<kDecay, kL2, false, false>);
  }
}

inline void adam_range_impl(const AdamConsts& k, const OptimTensor& t, int64_t b, int64_t e) {
  if (k.decoupled) {
    adam_pick<true, false>(k, t, b, e);
  } else if (k.l2) {
    adam_pick<false, true>(k, t, b, e);
  } else {
    adam_pick<false, false>(k, t, b, e);
  }
}

// Block sums in 8 float64 lanes (element i goes to lane i % 8, whatever the unit's vector width),
// combined by a fixed tree: the same bits on every ISA.
constexpr int kNormLanes = 8;

inline double lanes_sum(const double* a) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

inline double norm_block_impl(NormKind kind, double p, const float* __restrict x, int64_t n) {
  double acc[kNormLanes] = {};
  const int64_t n8 = n - n % kNormLanes;
  switch (kind) {
    case NormKind::L2:
      for (int64_t i = 0; i < n8; i += kNormLanes)
        for (int j = 0; j < kNormLanes; ++j) {
          const double v = x[i + j];
          acc[j] += v * v;
        }
      for (int64_t i = n8; i < n; ++i) {
        const double v = x[i];
        acc[i - n8] += v * v;
      }
      return lanes_sum(acc);
    case NormKind::L1:
      for (int64_t i = 0; i < n8; i += kNormLanes)
        for (int j = 0; j < kNormLanes; ++j) acc[j] += std::fabs(static_cast<double>(x[i + j]));
      for (int64_t i = n8; i < n; ++i) acc[i - n8] += std::fabs(static_cast<double>(x[i]));
      return lanes_sum(acc);
    case NormKind::Inf: {
      // max |x| in float (exact); a NaN anywhere makes the result NaN, as in torch
      float mx[kNormLanes] = {};
      int32_t nan[kNormLanes] = {};
      for (int64_t i = 0; i < n8; i += kNormLanes)
        for (int j = 0; j < kNormLanes; ++j) {
          const float a = std::fabs(x[i + j]);
          mx[j] = a > mx[j] ? a : mx[j];
          nan[j] |= a != a;
        }
      for (int64_t i = n8; i < n; ++i) {
        const float a = std::fabs(x[i]);
        mx[i - n8] = a > mx[i - n8] ? a : mx[i - n8];
        nan[i - n8] |= a != a;
      }
      double r = 0;
      for (int j = 0; j < kNormLanes; ++j) {
        if (nan[j]) return NAN;
        r = mx[j] > r ? mx[j] : r;
      }
      return r;
    }
    case NormKind::P:
      for (int64_t i = 0; i < n; ++i)
        acc[i % kNormLanes] += std::pow(std::fabs(static_cast<double>(x[i])), p);
      return lanes_sum(acc);
  }
  return 0;
}

}  // namespace
}  // namespace fastnn
