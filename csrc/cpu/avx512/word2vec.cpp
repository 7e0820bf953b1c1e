// word2vec compiled for AVX-512: csrc/cpu/word2vec_impl.h's job loop with 16-lane dots and
// updates (a row's tail in one masked block) and the sigmoid of up to 16 predictions in one
// vector, from csrc/cpu/avx512/exp.h. Every element goes through the same fused multiply-adds
// in whichever block it falls.
#include <immintrin.h>

#include "cpu/avx512/exp.h"
#include "cpu/avx512/simd.h"
#include "cpu/word2vec_impl.h"

namespace fastnn {
namespace {

// One block of update (word2vec_impl.h's VO::update) at element e, lanes m (all but a tail).
template <bool kTail>
inline void update_block(int64_t e, __mmask16 m, const float* l1, float* work, bool first, float* const* rows,
                         const float* g, int n, float* const* outs, int nouts, float scale) {
  auto load = [m](const float* p) { return kTail ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p); };
  auto store = [m](float* p, __m512 x) {
    if (kTail)
      _mm512_mask_storeu_ps(p, m, x);
    else
      _mm512_storeu_ps(p, x);
  };
  const __m512 l = load(l1 + e);
  __m512 w = first ? _mm512_setzero_ps() : load(work + e);
  for (int k = 0; k < n; ++k) {
    const __m512 gk = _mm512_set1_ps(g[k]);
    __m512 r = load(rows[k] + e);
    w = _mm512_fmadd_ps(gk, r, w);
    r = _mm512_fmadd_ps(gk, l, r);
    store(rows[k] + e, r);
  }
  if (nouts == 0) {
    store(work + e, w);
    return;
  }
  if (scale != 1.0f) w = _mm512_mul_ps(w, _mm512_set1_ps(scale));
  for (int o = 0; o < nouts; ++o) store(outs[o] + e, _mm512_add_ps(load(outs[o] + e), w));
}

struct Avx512Ops {
  static float dot(const float* a, const float* b, int64_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= d; i += 32) {
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
      s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    if (i + 16 <= d) {
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
      i += 16;
    }
    if (i < d) {
      const __mmask16 m = mask_for(static_cast<int>(d - i));
      s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  }

  static void grads(const float* f, const float* label, int n, float alpha, float* g, float* e) {
    const __mmask16 m = mask_for(n);
    const __m512 one = _mm512_set1_ps(1.0f), al = _mm512_set1_ps(alpha);
    const __m512 fv = _mm512_maskz_loadu_ps(m, f);
    const __m512 ev = exp_parts(_mm512_or_ps(fv, _mm512_set1_ps(-0.0f)), _mm512_setzero_ps());  // exp(-|f|)
    const __m512 q = _mm512_div_ps(one, _mm512_add_ps(one, ev)), p = _mm512_mul_ps(ev, q);
    const __mmask16 pos = _mm512_cmp_ps_mask(fv, _mm512_setzero_ps(), _CMP_GE_OQ);
    const __m512 sig_f = _mm512_mask_blend_ps(pos, p, q), sig_neg = _mm512_mask_blend_ps(pos, q, p);
    const __mmask16 lab =
        _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, label), _mm512_setzero_ps(), _CMP_NEQ_OQ);
    const __m512 gv = _mm512_mask_blend_ps(lab, _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), al), sig_f),
                                           _mm512_mul_ps(al, sig_neg));
    _mm512_mask_storeu_ps(g, m, gv);
    _mm512_mask_storeu_ps(e, m, ev);
  }

  static void update(const float* l1, float* work, bool first, float* const* rows, const float* g, int n,
                     int64_t d, float* const* outs, int nouts, float scale) {
    int64_t e = 0;
    for (; e + 16 <= d; e += 16)
      update_block<false>(e, 0xFFFF, l1, work, first, rows, g, n, outs, nouts, scale);
    if (e < d)
      update_block<true>(e, mask_for(static_cast<int>(d - e)), l1, work, first, rows, g, n, outs, nouts,
                         scale);
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

const Word2VecKernels word2vec_kernels_avx512{word2vec_train_job_impl<Avx512Ops>};

}  // namespace fastnn
