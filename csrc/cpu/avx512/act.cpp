// Activations compiled for AVX-512. sigmoid, tanh and both gelus forward are written with
// intrinsics here (16 lanes, a masked tail); everything else runs the loops of
// csrc/cpu/act_impl.h under this unit's flags (auto-vectorised, 16-wide).
//
// Why by hand: the portable exp/tanh/erfc evaluate every branch and blend, divide with vdivps
// and build 2^n in the exponent bits with clamps around it; here 2^n is one vscalefps (which
// also gives inf and gradual underflow), 1/d is vrcp14ps plus one Newton step (~1 ulp), tanh
// is one rational function without exp, and gelu's exp(-x^2/2) takes x^2 as an exact
// two-float product, so its error no longer grows with x^2. Coefficients are our own fits
// (weighted least squares driven to minimax by Lawson's iteration, float64, then rounded).
//
// Accuracy against float64, measured on dense grids (eps = 2^-23, relative to |y|; the
// bounds tests/test_act.py checks on every ISA are larger): exp ~1 ulp on its reduced
// argument; sigmoid 2.0 eps; tanh 3.1 eps; gelu 5.8 eps; gelu_tanh the error of its argument
// u (x^3 rounds) times 2|u|, as in the portable code.
// NaN in gives NaN out; results per element do not depend on where a thread range starts.
#include <immintrin.h>

#include "cpu/act_impl.h"

namespace fastnn {
namespace {

inline __m512 v(float f) { return _mm512_set1_ps(f); }

inline __m512 abs_ps(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

// 1/d for finite d >= 1: vrcp14ps (2^-14) and one Newton step r (2 - d r): ~1 ulp.
inline __m512 recip_ps(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, v(2.0f)));
}

// e^(a + b), b a small correction (or 0) carried past the rounding of a + b:
// n = round((a + b) / ln 2), r = ((a - n ln2_hi) + b) - n ln2_lo, e^r = 1 + r + r^2 Q(r) on
// |r| <= ln2/2 (+ b's share), times 2^n by vscalefps (inf above ~88.7, denormals, then 0).
// NaN in a or b propagates: min/max return their second operand when one is NaN.
// exp_core leaves out the clamp of a: for callers whose a is already within [-300, 89]
// (vscalefps takes any n: 2^n beyond the float range gives inf or 0 exactly as wanted).
inline __m512 exp_core(__m512 a, __m512 b) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_add_ps(a, b), v(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, v(0.693145751953125f), a);  // ln2_hi: 16 bits, n*hi exact
  r = _mm512_add_ps(r, b);
  r = _mm512_fnmadd_ps(n, v(1.428606765330187e-6f), r);      // ln2_lo
  __m512 q = v(1.3814605e-3f);
  q = _mm512_fmadd_ps(q, r, v(8.368711e-3f));
  q = _mm512_fmadd_ps(q, r, v(4.166839e-2f));
  q = _mm512_fmadd_ps(q, r, v(1.6666521e-1f));
  q = _mm512_fmadd_ps(q, r, v(4.9999994e-1f));
  const __m512 p = _mm512_add_ps(_mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r), v(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline __m512 exp_parts(__m512 a, __m512 b) {
  return exp_core(_mm512_max_ps(v(-104.0f), _mm512_min_ps(v(89.0f), a)), b);  // +-inf in
}

// sigmoid(x) with e = exp(-|x|) in (0, 1]: 1/(1+e) for x >= 0, e/(1+e) below (no overflow,
// relative accuracy kept in the left tail).
inline __m512 sigmoid_ps(__m512 x) {
  const __m512 e = exp_parts(_mm512_sub_ps(_mm512_setzero_ps(), abs_ps(x)), _mm512_setzero_ps());
  const __m512 rc = recip_ps(_mm512_add_ps(v(1.0f), e));
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_mul_ps(rc, neg, e, rc);
}

// tanh = x P(x^2) / Q(x^2) on |x| < 9 (+-1 from there: tanh rounds to +-1 from ~9.01), P of
// degree 5 and Q of degree 3 in x^2, fitted for relative error (~1 ulp in float64 arithmetic;
// ~3 ulp after float32 rounding). Q >= 1, so one vrcp14ps + Newton step; no exp, no branches.
// Odd by construction (tanh(-0) = -0); NaN passes min/max (they return the NaN operand).
inline __m512 tanh_ps(__m512 x) {
  const __m512 xc = _mm512_max_ps(v(-9.0f), _mm512_min_ps(v(9.0f), x));
  const __m512 s = _mm512_mul_ps(xc, xc);
  __m512 p = v(1.8255758e-11f);
  p = _mm512_fmadd_ps(p, s, v(-1.2780646e-8f));
  p = _mm512_fmadd_ps(p, s, v(9.267488e-6f));
  p = _mm512_fmadd_ps(p, s, v(2.920769e-3f));
  p = _mm512_fmadd_ps(p, s, v(1.2919235e-1f));
  p = _mm512_fmadd_ps(p, s, v(0.99999994f));
  __m512 q = v(2.281012e-4f);
  q = _mm512_fmadd_ps(q, s, v(2.3763198e-2f));
  q = _mm512_fmadd_ps(q, s, v(4.625252e-1f));
  q = _mm512_fmadd_ps(q, s, v(1.0f));
  const __m512 y = _mm512_mul_ps(_mm512_mul_ps(xc, p), recip_ps(q));
  // From |x| = 9 on (tanh(9) = 1 - 3.05e-8 rounds to 1) return exactly +-1: the fit's ~1e-7
  // there would leave 0.99999994. s >= 81 is |x| >= 9 (false for NaN); (x & sign) | 1.0.
  const __m512 one = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
      _mm512_castps_si512(v(1.0f)), _mm512_castps_si512(x),
      _mm512_set1_epi32(static_cast<int32_t>(0x80000000u)), 0xF8));  // A | (B & C)
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(s, v(81.0f), _CMP_GE_OQ), y, one);
}

