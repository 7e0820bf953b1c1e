// AVX2+FMA exp shared by the AVX2 units (act.cpp, softmax.cpp); each unit gets its own copy in
// an anonymous namespace, so it never merges with code compiled for another ISA. The same
// functions and the same arithmetic as csrc/cpu/avx512/exp.h, 8 lanes wide: for an argument
// both handle, the two give the same bits (the reduction and the polynomial are the same
// operations; only 2^n is built differently, and both round the product p 2^n once).
#pragma once
#include <immintrin.h>

namespace fastnn {
namespace {

inline __m256 v(float f) { return _mm256_set1_ps(f); }

// p * 2^n for integer-valued n in [-252, 254] with one rounding (AVX2 has no vscalefps):
// 2^n = 2^n1 2^n2, n1 = n >> 1, n2 = n - n1, each a normal float, and p 2^n1 is exact for p in
// [0.5, 2] (it stays normal), so only the second product rounds: inf above the float range,
// gradual underflow (denormals), then 0, exactly as vscalefps gives them.
inline __m256 scale2n_ps(__m256 p, __m256 n) {
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// e^(a + b), b a small correction (or 0) carried past the rounding of a + b:
// n = round((a + b) / ln 2), r = ((a - n ln2_hi) + b) - n ln2_lo, e^r = 1 + r + r^2 Q(r) on
// |r| <= ln2/2 (+ b's share), times 2^n by scale2n_ps (inf above ~88.7, denormals, then 0).
// NaN in a or b propagates: min/max return their second operand when one is NaN, and a NaN p
// makes the product NaN whatever the integer conversion of a NaN n gave.
// exp_core leaves out the clamp of a: for callers whose a + b is already within [-170, 89]
// (so that n stays in scale2n_ps's range; avx512/exp.h's vscalefps allows any n).
inline __m256 exp_core(__m256 a, __m256 b) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(_mm256_add_ps(a, b), v(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, v(0.693145751953125f), a);  // ln2_hi: 16 bits, n*hi exact
  r = _mm256_add_ps(r, b);
  r = _mm256_fnmadd_ps(n, v(1.428606765330187e-6f), r);  // ln2_lo
  __m256 q = v(1.3814605e-3f);
  q = _mm256_fmadd_ps(q, r, v(8.368711e-3f));
  q = _mm256_fmadd_ps(q, r, v(4.166839e-2f));
  q = _mm256_fmadd_ps(q, r, v(1.6666521e-1f));
  q = _mm256_fmadd_ps(q, r, v(4.9999994e-1f));
  const __m256 p = _mm256_add_ps(_mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r), v(1.0f));
  return scale2n_ps(p, n);
}

// e^r 2^-n for a in [-104, 89]: n = round(a / ln 2), r = (a - n ln2_hi) - n ln2_lo, p = e^r
// (exp_core's steps with b = 0, whose additions cannot be folded away: -0 + 0 is +0; without
// them the same bits, as a zero's sign only reaches r, and p = 1 either way).
inline __m256 exp_reduce_ps(__m256 a, __m256* n_out) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(a, v(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, v(0.693145751953125f), a);
  r = _mm256_fnmadd_ps(n, v(1.428606765330187e-6f), r);
  __m256 q = v(1.3814605e-3f);
  q = _mm256_fmadd_ps(q, r, v(8.368711e-3f));
  q = _mm256_fmadd_ps(q, r, v(4.166839e-2f));
  q = _mm256_fmadd_ps(q, r, v(1.6666521e-1f));
  q = _mm256_fmadd_ps(q, r, v(4.9999994e-1f));
  *n_out = n;
  return _mm256_add_ps(_mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r), v(1.0f));
}

// e^x for any x (+inf gives inf, -inf 0, NaN NaN), the same bits as exp_core(x, 0) on x
// clamped to [-104, 89].
// When every lane is within [-86.5, 88] (the usual case; NaN is not), n is in [-125, 127]
// and p 2^n is normal: no clamps, and 2^n is an addition to p's exponent field (3 operations
// instead of scale2n_ps's 9; ~15% off a softmax row). Otherwise the clamped general path.
inline __m256 exp_ps(__m256 x) {
  const __m256 out =
      _mm256_or_ps(_mm256_cmp_ps(x, v(-86.5f), _CMP_NGE_UQ), _mm256_cmp_ps(x, v(88.0f), _CMP_NLE_UQ));
  __m256 n;
  if (_mm256_testz_ps(out, out)) {
    const __m256 p = exp_reduce_ps(x, &n);
    return _mm256_castsi256_ps(
        _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23)));
  }
  const __m256 p = exp_reduce_ps(_mm256_max_ps(v(-104.0f), _mm256_min_ps(v(89.0f), x)), &n);
  return scale2n_ps(p, n);
}

}  // namespace
}  // namespace fastnn
