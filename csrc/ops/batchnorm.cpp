// Batch normalisation front door: the split of the channels over threads and each channel's
// float64 statistics and constants; the passes over the data are csrc/cpu/batchnorm.cpp's.
#include "ops/batchnorm.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/threads.h"

namespace fastnn {
namespace {

// A second thread pays off above ~64k floats of work (a parallel region costs a few us).
constexpr int64_t kElemsPerThread = 1 << 16;

// f(c) for every channel, channels split in contiguous ranges over threads.
template <class F>
void over_channels(const BatchNormArgs& a, int nthreads, F&& f) {
  const int64_t total = a.n * a.c * a.hw;
  const int nt = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({static_cast<int64_t>(nthreads), a.c, total / kElemsPerThread})));
  parallel(nt, [&](int tid, int cnt) {
    long c0, c1;
    split_range(static_cast<long>(a.c), tid, cnt, &c0, &c1);
    for (long c = c0; c < c1; ++c) f(static_cast<int64_t>(c));
  });
}

// Channel c's mean and biased variance in float64 throughout (two passes), for a channel whose
// float32 lane sums overflowed: |x - mean| past about 1e19 squares past FLT_MAX.
FASTNN_COLD void channel_stats_f64(const float* xc, int64_t runs, int64_t hw, int64_t stride, double inv_m,
                                   double* mean, double* var) {
  double s = 0;
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < hw; ++i) s += xc[r * stride + i];
  const double mu = s * inv_m;
  double v = 0;
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < hw; ++i) {
      const double d = xc[r * stride + i] - mu;
      v += d * d;
    }
  *mean = mu;
  *var = v * inv_m;
}

// y = (x - mean) * alpha + beta in float64, rounded once (the float32 x - mean may overflow).
FASTNN_COLD void channel_affine_f64(const float* xc, float* yc, double mean, double alpha, double beta,
                                    int64_t runs, int64_t hw, int64_t stride) {
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < hw; ++i)
      yc[r * stride + i] = static_cast<float>((xc[r * stride + i] - mean) * alpha + beta);
}

// Channel c's backward sums in float64: sum dy and sum (x - mean) dy.
FASTNN_COLD void channel_bwd_sums_f64(const float* g, const float* xc, double mean, int64_t runs, int64_t hw,
                                      int64_t stride, double* sdy, double* dot) {
  double s = 0, d = 0;
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < hw; ++i) {
      s += g[r * stride + i];
      d += (xc[r * stride + i] - mean) * g[r * stride + i];
    }
  *sdy = s;
  *dot = d;
}

// dx = (dy - gm - (x - mean) k) scale in float64, rounded once.
FASTNN_COLD void channel_dx_f64(const float* g, const float* xc, float* d, double mean, double gm, double k,
                                double scale, int64_t runs, int64_t hw, int64_t stride) {
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < hw; ++i) {
      const int64_t j = r * stride + i;
      d[j] = static_cast<float>((g[j] - gm - (xc[j] - mean) * k) * scale);
    }
}

}  // namespace

