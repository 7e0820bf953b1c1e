// word2vec compiled for AVX-512: csrc/cpu/word2vec_impl.h's job loop on 8-lane vectors with
// AVX-512VL's masks for a row's tail (one masked block where AVX2 takes a 4-lane step and single
// elements); exp is csrc/cpu/avx2/exp.h's, which gives avx512/exp.h's bits. Why not 16 lanes: the
// loop is bound by latency, a chain from each update of a row to the next dot with it (a centre's
// word is predicted by each of its pairs: its NS row and HS path are updated pair after pair), not
// by the arithmetic; zmm dots, their reduction, and the sigmoid's exp and division took 5-15%
// longer for D = 50 .. 300 than this on a CPU that splits zmm operations (AMD Zen 4). Every
// element goes through the same fused multiply-adds in whichever block it falls. The sigmoid's
// lanes are loaded and stored whole, never masked: a masked store is not forwarded to the loads
// that read it back next (another ~10%).
#include <immintrin.h>

#include "cpu/avx2/exp.h"  // 8-lane exp: the same bits as avx512/exp.h's (its header says why)
#include "cpu/word2vec_impl.h"

namespace fastnn {
namespace {

inline __mmask8 mask8(int64_t n) {
  return n >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << n) - 1u);
}

// One block of update (word2vec_impl.h's VO::update) at element e, lanes m (all but a tail).
template <bool kTail>
inline void update_block(int64_t e, __mmask8 m, const float* l1, float* work, bool first, float* const* rows,
                         const float* g, int n, float* const* outs, int nouts, float scale) {
  auto load = [m](const float* p) { return kTail ? _mm256_maskz_loadu_ps(m, p) : _mm256_loadu_ps(p); };
  auto store = [m](float* p, __m256 x) {
    if (kTail)
      _mm256_mask_storeu_ps(p, m, x);
    else
      _mm256_storeu_ps(p, x);
  };
  const __m256 l = load(l1 + e);
  __m256 w = first ? _mm256_setzero_ps() : load(work + e);
  for (int k = 0; k < n; ++k) {
    const __m256 gk = _mm256_set1_ps(g[k]);
    __m256 r = load(rows[k] + e);
    w = _mm256_fmadd_ps(gk, r, w);
    r = _mm256_fmadd_ps(gk, l, r);
    store(rows[k] + e, r);
  }
  if (nouts == 0) {
    store(work + e, w);
    return;
  }
  if (scale != 1.0f) w = _mm256_mul_ps(w, _mm256_set1_ps(scale));
  for (int o = 0; o < nouts; ++o) store(outs[o] + e, _mm256_add_ps(load(outs[o] + e), w));
}

inline float hsum8(__m256 x) {
  __m128 y = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  y = _mm_add_ps(y, _mm_movehl_ps(y, y));
  y = _mm_add_ss(y, _mm_movehdup_ps(y));
  return _mm_cvtss_f32(y);
}

struct Avx512Ops {
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
    if (i < d) {
      const __mmask8 m = mask8(d - i);
      s1 = _mm256_fmadd_ps(_mm256_maskz_loadu_ps(m, a + i), _mm256_maskz_loadu_ps(m, b + i), s1);
    }
    return hsum8(_mm256_add_ps(s0, s1));
  }

  static void grads(const float* f, const float* label, int n, float alpha, float* g, float* e) {
    const __m256 one = _mm256_set1_ps(1.0f), al = _mm256_set1_ps(alpha), zero = _mm256_setzero_ps();
    for (int k = 0; k < n; k += 8) {
      const __m256 fv = _mm256_loadu_ps(f + k);
      const __m256 ev = exp_ps(_mm256_or_ps(fv, _mm256_set1_ps(-0.0f)));  // exp(-|f|)
      const __m256 q = _mm256_div_ps(one, _mm256_add_ps(one, ev)), p = _mm256_mul_ps(ev, q);
      const __mmask8 pos = _mm256_cmp_ps_mask(fv, zero, _CMP_GE_OQ);
      const __m256 sig_f = _mm256_mask_blend_ps(pos, p, q), sig_neg = _mm256_mask_blend_ps(pos, q, p);
      const __mmask8 lab = _mm256_cmp_ps_mask(_mm256_loadu_ps(label + k), zero, _CMP_NEQ_OQ);
      const __m256 gv = _mm256_mask_blend_ps(lab, _mm256_mul_ps(_mm256_sub_ps(zero, al), sig_f),
                                             _mm256_mul_ps(al, sig_neg));
      _mm256_storeu_ps(g + k, gv);
      _mm256_storeu_ps(e + k, ev);
    }
  }

  static void update(const float* l1, float* work, bool first, float* const* rows, const float* g, int n,
                     int64_t d, float* const* outs, int nouts, float scale) {
    int64_t e = 0;
    for (; e + 8 <= d; e += 8) update_block<false>(e, 0xFF, l1, work, first, rows, g, n, outs, nouts, scale);
    if (e < d) update_block<true>(e, mask8(d - e), l1, work, first, rows, g, n, outs, nouts, scale);
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