// gelu = x Phi(x), Phi = erfc(|x|/sqrt2)/2 for x < 0 and 1 - that for x >= 0, where
// erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2), P a degree-9 fit on z in [0, 9.2]
// (beyond, erfc(z) * |x| is below 1e-37). z^2 = x^2/2 enters exp as hi + lo
// (lo = fma(x, x, -hi)): no x^2-sized rounding. |x| is capped at 20 (erfc underflows).
inline __m512 gelu_ps(__m512 x) {
  const __m512 ax = _mm512_min_ps(v(20.0f), abs_ps(x));
  const __m512 t = recip_ps(_mm512_fmadd_ps(ax, v(0.5f * 0.70710678118654752f), v(1.0f)));
  __m512 p = v(0.13532853f);
  p = _mm512_fmadd_ps(p, t, v(-0.6282118f));
  p = _mm512_fmadd_ps(p, t, v(1.032108f));
  p = _mm512_fmadd_ps(p, t, v(-0.52924175f));
  p = _mm512_fmadd_ps(p, t, v(-0.2194101f));
  p = _mm512_fmadd_ps(p, t, v(0.07574787f));
  p = _mm512_fmadd_ps(p, t, v(9.0661515e-3f));
  p = _mm512_fmadd_ps(p, t, v(0.39203018f));
  p = _mm512_fmadd_ps(p, t, v(0.99799924f));
  p = _mm512_fmadd_ps(p, t, v(-1.2654165f - 0.69314718f));  // - ln 2: gives erfc(z) / 2
  const __m512 hi = _mm512_mul_ps(ax, ax);
  const __m512 lo = _mm512_fmsub_ps(ax, ax, hi);
  // -z^2 >= -200: no clamp needed.
  const __m512 half_erfc = _mm512_mul_ps(t, exp_core(_mm512_mul_ps(hi, v(-0.5f)), _mm512_fnmadd_ps(lo, v(0.5f), p)));
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLT_UQ);  // x >= 0 or NaN
  return _mm512_mul_ps(x, _mm512_mask_sub_ps(half_erfc, pos, v(1.0f), half_erfc));
}

// gelu_tanh = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
inline __m512 gelu_tanh_ps(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u2 = _mm512_mul_ps(_mm512_fmadd_ps(x3, v(kGeluK), x), v(2.0f * kSqrt2OverPi));
  return _mm512_mul_ps(x, sigmoid_ps(u2));
}

// y[i] = f(x[i]): full vectors, then one masked vector for the n % 16 tail.
template <class F>
inline void map_ps(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, m, f(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace

void act_forward_avx512(const ActArgs& a, const float* x, float* y, int64_t n) {
  switch (a.kind) {
    case ActKind::Sigmoid: return map_ps(x, y, n, sigmoid_ps);
    case ActKind::Tanh: return map_ps(x, y, n, tanh_ps);
    case ActKind::Gelu: return map_ps(x, y, n, gelu_ps);
    case ActKind::GeluTanh: return map_ps(x, y, n, gelu_tanh_ps);
    default: return act_forward_impl(a, x, y, n);
  }
}

void act_backward_avx512(const ActArgs& a, const float* dy, const float* xy, float* dx, int64_t n) {
  act_backward_impl(a, dy, xy, dx, n);
}

}  // namespace fastnn
