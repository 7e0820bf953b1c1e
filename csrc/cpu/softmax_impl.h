// softmax / log_softmax / cross-entropy row loops, written once and compiled into each ISA's
// translation unit (csrc/cpu/softmax.cpp, avx2/softmax.cpp, avx512/softmax.cpp) with its flags.
// exp is act_impl.h's branch-free exp_f, so the loops vectorise to the unit's width. Sums and
// maxima over a row keep 16 lanes (element i goes to lane i mod 16) combined in a fixed order:
// without -ffast-math the compiler cannot reorder a float reduction, and this order is the same
// on every ISA, thread count and row position.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/act_impl.h"
#include "ops/softmax.h"

namespace fastnn {
namespace {

constexpr int kLanes = 16;

inline float combine_sum(const float (&a)[kLanes]) {
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += a[l];
  return s;
}

// max over x[0, n) (NaN entries are skipped here; they reach the result through exp and the sum)
inline float row_max(const float* x, int64_t n) {
  float m[kLanes];
  for (int l = 0; l < kLanes; ++l) m[l] = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) m[l] = sel(x[i + l] > m[l], x[i + l], m[l]);
  for (int l = 0; i < n; ++i, ++l) m[l] = sel(x[i] > m[l], x[i], m[l]);
  float r = m[0];
  for (int l = 1; l < kLanes; ++l) r = sel(m[l] > r, m[l], r);
  return r;
}

// sum of exp(x - mx) over x[0, n), each exp also written to e when e is not null
inline float row_exp_sum(const float* x, int64_t n, float mx, float* e) {
  float s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float v = exp_f(x[i + l] - mx);
      if (e) e[i + l] = v;
      s[l] += v;
    }
  for (int l = 0; i < n; ++i, ++l) {
    const float v = exp_f(x[i] - mx);
    if (e) e[i] = v;
    s[l] += v;
  }
  return combine_sum(s);
}

inline float row_dot(const float* a, const float* b, int64_t n) {
  float s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) s[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) s[l] += a[i] * b[i];
  return combine_sum(s);
}

inline float row_sum(const float* a, int64_t n) {
  float s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) s[l] += a[i + l];
  for (int l = 0; i < n; ++i, ++l) s[l] += a[i];
  return combine_sum(s);
}

// Strided layout (inner > 1): columns j of one outer slice, the softmax axis i with stride inner.
inline void softmax_strided(const SoftmaxShape& s, bool log, const float* x, float* y) {
  const int64_t n = s.n, in = s.inner;
  for (int64_t j0 = 0; j0 < in; j0 += kLanes) {
    const int w = static_cast<int>(in - j0 < kLanes ? in - j0 : kLanes);
    float m[kLanes], sum[kLanes] = {};
    for (int l = 0; l < w; ++l) m[l] = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i)
      for (int l = 0; l < w; ++l) m[l] = sel(x[i * in + j0 + l] > m[l], x[i * in + j0 + l], m[l]);
    for (int64_t i = 0; i < n; ++i)
      for (int l = 0; l < w; ++l) {
        const float e = exp_f(x[i * in + j0 + l] - m[l]);
        if (!log) y[i * in + j0 + l] = e;
        sum[l] += e;
      }
    for (int l = 0; l < w; ++l) sum[l] = log ? std::log(sum[l]) : 1.0f / sum[l];
    for (int64_t i = 0; i < n; ++i)
      for (int l = 0; l < w; ++l) {
        const int64_t k = i * in + j0 + l;
        y[k] = log ? (x[k] - m[l]) - sum[l] : y[k] * sum[l];
      }
  }
}

inline void softmax_backward_strided(const SoftmaxShape& s, bool log, const float* dy, const float* y,
                                     float* dx) {
  const int64_t n = s.n, in = s.inner;
  for (int64_t j0 = 0; j0 < in; j0 += kLanes) {
    const int w = static_cast<int>(in - j0 < kLanes ? in - j0 : kLanes);
    float acc[kLanes] = {};
    for (int64_t i = 0; i < n; ++i)
      for (int l = 0; l < w; ++l) {
        const int64_t k = i * in + j0 + l;
        acc[l] += log ? dy[k] : dy[k] * y[k];
      }
    for (int64_t i = 0; i < n; ++i)
      for (int l = 0; l < w; ++l) {
        const int64_t k = i * in + j0 + l;
        dx[k] = log ? dy[k] - exp_f(y[k]) * acc[l] : y[k] * (dy[k] - acc[l]);
      }
  }
}

