// AVX-512 exp shared by the AVX-512 units (act.cpp, softmax.cpp); like simd.h, each unit gets its
// own copy in an anonymous namespace, so it never merges with code compiled for another ISA.
#pragma once
#include <immintrin.h>

namespace fastnn {
namespace {

inline __m512 v(float f) { return _mm512_set1_ps(f); }

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
  r = _mm512_fnmadd_ps(n, v(1.428606765330187e-6f), r);  // ln2_lo
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

}  // namespace
}  // namespace fastnn
