// word2vec compiled for AVX2+FMA: csrc/cpu/word2vec_impl.h's job loop with 8-lane dots and
// updates (a 4-lane step, then single elements, for a row's tail: AVX2's masked stores are slow
// on some CPUs) and the sigmoid from csrc/cpu/avx2/exp.h. Every element goes through the same
// fused multiply-adds in whichever block it falls.
#include <immintrin.h>

#include <cmath>

#include "cpu/avx2/exp.h"
#include "cpu/word2vec_impl.h"

namespace fastnn {
namespace {

inline float hsum4(__m128 x) {
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
inline float hsum8(__m256 x) {
  return hsum4(_mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1)));
}

// The lanes of one block of elements: 8, 4 or 1.
struct Lanes8 {
  using T = __m256;
  static constexpr int kN = 8;
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T x) { _mm256_storeu_ps(p, x); }
  static T set1(float s) { return _mm256_set1_ps(s); }
  static T zero() { return _mm256_setzero_ps(); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
};
struct Lanes4 {
  using T = __m128;
  static constexpr int kN = 4;
  static T load(const float* p) { return _mm_loadu_ps(p); }
  static void store(float* p, T x) { _mm_storeu_ps(p, x); }
  static T set1(float s) { return _mm_set1_ps(s); }
  static T zero() { return _mm_setzero_ps(); }
  static T fma(T a, T b, T c) { return _mm_fmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm_mul_ps(a, b); }
  static T add(T a, T b) { return _mm_add_ps(a, b); }
};
struct Lanes1 {
  using T = float;
  static constexpr int kN = 1;
  static T load(const float* p) { return *p; }
  static void store(float* p, T x) { *p = x; }
  static T set1(float s) { return s; }
  static T zero() { return 0.0f; }
  static T fma(T a, T b, T c) { return std::fma(a, b, c); }
  static T mul(T a, T b) { return a * b; }
  static T add(T a, T b) { return a + b; }
};

// One block of update (word2vec_impl.h's VO::update) at element e.
template <class L>
inline void update_block(int64_t e, const float* l1, float* work, bool first, float* const* rows,
                         const float* g, int n, float* const* outs, int nouts, float scale) {
  using T = typename L::T;
  const T l = L::load(l1 + e);
  T w = first ? L::zero() : L::load(work + e);
  for (int k = 0; k < n; ++k) {
    const T gk = L::set1(g[k]);
    T r = L::load(rows[k] + e);
    w = L::fma(gk, r, w);
    r = L::fma(gk, l, r);
    L::store(rows[k] + e, r);
  }
  if (nouts == 0) {
    L::store(work + e, w);
    return;
  }
  if (scale != 1.0f) w = L::mul(w, L::set1(scale));
  for (int o = 0; o < nouts; ++o) L::store(outs[o] + e, L::add(L::load(outs[o] + e), w));
}

struct Avx2Ops {
  static float dot(const float* a, const float* b, int64_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i + 8 <= d) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
      i += 8;
    }
    float t = hsum8(_mm256_add_ps(s0, s1));
    if (i + 4 <= d) {
      t += hsum4(_mm_mul_ps(_mm_loadu_ps(a + i), _mm_loadu_ps(b + i)));
      i += 4;
    }
    for (; i < d; ++i) t = std::fma(a[i], b[i], t);
    return t;
  }

  static void grads(const float* f, const float* label, int n, float alpha, float* g, float* e) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f), al = _mm256_set1_ps(alpha);
    for (int k = 0; k < n; k += 8) {  // f, label, g and e hold kW2vGroup entries
      const __m256 fv = _mm256_loadu_ps(f + k);
      const __m256 ev = exp_ps(_mm256_or_ps(fv, sign));  // exp(-|f|)
      const __m256 q = _mm256_div_ps(one, _mm256_add_ps(one, ev)), p = _mm256_mul_ps(ev, q);
      const __m256 pos = _mm256_cmp_ps(fv, _mm256_setzero_ps(), _CMP_GE_OQ);
      const __m256 sig_f = _mm256_blendv_ps(p, q, pos), sig_neg = _mm256_blendv_ps(q, p, pos);
      const __m256 lab = _mm256_cmp_ps(_mm256_loadu_ps(label + k), _mm256_setzero_ps(), _CMP_NEQ_OQ);
      const __m256 gv =
          _mm256_blendv_ps(_mm256_mul_ps(_mm256_xor_ps(al, sign), sig_f), _mm256_mul_ps(al, sig_neg), lab);
      _mm256_storeu_ps(g + k, gv);
      _mm256_storeu_ps(e + k, ev);
    }
  }

  static void update(const float* l1, float* work, bool first, float* const* rows, const float* g, int n,
                     int64_t d, float* const* outs, int nouts, float scale) {
    int64_t e = 0;
    for (; e + 8 <= d; e += 8) update_block<Lanes8>(e, l1, work, first, rows, g, n, outs, nouts, scale);
    if (e + 4 <= d) {
      update_block<Lanes4>(e, l1, work, first, rows, g, n, outs, nouts, scale);
      e += 4;
    }
    for (; e < d; ++e) update_block<Lanes1>(e, l1, work, first, rows, g, n, outs, nouts, scale);
  }

  static void copy(float* y, const float* x, int64_t d) {
    for (int64_t e = 0; e < d; ++e) y[e] = x[e];
  }
  static void add(float* __restrict y, const float* __restrict x, int64_t d) {
    for (int64_t e = 0; e < d; ++e) y[e] += x[e];
  }
  static void scale(float* y, float s, int64_t d) {
    for (int64_t e = 0; e < d; ++e) y[e] *= s;
  }
};

}  // namespace

const Word2VecKernels word2vec_kernels_avx2{word2vec_train_job_impl<Avx2Ops>};

}  // namespace fastnn