inline void softmax_forward_impl(const SoftmaxShape& s, bool log, const float* x, float* y, int64_t o0,
                                 int64_t o1) {
  const int64_t n = s.n, slice = s.n * s.inner;
  for (int64_t o = o0; o < o1; ++o) {
    const float* xr = x + o * slice;
    float* yr = y + o * slice;
    if (s.inner > 1) {
      softmax_strided(s, log, xr, yr);
      continue;
    }
    const float mx = row_max(xr, n);
    if (log) {  // torch's order: (x - max) - log(sum exp(x - max))
      const float ls = std::log(row_exp_sum(xr, n, mx, nullptr));
      for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - mx) - ls;
    } else {  // exp(x - max) times 1 / sum, as torch's vectorised kernel
      const float inv = 1.0f / row_exp_sum(xr, n, mx, yr);
      for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
    }
  }
}

inline void softmax_backward_impl(const SoftmaxShape& s, bool log, const float* dy, const float* y, float* dx,
                                  int64_t o0, int64_t o1) {
  const int64_t n = s.n, slice = s.n * s.inner;
  for (int64_t o = o0; o < o1; ++o) {
    const float* g = dy + o * slice;
    const float* yr = y + o * slice;
    float* d = dx + o * slice;
    if (s.inner > 1) {
      softmax_backward_strided(s, log, g, yr, d);
      continue;
    }
    if (log) {
      const float sg = row_sum(g, n);
      for (int64_t i = 0; i < n; ++i) d[i] = g[i] - exp_f(yr[i]) * sg;
    } else {
      const float dot = row_dot(g, yr, n);
      for (int64_t i = 0; i < n; ++i) d[i] = yr[i] * (g[i] - dot);
    }
  }
}

inline void cross_entropy_forward_impl(const CrossEntropyArgs& a, double* loss, double* weight, int64_t r0,
                                       int64_t r1) {
  const int64_t C = a.C;
  const double e = a.smoothing;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t t = a.target[r];
    if (t == a.ignore_index) {
      loss[r] = weight[r] = 0.0;
      continue;
    }
    const float* x = a.logits + r * C;
    const float mx = row_max(x, C);
    const double lse = mx + std::log(static_cast<double>(row_exp_sum(x, C, mx, nullptr)));
    const double wt = a.weight ? a.weight[t] : 1.0;
    double l = (1.0 - e) * wt * (lse - x[t]);
    if (e != 0.0) {
      const double wx = a.weight ? row_dot(a.weight, x, C) : row_sum(x, C);
      l += e / C * (a.weight_sum * lse - wx);
    }
    loss[r] = l;
    weight[r] = wt;
  }
}

inline void cross_entropy_backward_impl(const CrossEntropyArgs& a, const float* scale, float* dx, int64_t r0,
                                        int64_t r1) {
  const int64_t C = a.C;
  const float e = a.smoothing;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t t = a.target[r];
    float* d = dx + r * C;
    if (t == a.ignore_index) {
      for (int64_t c = 0; c < C; ++c) d[c] = 0.0f;
      continue;
    }
    const float* x = a.logits + r * C;
    const float mx = row_max(x, C);
    const float inv = 1.0f / row_exp_sum(x, C, mx, d);  // d holds exp(x - max) for now
    const float sc = scale[r];
    const float wt = a.weight ? a.weight[t] : 1.0f;
    const float coef = sc * inv * ((1.0f - e) * wt + static_cast<float>(e * a.weight_sum / C));
    if (e != 0.0f) {
      const float es = sc * e / static_cast<float>(C);
      if (a.weight) {
        for (int64_t c = 0; c < C; ++c) d[c] = d[c] * coef - es * a.weight[c];
      } else {
        for (int64_t c = 0; c < C; ++c) d[c] = d[c] * coef - es;
      }
    } else {
      for (int64_t c = 0; c < C; ++c) d[c] *= coef;
    }
    d[t] -= sc * (1.0f - e) * wt;
  }
}

}  // namespace
}  // namespace fastnn
