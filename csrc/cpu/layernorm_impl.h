// Layer-norm row loops, written once and compiled into each ISA's translation unit
// (csrc/cpu/layernorm.cpp, avx2/layernorm.cpp, avx512/layernorm.cpp) with its flags. The 16-lane
// float sums vectorise to the unit's width; their combination order is fixed, so results do
// not depend on the ISA's width, the thread count or where a thread's rows start.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/layernorm.h"

namespace fastnn {
namespace {

constexpr int kLnLanes = 16;

// sum over x[0, n) of f(x[i]) (and of f(x[i]) * w[i] style pairs through f2): chunked as the
// contract says.
template <class F>
inline double chunked_sum(int64_t n, F f) {
  double total = 0.0;
  for (int64_t c0 = 0; c0 < n; c0 += kLnChunk) {
    const int64_t c1 = c0 + kLnChunk < n ? c0 + kLnChunk : n;
    float s[kLnLanes] = {};
    int64_t i = c0;
    for (; i + kLnLanes <= c1; i += kLnLanes)
      for (int l = 0; l < kLnLanes; ++l) s[l] += f(i + l);
    for (int l = 0; i < c1; ++i, ++l) s[l] += f(i);
    float t = 0.0f;
    for (int l = 0; l < kLnLanes; ++l) t += s[l];
    total += t;
  }
  return total;
}

inline void layer_norm_forward_impl(const LayerNormArgs& a, const float* x, float* y, float* mean, float* rstd,
                                    int64_t r0, int64_t r1) {
  const int64_t n = a.n;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float mu = static_cast<float>(chunked_sum(n, [&](int64_t i) { return xr[i]; }) / n);
    // second pass about the rounded mean: sum (x - mu)^2 - (sum (x - mu))^2 / n removes the
    // first-order effect of mu's rounding
    const double d1 = chunked_sum(n, [&](int64_t i) { return xr[i] - mu; });
    const double d2 = chunked_sum(n, [&](int64_t i) { const float d = xr[i] - mu; return d * d; });
    double var = (d2 - d1 * d1 / n) / n;
    if (var < 0.0) var = 0.0;
    const float rs = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(a.eps)));
    mean[r] = mu;
    rstd[r] = rs;
    if (a.weight && a.bias) {
      for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - mu) * rs * a.weight[i] + a.bias[i];
    } else if (a.weight) {
      for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - mu) * rs * a.weight[i];
    } else if (a.bias) {
      for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - mu) * rs + a.bias[i];
    } else {
      for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - mu) * rs;
    }
  }
}

inline void layer_norm_backward_impl(const LayerNormArgs& a, const float* dy, const float* x, const float* mean,
                                     const float* rstd, float* dx, int64_t r0, int64_t r1) {
  const int64_t n = a.n;
  const float* w = a.weight;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    const float* g = dy + r * n;
    float* d = dx + r * n;
    const float mu = mean[r], rs = rstd[r];
    double sg, sgx;
    if (w) {
      sg = chunked_sum(n, [&](int64_t i) { return g[i] * w[i]; });
      sgx = chunked_sum(n, [&](int64_t i) { return g[i] * w[i] * ((xr[i] - mu) * rs); });
    } else {
      sg = chunked_sum(n, [&](int64_t i) { return g[i]; });
      sgx = chunked_sum(n, [&](int64_t i) { return g[i] * ((xr[i] - mu) * rs); });
    }
    const float a1 = static_cast<float>(sg / n), a2 = static_cast<float>(sgx / n);
    if (w) {
      for (int64_t i = 0; i < n; ++i) d[i] = rs * (g[i] * w[i] - a1 - (xr[i] - mu) * rs * a2);
    } else {
      for (int64_t i = 0; i < n; ++i) d[i] = rs * (g[i] - a1 - (xr[i] - mu) * rs * a2);
    }
  }
}

// dweight, dbias over columns [c0, c1): float64 sums over every row, in row order.
inline void layer_norm_backward_params_impl(const LayerNormArgs& a, const float* dy, const float* x,
                                            const float* mean, const float* rstd, float* dweight, float* dbias,
                                            int64_t c0, int64_t c1) {
  const int64_t n = a.n, w = c1 - c0;
  std::vector<double> sw(static_cast<size_t>(w), 0.0), sb(static_cast<size_t>(w), 0.0);
  double* pw = sw.data();
  double* pb = sb.data();
  for (int64_t r = 0; r < a.m; ++r) {
    const float* xr = x + r * n + c0;
    const float* g = dy + r * n + c0;
    const float mu = mean[r], rs = rstd[r];
    for (int64_t i = 0; i < w; ++i) {
      pw[i] += static_cast<double>(g[i] * ((xr[i] - mu) * rs));
      pb[i] += static_cast<double>(g[i]);
    }
  }
  for (int64_t i = 0; i < w; ++i) {
    if (dweight) dweight[c0 + i] = static_cast<float>(pw[i]);
    if (dbias) dbias[c0 + i] = static_cast<float>(pb[i]);
  }
}

}  // namespace
}  // namespace fastnn
