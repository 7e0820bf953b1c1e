// Activations compiled for AVX2+FMA. sigmoid, tanh and both gelus forward and gelu's backward
// are written with intrinsics here (8 lanes, the tail through _mm256_maskload/maskstore); the
// rest runs the loops of csrc/cpu/act_impl.h under this unit's flags (auto-vectorised, 8-wide).
//
// The same functions as csrc/cpu/avx512/act.cpp where AVX2 has the instructions: exp from
// csrc/cpu/avx2/exp.h, tanh as one rational function, sigmoid from exp(-|x|). Two changes:
// - Divisions stay divisions (vdivps): AVX2's vrcpps has 12 bits (a Newton step leaves ~1 ulp
//   on top of the rest) and its bits differ between Intel and AMD; the division keeps every
//   CPU's result the same, and costs little next to the exp.
// - gelu: AVX2 has no 32-entry permute (vpermt2ps), so Phi(x) on |x| < 3.75 is one of 8
//   degree-7 pieces in a = |x| (centred on k/2, |u| <= 1/4), picked per lane by one vpermps
//   (8 entries) per coefficient: Q(a) = Phi(-a) fitted for relative error (weighted least
//   squares driven to minimax by Lawson's iteration in float64, the coefficients rounded to
//   float32 one at a time from u^0 up, refitting the rest after each), then Phi(x) = Q for
//   x < 0 and 1 - Q for x >= 0. Outside, the erfc form of avx512/act.cpp's gelu_tail_ps.
//
// Accuracy against float64, measured on dense grids (eps = 2^-23, relative to |y|; the bounds
// tests/test_act.py checks on every ISA are larger): gelu 1.9 eps on the pieces (x Phi
// rounded), the erfc tail as on AVX-512; sigmoid, tanh as the portable code (division).
// NaN in gives NaN out; results per element do not depend on where a thread range starts.
#include <immintrin.h>

#include "cpu/act_impl.h"
#include "cpu/avx2/exp.h"
#include "cpu/avx2/simd.h"

