// AVX-512 helpers shared by the AVX-512 translation units (each includes this into its own
// anonymous namespace, so the copies never merge with code compiled for other ISAs).
#pragma once
#include <immintrin.h>

namespace fastnn {
namespace {

inline __mmask16 mask_for(int n) {  // lanes [0, n) of one zmm; n <= 0 gives none, n >= 16 all
  if (n <= 0) return 0;
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

// In-register 16x16 transpose: r[i] holds row i (16 floats); afterwards r[c] holds column c.
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // pairs of rows interleaved within 128-bit lanes
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // u[4i+m], lane L: rows 4i..4i+3 of column 4L+m
    u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {  // gather lane L of u[m], u[4+m], u[8+m], u[12+m]
    const __m512 p = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44);
    const __m512 q = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xEE);
    const __m512 x = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44);
    const __m512 y = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xEE);
    r[m] = _mm512_shuffle_f32x4(p, x, 0x88);
    r[4 + m] = _mm512_shuffle_f32x4(p, x, 0xDD);
    r[8 + m] = _mm512_shuffle_f32x4(q, y, 0x88);
    r[12 + m] = _mm512_shuffle_f32x4(q, y, 0xDD);
  }
}

}  // namespace
}  // namespace fastnn
