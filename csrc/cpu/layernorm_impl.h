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

// chunked_sum of f and of g in one pass over the row: each sum in the same order as alone.
template <class F, class G>
inline void chunked_sum2(int64_t n, F f, G g, double* sf, double* sg) {
  double tf = 0.0, tg = 0.0;
  for (int64_t c0 = 0; c0 < n; c0 += kLnChunk) {
    const int64_t c1 = c0 + kLnChunk < n ? c0 + kLnChunk : n;
    float s[kLnLanes] = {}, u[kLnLanes] = {};
    int64_t i = c0;
    for (; i + kLnLanes <= c1; i += kLnLanes)
      for (int l = 0; l < kLnLanes; ++l) {
        s[l] += f(i + l);
        u[l] += g(i + l);
      }
    for (int l = 0; i < c1; ++i, ++l) {
      s[l] += f(i);
      u[l] += g(i);
    }
    float a = 0.0f, b = 0.0f;
    for (int l = 0; l < kLnLanes; ++l) {
      a += s[l];
      b += u[l];
    }
    tf += a;
    tg += b;
  }
  *sf = tf;
  *sg = tg;
}

// One row in float64 throughout, for a row whose float32 sums overflowed (|x - mean| past about
// 1e19 squares past FLT_MAX) or that holds a non-finite value (NaN and the infinities come out as
// they would from the float path). y rounds once, so a row near FLT_MAX normalises as the
// reference does.
FASTNN_COLD inline void layer_norm_row_f64(const LayerNormArgs& a, const float* xr, float* yr, float* mean,
                                           float* rstd) {
  const int64_t n = a.n;
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += xr[i];
  const double mu = s / n;
  double v = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = xr[i] - mu;
    v += d * d;
  }
  const double rs = 1.0 / std::sqrt(v / n + static_cast<double>(a.eps));
  *mean = static_cast<float>(mu);
  *rstd = static_cast<float>(rs);
  for (int64_t i = 0; i < n; ++i) {
    double t = (xr[i] - mu) * rs;
    if (a.weight) t *= a.weight[i];
    if (a.bias) t += a.bias[i];
    yr[i] = static_cast<float>(t);
  }
}

inline void layer_norm_forward_impl(const LayerNormArgs& a, const float* x, float* y, float* mean,
                                    float* rstd, int64_t r0, int64_t r1) {
  const int64_t n = a.n;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float mu = static_cast<float>(chunked_sum(n, [&](int64_t i) { return xr[i]; }) / n);
    // second pass about the rounded mean: sum (x - mu)^2 - (sum (x - mu))^2 / n removes the
    // first-order effect of mu's rounding
    double d1, d2;
    chunked_sum2(
        n, [&](int64_t i) { return xr[i] - mu; },
        [&](int64_t i) {
          const float d = xr[i] - mu;
          return d * d;
        },
        &d1, &d2);
    if (!std::isfinite(mu) || !std::isfinite(d2)) {
      layer_norm_row_f64(a, xr, yr, mean + r, rstd + r);
      continue;
    }
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

// A row's backward in float64 (its float32 sums overflowed): sg = sum g, sgx = sum g xhat
// (g = dy * w), and dx, rounded once.
FASTNN_COLD inline void layer_norm_row_backward_f64(int64_t n, const float* dy, const float* xr,
                                                    const float* w, double mu, double rs, float* dx,
                                                    double* sg, double* sgx) {
  double s = 0.0, t = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = w ? static_cast<double>(dy[i]) * w[i] : dy[i];
    s += g;
    t += g * ((xr[i] - mu) * rs);
  }
  const double a1 = s / n, a2 = t / n;
  for (int64_t i = 0; i < n; ++i) {
    const double g = w ? static_cast<double>(dy[i]) * w[i] : dy[i];
    dx[i] = static_cast<float>(rs * (g - a1 - (xr[i] - mu) * rs * a2));
  }
  *sg = s;
  *sgx = t;
}

// pw[i] += dy[i] * xhat[i], pb[i] += dy[i] (restrict: the compiler would otherwise check for
// overlap and, here, fall back to scalar code).
inline void accumulate_columns(int64_t n, const float* __restrict g, const float* __restrict xr, float mu,
                               float rs, float* __restrict pw, float* __restrict pb) {
  for (int64_t i = 0; i < n; ++i) {
    pw[i] += g[i] * ((xr[i] - mu) * rs);
    pb[i] += g[i];
  }
}

// dx for rows [r0, r1). With part, also the column sums of dy*xhat and of dy over each block of
// kLnRowBlock rows in [r0, r1) (r0 a block's first row), in float32 in row order, to
// part[(2*blk)*n + j] and part[(2*blk + 1)*n + j], blk = row / kLnRowBlock.
inline void layer_norm_backward_impl(const LayerNormArgs& a, const float* dy, const float* x,
                                     const float* mean, const float* rstd, float* dx, float* part, int64_t r0,
                                     int64_t r1) {
  const int64_t n = a.n;
  const float* w = a.weight;
  float* pw = nullptr;
  float* pb = nullptr;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * n;
    const float* g = dy + r * n;
    float* d = dx + r * n;
    const float mu = mean[r], rs = rstd[r];
    double sg, sgx;
    if (w) {
      chunked_sum2(
          n, [&](int64_t i) { return g[i] * w[i]; },
          [&](int64_t i) { return g[i] * w[i] * ((xr[i] - mu) * rs); }, &sg, &sgx);
    } else {
      chunked_sum2(
          n, [&](int64_t i) { return g[i]; }, [&](int64_t i) { return g[i] * ((xr[i] - mu) * rs); }, &sg,
          &sgx);
    }
    // overflow of the float32 lanes (x - mean past FLT_MAX, or its product with dy), or a
    // non-finite value (stays so): the row in float64
    const bool wide = !std::isfinite(sg) || !std::isfinite(sgx);
    if (wide) layer_norm_row_backward_f64(n, g, xr, w, mu, rs, d, &sg, &sgx);
    const float a1 = static_cast<float>(sg / n), a2 = static_cast<float>(sgx / n);
    if (!wide && w) {
      for (int64_t i = 0; i < n; ++i) d[i] = rs * (g[i] * w[i] - a1 - (xr[i] - mu) * rs * a2);
    } else if (!wide) {
      for (int64_t i = 0; i < n; ++i) d[i] = rs * (g[i] - a1 - (xr[i] - mu) * rs * a2);
    }
    if (!part) continue;
    // The block's column sums from the row just read, still in L1 (no second pass over memory).
    if (r % kLnRowBlock == 0 || r == r0) {
      pw = part + 2 * (r / kLnRowBlock) * n;
      pb = pw + n;
      for (int64_t i = 0; i < n; ++i) pw[i] = pb[i] = 0.0f;
    }
    if (wide) {
      for (int64_t i = 0; i < n; ++i) {
        pw[i] += static_cast<float>(g[i] * ((static_cast<double>(xr[i]) - mu) * rs));
        pb[i] += g[i];
      }
    } else {
      accumulate_columns(n, g, xr, mu, rs, pw, pb);
    }
  }
}

}  // namespace
}  // namespace fastnn