namespace fastnn {
namespace {

inline __m256 abs_ps(__m256 x) { return _mm256_andnot_ps(v(-0.0f), x); }

// sigmoid(x) with e = exp(-|x|) in (0, 1]: 1/(1+e) for x >= 0, e/(1+e) below (no overflow,
// relative accuracy kept in the left tail). The sign bit of x picks (blendv), so -0 gives
// e/(1+e) = 1/2 as well.
inline __m256 sigmoid_ps(__m256 x) {
  const __m256 e = exp_ps(_mm256_or_ps(x, v(-0.0f)));  // -|x|
  return _mm256_div_ps(_mm256_blendv_ps(v(1.0f), e, x), _mm256_add_ps(v(1.0f), e));
}

// tanh = x P(x^2) / Q(x^2) on |x| < 9 (the fit of act_impl.h's tanh_f and avx512/act.cpp's),
// exactly +-1 from |x| = 9 on (tanh(9) rounds to 1). Odd by construction (tanh(-0) = -0); NaN
// passes min/max (they return the NaN operand) and fails s >= 81.
inline __m256 tanh_ps(__m256 x) {
  const __m256 xc = _mm256_max_ps(v(-9.0f), _mm256_min_ps(v(9.0f), x));
  const __m256 s = _mm256_mul_ps(xc, xc);
  __m256 p = v(1.8255758e-11f);
  p = _mm256_fmadd_ps(p, s, v(-1.2780646e-8f));
  p = _mm256_fmadd_ps(p, s, v(9.267488e-6f));
  p = _mm256_fmadd_ps(p, s, v(2.920769e-3f));
  p = _mm256_fmadd_ps(p, s, v(1.2919235e-1f));
  p = _mm256_fmadd_ps(p, s, v(0.99999994f));
  __m256 q = v(2.281012e-4f);
  q = _mm256_fmadd_ps(q, s, v(2.3763198e-2f));
  q = _mm256_fmadd_ps(q, s, v(4.625252e-1f));
  q = _mm256_fmadd_ps(q, s, v(1.0f));
  const __m256 y = _mm256_div_ps(_mm256_mul_ps(xc, p), q);
  const __m256 one = _mm256_or_ps(v(1.0f), _mm256_and_ps(x, v(-0.0f)));  // +-1 with x's sign
  return _mm256_blendv_ps(y, one, _mm256_cmp_ps(s, v(81.0f), _CMP_GE_OQ));
}

// gelu for any x (gelu_ps below uses it for vectors with a lane outside |x| < 3.75): the erfc
// form of avx512/act.cpp's gelu_tail_ps, x Phi(x), Phi = erfc(|x|/sqrt2)/2 for x < 0 and
// 1 - that for x >= 0, erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2), P a degree-9 fit on z in
// [0, 9.2]; z^2 = x^2/2 enters exp as hi + lo (lo = fma(x, x, -hi)): no x^2-sized rounding.
// |x| is capped at 6 for x >= 0 (1 - erfc/2 rounds to 1 from there) and at 13 for x < 0 (|y|
// < 1e-37 beyond), which keeps exp's argument in exp_core's range and every value normal.
// gelu(-inf) = -inf * 0 = NaN, as in torch.
// erfc(z)/2 = t e for z = a/sqrt2, a in [0, 13]: t = 1/(1 + z/2), e = exp(-z^2 + P(t) - ln 2)
// with z^2 = a^2/2 as hi + lo (exp's argument stays in exp_core's range; e >= 2.8e-38).
inline void erfc_half_ps(__m256 a, __m256* t_out, __m256* e_out) {
  const __m256 t = _mm256_div_ps(v(1.0f), _mm256_fmadd_ps(a, v(0.5f * 0.70710678118654752f), v(1.0f)));
  __m256 p = _mm256_fmadd_ps(v(0.13532853f), t, v(-0.6282118f));
  p = _mm256_fmadd_ps(p, t, v(1.032108f));
  p = _mm256_fmadd_ps(p, t, v(-0.52924175f));
  p = _mm256_fmadd_ps(p, t, v(-0.2194101f));
  p = _mm256_fmadd_ps(p, t, v(0.07574787f));
  p = _mm256_fmadd_ps(p, t, v(9.0661515e-3f));
  p = _mm256_fmadd_ps(p, t, v(0.39203018f));
  p = _mm256_fmadd_ps(p, t, v(0.99799924f));
  p = _mm256_fmadd_ps(p, t, v(-1.2654165f - 0.69314718f));  // - ln 2: gives erfc(z) / 2
  const __m256 hi = _mm256_mul_ps(a, a);
  const __m256 lo = _mm256_fmsub_ps(a, a, hi);
  *t_out = t;
  *e_out = exp_core(_mm256_mul_ps(hi, v(-0.5f)), _mm256_fnmadd_ps(lo, v(0.5f), p));
}

inline __m256 gelu_tail_ps(__m256 x) {
  const __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NLT_UQ);                 // x >= 0 or NaN
  const __m256 ax = _mm256_min_ps(_mm256_blendv_ps(v(13.0f), v(6.0f), pos), abs_ps(x));  // NaN stays
  __m256 t, e;
  erfc_half_ps(ax, &t, &e);
  // left: (-|x| t) e rather than -|x| (t e), as t e alone is denormal near |x| = 13
  const __m256 yneg = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), ax), t), e);
  const __m256 ypos = _mm256_mul_ps(x, _mm256_sub_ps(v(1.0f), _mm256_mul_ps(t, e)));
  const __m256 minus_inf = _mm256_cmp_ps(x, v(-__builtin_inff()), _CMP_EQ_OQ);
  return _mm256_blendv_ps(_mm256_blendv_ps(yneg, ypos, pos), v(__builtin_nanf("")), minus_inf);
}

// Q(a) = Phi(-a) on a in [-1/4, 15/4): piece k = round(2a) (k = 0..7), u = a - k/2, row j the
// u^j coefficients, column k (vpermps reads k from the low 3 bits of s in gelu_mid_ps).
// Fit error <= 0.35 eps relative (with the float32 rounding of the coefficients); 1.2 eps
// after float32 Horner evaluation.
alignas(32) const float kQPieces[8][8] = {
    {0.5f, 0.308537543f, 0.158655256f, 0.066807203f,  // u^0
     0.0227501318f, 0.00620966544f, 0.00134989806f, 0.000232629085f},
    {-0.398942292f, -0.352065325f, -0.241970733f, -0.1295176f,  // u^1
     -0.0539909676f, -0.0175283011f, -0.00443184841f, -0.000872682722f},
    {7.74731568e-09f, 0.0880151391f, 0.120984748f, 0.097137697f,  // u^2
     0.0539910197f, 0.0219103396f, 0.00664776377f, 0.00152719242f},
    {0.066491738f, 0.0440088212f, 1.44646697e-06f, -0.0269817729f,  // u^3
     -0.0269954428f, -0.0153371384f, -0.00590911647f, -0.00163627218f},
    {-6.2200786e-07f, -0.0201185383f, -0.0201375578f, -0.00605003349f,  // u^4
     0.00449662236f, 0.00593570108f, 0.00332438713f, 0.00117734063f},
    {-0.0100140944f, -0.00462258002f, 0.00397903519f, 0.0058249291f,  // u^5
     0.00225033378f, -0.000671277056f, -0.00110874674f, -0.000578962674f},
    {9.37402274e-06f, 0.00249139406f, 0.00172192394f, -0.000871303491f,  // u^6
     -0.00131276576f, -0.000533276238f, 0.000102113168f, 0.000178409624f},
    {0.00152746378f, 0.000782810966f, -0.000225052383f, -9.47218068e-05f,  // u^7
     9.64874416e-05f, 0.000311012001f, 9.39330639e-05f, -1.7127657e-05f},
};

