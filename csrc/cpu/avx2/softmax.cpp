// softmax / log_softmax / cross-entropy for AVX2+FMA. Rows along the last axis (inner == 1) by
// hand, as csrc/cpu/avx512/softmax.cpp does them: 8 floats a ymm, exp from csrc/cpu/avx2/exp.h,
// tails through _mm256_maskload/maskstore. A row's sums and maxima run in 16 lanes (two ymm:
// element i goes to lane i mod 16, as csrc/ops/softmax.h states) folded in a fixed order at the
// end, so a row's result depends neither on the thread count nor on where the row starts.
// The strided layout (softmax over an inner axis) runs csrc/cpu/softmax_impl.h's loops under
// this unit's flags.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/avx2/exp.h"
#include "cpu/avx2/simd.h"
#include "cpu/softmax_impl.h"

namespace fastnn {
namespace {

const float kNegInf = -std::numeric_limits<float>::infinity();

// Fixed folds of the two 8-lane accumulators (lanes 0-7 and 8-15 of the row's 16): a + b, then
// the halves, pairs and neighbours, the same sequence for every row.
inline float fold_sum(__m256 a, __m256 b) {
  __m256 s = _mm256_add_ps(a, b);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

inline float fold_max(__m256 a, __m256 b) {
  __m256 s = _mm256_max_ps(a, b);
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// Walks a row of n floats 16 at a time: body(i, k) for the two vectors of each full step
// (k = 0 is lanes 0-7, k = 1 lanes 8-15), then the n % 16 tail as at most one full vector
// (k = 0) and one masked one, tail(i, k, mask). Every loop below goes through it so that all of
// them put element i in the same lane.
template <class Body, class Tail>
inline void walk16(int64_t n, Body body, Tail tail) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    body(i, 0);
    body(i + 8, 1);
  }
  int k = 0;
  if (i + 8 <= n) {
    body(i, 0);
    i += 8;
    k = 1;
  }
  if (i < n) tail(i, k, tail_mask(n - i));
}

// max over x[0, n). NaN entries are skipped (max returns its second operand, the accumulator,
// when one is NaN); they reach the result through exp and the sum.
float max_row(const float* x, int64_t n) {
  __m256 m[2] = {_mm256_set1_ps(kNegInf), _mm256_set1_ps(kNegInf)};
  walk16(
      n, [&](int64_t i, int k) { m[k] = _mm256_max_ps(_mm256_loadu_ps(x + i), m[k]); },
      [&](int64_t i, int k, __m256i mk) {
        const __m256 xv =
            _mm256_blendv_ps(_mm256_set1_ps(kNegInf), _mm256_maskload_ps(x + i, mk), _mm256_castsi256_ps(mk));
        m[k] = _mm256_max_ps(xv, m[k]);
      });
  return fold_max(m[0], m[1]);
}

// sum of exp(x - mx) over x[0, n), each exp stored to e when e is not null (e may be x: each
// element is read before it is written)
float exp_sum_row(const float* x, int64_t n, float mx, float* e) {
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 s[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  walk16(
      n,
      [&](int64_t i, int k) {
        const __m256 ex = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        if (e) _mm256_storeu_ps(e + i, ex);
        s[k] = _mm256_add_ps(s[k], ex);
      },
      [&](int64_t i, int k, __m256i mk) {
        __m256 ex = exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, mk), vm));
        ex = _mm256_and_ps(ex, _mm256_castsi256_ps(mk));  // lanes past n add 0, not exp(-mx)
        if (e) _mm256_maskstore_ps(e + i, mk, ex);
        s[k] = _mm256_add_ps(s[k], ex);
      });
  return fold_sum(s[0], s[1]);
}

