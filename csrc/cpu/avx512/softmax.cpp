// softmax / log_softmax / cross-entropy for AVX-512. Rows along the last axis (inner == 1) by
// hand: 16 floats a vector, the tail masked, exp from csrc/cpu/avx512/exp.h (vscalefps, no
// clamps on the result), maxima and sums reduced by the fixed _mm512_reduce_* sequences (so a
// row's result does not depend on the thread count or where the row starts). The strided
// layout (softmax over an inner axis) and the softmax backwards run csrc/cpu/softmax_impl.h's
// loops under this unit's flags.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "cpu/avx512/exp.h"
#include "cpu/avx512/simd.h"
#include "cpu/softmax_impl.h"

namespace fastnn {
namespace {

inline __mmask16 tail_mask(int64_t n, int64_t i) { return mask_for(static_cast<int>(n - i)); }

float max_row(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m);  // NaN x: skipped
  if (i < n) m = _mm512_mask_max_ps(m, tail_mask(n, i), _mm512_maskz_loadu_ps(tail_mask(n, i), x + i), m);
  return _mm512_reduce_max_ps(m);
}

// sum of exp(x - mx), each exp stored to e when e is not null
float exp_sum_row(const float* x, int64_t n, float mx, float* e) {
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 s = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 ex = exp_parts(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), _mm512_setzero_ps());
    if (e) _mm512_storeu_ps(e + i, ex);
    s = _mm512_add_ps(s, ex);
  }
  if (i < n) {
    const __mmask16 k = tail_mask(n, i);
    const __m512 ex = exp_parts(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), _mm512_setzero_ps());
    if (e) _mm512_mask_storeu_ps(e + i, k, ex);
    s = _mm512_mask_add_ps(s, k, s, ex);
  }
  return _mm512_reduce_add_ps(s);
}

float dot_row(const float* a, const float* b, int64_t n) {  // b null: sum of a
  __m512 s = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    s = b ? _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s)
          : _mm512_add_ps(s, _mm512_loadu_ps(a + i));
  if (i < n) {
    const __mmask16 k = tail_mask(n, i);
    const __m512 va = _mm512_maskz_loadu_ps(k, a + i);
    s = b ? _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(k, b + i), s) : _mm512_add_ps(s, va);
  }
  return _mm512_reduce_add_ps(s);
}

// y = x * a + b over a row (masked tail)
inline void affine_row(const float* x, float* y, int64_t n, float a, float b) {
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(_mm512_loadu_ps(x + i), va, vb));
  if (i < n) {
    const __mmask16 k = tail_mask(n, i);
    _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), va, vb));
  }
}

void forward(const SoftmaxShape& s, bool log, const float* x, float* y, int64_t o0, int64_t o1) {
  if (s.inner > 1) return softmax_forward_impl(s, log, x, y, o0, o1);
  const int64_t n = s.n;
  for (int64_t o = o0; o < o1; ++o) {
    const float* xr = x + o * n;
    float* yr = y + o * n;
    const float mx = max_row(xr, n);
    if (log) {  // (x - max) - log(sum): x * 1 + (-max - log sum) would round differently; keep
      const float ls = std::log(exp_sum_row(xr, n, mx, nullptr));  // torch's two subtractions
      const __m512 vm = _mm512_set1_ps(mx), vl = _mm512_set1_ps(ls);
      int64_t i = 0;
      for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(yr + i, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + i), vm), vl));
      if (i < n) {
        const __mmask16 k = tail_mask(n, i);
        _mm512_mask_storeu_ps(yr + i, k,
                              _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + i), vm), vl));
      }
    } else {
      const float inv = 1.0f / exp_sum_row(xr, n, mx, yr);
      affine_row(yr, yr, n, inv, 0.0f);
    }
  }
}

void ce_forward(const CrossEntropyArgs& a, double* loss, double* weight, int64_t r0, int64_t r1) {
  const int64_t C = a.C;
  const double e = a.smoothing;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t t = a.target[r];
    if (t == a.ignore_index) {
      loss[r] = weight[r] = 0.0;
      continue;
    }
    const float* x = a.logits + r * C;
    const float mx = max_row(x, C);
    const double lse = mx + std::log(static_cast<double>(exp_sum_row(x, C, mx, nullptr)));
    const double wt = a.weight ? a.weight[t] : 1.0;
    double l = (1.0 - e) * wt * (lse - x[t]);
    if (e != 0.0) l += e / C * (a.weight_sum * lse - dot_row(x, a.weight, C));
    loss[r] = l;
    weight[r] = wt;
  }
}

void ce_backward(const CrossEntropyArgs& a, const float* scale, float* dx, int64_t r0, int64_t r1) {
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
    const float mx = max_row(x, C);
    const float inv = 1.0f / exp_sum_row(x, C, mx, d);  // d holds exp(x - max) for now
    const float sc = scale[r];
    const float wt = a.weight ? a.weight[t] : 1.0f;
    const float coef = sc * inv * ((1.0f - e) * wt + static_cast<float>(e * a.weight_sum / C));
    if (e != 0.0f) {
      const float es = sc * e / static_cast<float>(C);
      if (a.weight) {
        for (int64_t c = 0; c < C; ++c) d[c] = d[c] * coef - es * a.weight[c];
      } else {
        affine_row(d, d, C, coef, -es);
      }
    } else {
      affine_row(d, d, C, coef, 0.0f);
    }
    d[t] -= sc * (1.0f - e) * wt;
  }
}

}  // namespace

const SoftmaxKernels softmax_kernels_avx512{forward, softmax_backward_impl, ce_forward, ce_backward};

}  // namespace fastnn