// Phi(x) for |x| < 3.75: Q(a) from the pieces, a = |x|. s = 1.5 * 2^23 + round(2a) exactly
// (k lands in the low mantissa bits, which vpermps reads), u = a - k/2 exact. No exp, no
// division: 4 + 8 permutes + 7 fma + 2 operations per 8 values. x = -0 gives Q(0) = 1/2.
inline __m256 cdf_mid_ps(__m256 x) {
  const __m256 magic = v(12582912.0f);
  const __m256 a = abs_ps(x);
  const __m256 s = _mm256_fmadd_ps(a, v(2.0f), magic);
  const __m256 u = _mm256_fmadd_ps(_mm256_sub_ps(s, magic), v(-0.5f), a);
  const __m256i k = _mm256_castps_si256(s);
  __m256 q = _mm256_permutevar8x32_ps(_mm256_load_ps(kQPieces[7]), k);
  for (int j = 6; j >= 0; --j)
    q = _mm256_fmadd_ps(q, u, _mm256_permutevar8x32_ps(_mm256_load_ps(kQPieces[j]), k));
  return _mm256_blendv_ps(_mm256_sub_ps(v(1.0f), q), q, x);  // x < 0: Q, else 1 - Q
}

// x Phi(x) for |x| < 3.75 (x = -0 gives -0; denormal x gives x * 0.5).
inline __m256 gelu_mid_ps(__m256 x) { return _mm256_mul_ps(x, cdf_mid_ps(x)); }

// gelu per lane: the pieces where |x| < 3.75, the erfc form elsewhere and for NaN/inf, blended
// per lane (an element's result depends on its value only); the erfc form runs only for a
// vector holding such a lane (for N(0, 1) inputs ~0.15% of vectors).
inline __m256 gelu_ps(__m256 x) {
  const __m256 in = _mm256_cmp_ps(abs_ps(x), v(3.75f), _CMP_LT_OQ);
  const int bits = _mm256_movemask_ps(in);
  if (bits == 0xFF) return gelu_mid_ps(x);
  const __m256 tail = gelu_tail_ps(x);
  if (bits == 0) return tail;
  return _mm256_blendv_ps(tail, gelu_mid_ps(x), in);
}

// gelu's derivative Phi(x) + x phi(x). Phi as the forward: the pieces where |x| < 3.75, the
// erfc form for vectors with a lane outside (|x| capped at 6 for x >= 0, where Phi rounds to 1,
// and Phi taken as 0 below -12.5, where it is < 4e-36: every value stays normal). phi(x) = exp(-x^2/2) /
// sqrt(2 pi) with x^2 as hi + lo, |x| capped at 13 (phi stays normal) and 0 beyond (|x phi| < 1.1e-36 there);
// x = +-inf gives inf * 0 = NaN, as the portable loop.
inline __m256 gelu_grad_ps(__m256 x) {
  const __m256 ax = abs_ps(x);
  const __m256 ac = _mm256_min_ps(v(13.0f), ax);  // NaN stays (min returns its 2nd operand)
  const __m256 hi = _mm256_mul_ps(ac, ac);
  const __m256 lo = _mm256_fmsub_ps(ac, ac, hi);
  __m256 pdf =
      _mm256_mul_ps(exp_core(_mm256_mul_ps(hi, v(-0.5f)), _mm256_mul_ps(lo, v(-0.5f))), v(kInvSqrt2Pi));
  pdf = _mm256_andnot_ps(_mm256_cmp_ps(ax, v(13.0f), _CMP_GT_OQ), pdf);
  const __m256 term = _mm256_mul_ps(x, pdf);
  const __m256 in = _mm256_cmp_ps(ax, v(3.75f), _CMP_LT_OQ);
  const int bits = _mm256_movemask_ps(in);
  if (bits == 0xFF) return _mm256_add_ps(cdf_mid_ps(x), term);
  const __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NLT_UQ);  // x >= 0 or NaN
  __m256 t, e;
  erfc_half_ps(_mm256_min_ps(_mm256_blendv_ps(v(12.5f), v(6.0f), pos), ax), &t, &e);
  const __m256 te = _mm256_mul_ps(t, e);
  __m256 cdf = _mm256_blendv_ps(te, _mm256_sub_ps(v(1.0f), te), pos);
  cdf = _mm256_andnot_ps(_mm256_cmp_ps(x, v(-12.5f), _CMP_LT_OQ), cdf);  // 0 below the cap, not Phi(-12.5)
  if (bits != 0) cdf = _mm256_blendv_ps(cdf, cdf_mid_ps(x), in);
  return _mm256_add_ps(cdf, term);
}