// sum of a[i] * b[i] over [0, n), or of a[i] when b is null
float dot_row(const float* a, const float* b, int64_t n) {
  __m256 s[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  walk16(
      n,
      [&](int64_t i, int k) {
        const __m256 va = _mm256_loadu_ps(a + i);
        s[k] = b ? _mm256_fmadd_ps(va, _mm256_loadu_ps(b + i), s[k]) : _mm256_add_ps(s[k], va);
      },
      [&](int64_t i, int k, __m256i mk) {  // masked loads give 0 past n
        const __m256 va = _mm256_maskload_ps(a + i, mk);
        s[k] = b ? _mm256_fmadd_ps(va, _mm256_maskload_ps(b + i, mk), s[k]) : _mm256_add_ps(s[k], va);
      });
  return fold_sum(s[0], s[1]);
}

// y[i] = f(x[i]) over a row, one vector at a time, the tail masked (f sees zeros past n)
template <class F>
inline void map_row(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mk = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, mk, f(_mm256_maskload_ps(x + i, mk)));
  }
}

// d[i] = f(a[i], b[i]) over a row, as map_row
template <class F>
inline void map2_row(const float* a, const float* b, float* d, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, f(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  if (i < n) {
    const __m256i mk = tail_mask(n - i);
    _mm256_maskstore_ps(d + i, mk, f(_mm256_maskload_ps(a + i, mk), _mm256_maskload_ps(b + i, mk)));
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
      const __m256 vm = _mm256_set1_ps(mx);  // torch's two subtractions
      const __m256 vl = _mm256_set1_ps(std::log(exp_sum_row(xr, n, mx, nullptr)));
      map_row(xr, yr, n, [&](__m256 v) { return _mm256_sub_ps(_mm256_sub_ps(v, vm), vl); });
    } else {  // exp(x - max) into y, then times 1 / sum, as torch's vectorised kernel
      const __m256 inv = _mm256_set1_ps(1.0f / exp_sum_row(xr, n, mx, yr));
      map_row(yr, yr, n, [&](__m256 v) { return _mm256_mul_ps(v, inv); });
    }
  }
}

void backward(const SoftmaxShape& s, bool log, const float* dy, const float* y, float* dx, int64_t o0,
              int64_t o1) {
  if (s.inner > 1) return softmax_backward_impl(s, log, dy, y, dx, o0, o1);
  const int64_t n = s.n;
  for (int64_t o = o0; o < o1; ++o) {
    const float* g = dy + o * n;
    const float* yr = y + o * n;
    float* d = dx + o * n;
    if (log) {  // dx = dy - exp(y) * sum(dy)
      const __m256 sg = _mm256_set1_ps(dot_row(g, nullptr, n));
      map2_row(g, yr, d, n, [&](__m256 gv, __m256 yv) { return _mm256_fnmadd_ps(exp_ps(yv), sg, gv); });
    } else {  // dx = y * (dy - sum(dy * y))
      const __m256 dot = _mm256_set1_ps(dot_row(g, yr, n));
      map2_row(g, yr, d, n, [&](__m256 gv, __m256 yv) { return _mm256_mul_ps(yv, _mm256_sub_ps(gv, dot)); });
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
      map_row(d, d, C, [](__m256) { return _mm256_setzero_ps(); });
      continue;
    }
    const float* x = a.logits + r * C;
    const float mx = max_row(x, C);
    const float inv = 1.0f / exp_sum_row(x, C, mx, d);  // d holds exp(x - max) for now
    const float sc = scale[r];
    const float wt = a.weight ? a.weight[t] : 1.0f;
    const __m256 coef =
        _mm256_set1_ps(sc * inv * ((1.0f - e) * wt + static_cast<float>(e * a.weight_sum / C)));
    // d = d * coef - (e s / C) w_c (the smoothing's share; 0 without smoothing)
    const __m256 es = _mm256_set1_ps(sc * e / static_cast<float>(C));
    if (e != 0.0f && a.weight) {
      map2_row(d, a.weight, d, C,
               [&](__m256 dv, __m256 wv) { return _mm256_fmsub_ps(dv, coef, _mm256_mul_ps(es, wv)); });
    } else if (e != 0.0f) {
      map_row(d, d, C, [&](__m256 dv) { return _mm256_fmsub_ps(dv, coef, es); });
    } else {
      map_row(d, d, C, [&](__m256 dv) { return _mm256_mul_ps(dv, coef); });
    }
    d[t] -= sc * (1.0f - e) * wt;
  }
}

}  // namespace

const SoftmaxKernels softmax_kernels_avx2{forward, backward, ce_forward, ce_backward};

}  // namespace fastnn