void batch_norm2d_forward(const BatchNormArgs& a, const float* x, const float* weight, const float* bias,
                          float* running_mean, float* running_var, float* y, float* save_mean,
                          float* save_invstd, int nthreads) {
  const int64_t m_count = a.n * a.hw, stride = a.c * a.hw;
  // An empty batch: nothing to normalise, running statistics untouched. The saved statistics
  // are 0 in training (there are none) and, in eval, the running ones as for any batch.
  if (m_count == 0) {
    for (int64_t c = 0; c < a.c; ++c) {
      save_mean[c] = a.training ? 0.0f : running_mean[c];
      save_invstd[c] =
          a.training ? 0.0f : static_cast<float>(1.0 / std::sqrt(double{running_var[c]} + a.eps));
    }
    return;
  }
  const double inv_m = 1.0 / static_cast<double>(m_count);
  over_channels(a, nthreads, [&](int64_t c) {
    const float* xc = x + c * a.hw;
    double mean, var;
    bool wide = false;  // statistics and y in float64 (the float32 sums overflowed)
    if (a.training) {
      // Two passes: the mean, then the deviations from its float32 rounding mf; sum (x - mf)
      // corrects the second moment for that rounding (exactly, in exact arithmetic).
      const float mf = static_cast<float>(bn_sum_cpu(xc, a.n, a.hw, stride) * inv_m);
      double s1, s2;
      bn_dev_sums_cpu(xc, mf, a.n, a.hw, stride, &s1, &s2);
      const double d = s1 * inv_m;
      mean = std::isinf(mf) ? mf : mf + d;  // an infinite mean stays one (x - mf is NaN there)
      var = s2 * inv_m - d * d;
      if (var < 0) var = 0;                            // rounding; NaN stays NaN
      if (!std::isfinite(mf) || !std::isfinite(s2)) {  // overflow, or a non-finite x (stays so)
        channel_stats_f64(xc, a.n, a.hw, stride, inv_m, &mean, &var);
        wide = true;
      }
      if (running_mean) {
        running_mean[c] = static_cast<float>((1 - a.momentum) * running_mean[c] + a.momentum * mean);
        const double unbiased = var * static_cast<double>(m_count) / static_cast<double>(m_count - 1);
        running_var[c] = static_cast<float>((1 - a.momentum) * running_var[c] + a.momentum * unbiased);
      }
    } else {
      mean = running_mean[c];
      var = running_var[c];
    }
    const double invstd = 1.0 / std::sqrt(var + a.eps);
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    const float alpha = static_cast<float>(invstd * (weight ? weight[c] : 1.0f));
    const float beta = bias ? bias[c] : 0.0f;
    if (wide)
      channel_affine_f64(xc, y + c * a.hw, mean, invstd * (weight ? weight[c] : 1.0), beta, a.n, a.hw,
                         stride);
    else
      bn_affine_cpu(xc, y + c * a.hw, save_mean[c], alpha, beta, a.n, a.hw, stride);
  });
}

void batch_norm2d_backward(const BatchNormArgs& a, const float* dy, const float* x, const float* weight,
                           const float* save_mean, const float* save_invstd, float* dx, float* dweight,
                           float* dbias, int nthreads) {
  const int64_t m_count = a.n * a.hw, stride = a.c * a.hw;
  if (m_count == 0) {
    if (dweight) std::fill(dweight, dweight + a.c, 0.0f);
    if (dbias) std::fill(dbias, dbias + a.c, 0.0f);
    return;
  }
  const double inv_m = 1.0 / static_cast<double>(m_count);
  over_channels(a, nthreads, [&](int64_t c) {
    const int64_t off = c * a.hw;
    const float mf = save_mean[c];
    const double invstd = save_invstd[c], w = weight ? weight[c] : 1.0f;
    const float scale = static_cast<float>(invstd * w);
    if (!a.training && !weight) {  // nothing to sum
      bn_dx_eval_cpu(dy + off, dx + off, scale, a.n, a.hw, stride);
      return;
    }
    double sdy, dot;
    bn_bwd_sums_cpu(dy + off, x + off, mf, a.n, a.hw, stride, &sdy, &dot);
    // overflow of the float32 lanes (|x - mean| |dy| past FLT_MAX), or a non-finite value
    // (stays so): the channel in float64
    const bool wide = !std::isfinite(sdy) || !std::isfinite(dot);
    if (wide) channel_bwd_sums_f64(dy + off, x + off, mf, a.n, a.hw, stride, &sdy, &dot);
    if (dweight) {
      dweight[c] = static_cast<float>(dot * invstd);
      dbias[c] = static_cast<float>(sdy);
    }
    if (a.training && wide) {
      channel_dx_f64(dy + off, x + off, dx + off, mf, sdy * inv_m, dot * invstd * invstd * inv_m, invstd * w,
                     a.n, a.hw, stride);
    } else if (a.training) {
      const float gm = static_cast<float>(sdy * inv_m), k = static_cast<float>(dot * invstd * invstd * inv_m);
      bn_dx_train_cpu(dy + off, x + off, dx + off, mf, gm, k, scale, a.n, a.hw, stride);
    } else {
      bn_dx_eval_cpu(dy + off, dx + off, scale, a.n, a.hw, stride);
    }
  });
}

}  // namespace fastnn
