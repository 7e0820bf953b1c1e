// Batch normalisation's per-channel passes, portable C++ (see csrc/ops/batchnorm.h). The sums
// keep 16 float lanes per chunk of kBnChunk floats (16 values per lane at most, so float
// accumulation costs ~16 ulps at worst) and fold each chunk into a float64 sum: SSE2 adds four
// lanes per instruction, where converting every value to float64 would cost two conversions per
// four values. The elementwise passes are plain loops the compiler vectorises.
#include <algorithm>

#include "ops/batchnorm.h"

namespace fastnn {
namespace {

constexpr int kLanes = 16;

// The 16 lanes of a chunk, added in float64 by a fixed tree.
inline double fold(const float* a) {
  double t[8];
  for (int j = 0; j < 8; ++j) t[j] = static_cast<double>(a[j]) + static_cast<double>(a[j + 8]);
  return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
}

// Adds sum over i < n of term(i, lane accumulators...) chunk by chunk; term(i, l, acc...) adds
// element i's values into lane l of each accumulator.
template <int kSums, class F>
void chunked(int64_t n, F term, double* s) {
  for (int64_t i = 0; i < n; i += kBnChunk) {
    const int64_t e = std::min(n, i + kBnChunk);
    float acc[kSums][kLanes] = {};
    int64_t j = i;
    for (; j + kLanes <= e; j += kLanes)
      for (int l = 0; l < kLanes; ++l) term(j + l, l, acc);
    for (int l = 0; j < e; ++j, ++l) term(j, l, acc);
    for (int k = 0; k < kSums; ++k) s[k] += fold(acc[k]);
  }
}

}  // namespace

double bn_sum_cpu(const float* x, int64_t runs, int64_t hw, int64_t stride) {
  double s = 0;
  for (int64_t r = 0; r < runs; ++r) {
    const float* __restrict p = x + r * stride;
    chunked<1>(hw, [&](int64_t i, int l, float(*acc)[kLanes]) { acc[0][l] += p[i]; }, &s);
  }
  return s;
}

void bn_dev_sums_cpu(const float* x, float m, int64_t runs, int64_t hw, int64_t stride, double* s1,
                     double* s2) {
  double s[2] = {0, 0};
  for (int64_t r = 0; r < runs; ++r) {
    const float* __restrict p = x + r * stride;
    chunked<2>(
        hw,
        [&](int64_t i, int l, float(*acc)[kLanes]) {
          const float d = p[i] - m;
          acc[0][l] += d;
          acc[1][l] += d * d;
        },
        s);
  }
  *s1 = s[0];
  *s2 = s[1];
}

void bn_bwd_sums_cpu(const float* dy, const float* x, float m, int64_t runs, int64_t hw, int64_t stride,
                     double* sdy, double* dot) {
  double s[2] = {0, 0};
  for (int64_t r = 0; r < runs; ++r) {
    const float* __restrict g = dy + r * stride;
    const float* __restrict p = x + r * stride;
    chunked<2>(
        hw,
        [&](int64_t i, int l, float(*acc)[kLanes]) {
          acc[0][l] += g[i];
          acc[1][l] += (p[i] - m) * g[i];
        },
        s);
  }
  *sdy = s[0];
  *dot = s[1];
}

void bn_affine_cpu(const float* x, float* y, float m, float alpha, float beta, int64_t runs, int64_t hw,
                   int64_t stride) {
  for (int64_t r = 0; r < runs; ++r) {
    const float* __restrict p = x + r * stride;
    float* __restrict q = y + r * stride;
    for (int64_t i = 0; i < hw; ++i) q[i] = (p[i] - m) * alpha + beta;
  }
}

void bn_dx_train_cpu(const float* dy, const float* x, float* dx, float m, float gm, float k, float scale,
                     int64_t runs, int64_t hw, int64_t stride) {
  for (int64_t r = 0; r < runs; ++r) {
    const float* __restrict g = dy + r * stride;
    const float* __restrict p = x + r * stride;
    float* __restrict q = dx + r * stride;
    for (int64_t i = 0; i < hw; ++i) q[i] = (g[i] - gm - (p[i] - m) * k) * scale;
  }
}

void bn_dx_eval_cpu(const float* dy, float* dx, float scale, int64_t runs, int64_t hw, int64_t stride) {
  for (int64_t r = 0; r < runs; ++r) {
    const float* __restrict g = dy + r * stride;
    float* __restrict q = dx + r * stride;
    for (int64_t i = 0; i < hw; ++i) q[i] = g[i] * scale;
  }
}

}  // namespace fastnn