// gelu_tanh = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
inline __m256 gelu_tanh_ps(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u2 = _mm256_mul_ps(_mm256_fmadd_ps(x3, v(kGeluK), x), v(2.0f * kSqrt2OverPi));
  return _mm256_mul_ps(x, sigmoid_ps(u2));
}

// y[i] = f(x[i]): two vectors a step (two independent chains in flight), then one, then one
// masked vector for the n % 8 tail (f sees zeros past n; they are not stored).
template <class F>
inline void map_ps(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = f(_mm256_loadu_ps(x + i)), b = f(_mm256_loadu_ps(x + i + 8));
    _mm256_storeu_ps(y + i, a);
    _mm256_storeu_ps(y + i + 8, b);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, f(_mm256_maskload_ps(x + i, m)));
  }
}

// dy * d for gelu's derivative d = gelu_grad_ps(x): as act_impl.h's gelu_times, an infinite dy
// where d underflowed to 0 below x = -5 (x finite) gives -dy, not NaN.
inline __m256 gelu_times_ps(__m256 g, __m256 x, __m256 d) {
  const __m256 p = _mm256_mul_ps(g, d);
  // p is NaN there (inf * 0), and elsewhere only where dy or x is NaN, which -dy keeps
  __m256 m = _mm256_cmp_ps(p, p, _CMP_UNORD_Q);
  m = _mm256_and_ps(m, _mm256_cmp_ps(x, v(-5.0f), _CMP_LT_OQ));
  m = _mm256_and_ps(m, _mm256_cmp_ps(x, v(-__builtin_inff()), _CMP_GT_OQ));
  return _mm256_blendv_ps(p, _mm256_xor_ps(g, v(-0.0f)), m);
}

// dx[i] = mul(dy[i], x[i], f(x[i])), as map_ps
template <class F, class M>
inline void map_grad_ps(const float* dy, const float* x, float* dx, int64_t n, F f, M mul) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 xa = _mm256_loadu_ps(x + i), xb = _mm256_loadu_ps(x + i + 8);
    const __m256 a = f(xa), b = f(xb);
    _mm256_storeu_ps(dx + i, mul(_mm256_loadu_ps(dy + i), xa, a));
    _mm256_storeu_ps(dx + i + 8, mul(_mm256_loadu_ps(dy + i + 8), xb, b));
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 xa = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(dx + i, mul(_mm256_loadu_ps(dy + i), xa, f(xa)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 xa = _mm256_maskload_ps(x + i, m);
    _mm256_maskstore_ps(dx + i, m, mul(_mm256_maskload_ps(dy + i, m), xa, f(xa)));
  }
}

// gelu's backward in blocks, as act_impl.h's gelu_map2: a block with an x below kGeluEdgeLo
// multiplies through gelu_times_ps, the others plainly (the erf form has no upper edge).
inline void gelu_backward_ps(const float* dy, const float* x, float* dx, int64_t n) {
  const auto plain = [](__m256 g, __m256, __m256 d) { return _mm256_mul_ps(g, d); };
  for (int64_t b0 = 0; b0 < n; b0 += kGeluBlock) {
    const int64_t m = n - b0 < kGeluBlock ? n - b0 : kGeluBlock;
    if (gelu_block_has_edges(x + b0, m))
      map_grad_ps(dy + b0, x + b0, dx + b0, m, gelu_grad_ps, gelu_times_ps);
    else
      map_grad_ps(dy + b0, x + b0, dx + b0, m, gelu_grad_ps, plain);
  }
}

void forward(const ActArgs& a, const float* x, float* y, int64_t n) {
  switch (a.kind) {
    case ActKind::Sigmoid:
      return map_ps(x, y, n, sigmoid_ps);
    case ActKind::Tanh:
      return map_ps(x, y, n, tanh_ps);
    case ActKind::Gelu:
      return map_ps(x, y, n, gelu_ps);
    case ActKind::GeluTanh:
      return map_ps(x, y, n, gelu_tanh_ps);
    default:
      return act_forward_impl(a, x, y, n);
  }
}

void backward(const ActArgs& a, const float* dy, const float* xy, float* dx, int64_t n) {
  if (a.kind == ActKind::Gelu) return gelu_backward_ps(dy, xy, dx, n);
  act_backward_impl(a, dy, xy, dx, n);
}

}  // namespace

const ActKernels act_kernels_avx2{forward, backward};

}  // namespace fastnn
