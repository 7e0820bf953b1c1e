// Max and average pooling forward for AVX2+FMA: 8 outputs of a row per vector, for the common
// horizontal layouts (dilation 1 across W, stride 1 or 2); everything else, and the border
// outputs whose window crosses the left/right edge, goes through the scalar code of
// csrc/cpu/pool2d_impl.h. The 8-lane port of csrc/cpu/avx512/pool2d.cpp (same structure and
// the same guarantees); AVX2 has no mask registers, so partial vectors use vmaskmovps with an
// integer lane mask (masked-off lanes are neither read nor written, so no access past a row's
// needed columns or the buffer) and selections are and/andnot/or of compare masks.
//
// Stride 2: the window column kw of 8 outputs is input columns base + kw + 2*l, l = 0..7: two
// loads of 8 (the second masked to 7 lanes, never reading past the last needed column), then
// vshufps (even lanes of each 128-bit half of both) and vpermpd (the halves in order). With
// 2-wide windows (the common 2x2 stride 2) both pooling kinds load the 16 columns of a row once
// and take both window columns from them (even and odd lanes). Average pooling divides by a
// power-of-two divisor by multiplying by its exact inverse (vdivps is the bottleneck of 2x2).
// Results are bit-identical to the scalar code: the same comparisons in the same (kh, kw)
// order (max), the same float additions in the same order (avg), and x * (1/d) == x / d
// exactly when d is a power of two.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "cpu/pool2d_impl.h"
#include "ops/pool2d.h"

namespace fastnn {
namespace {

// The first n of 8 lanes (all bits set), n in [0, 8]: the mask operand of vmaskmovps.
inline __m256i lanes(int64_t n) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n)), iota);
}

// n values from p, zeros in the other lanes; a full vector needs no mask.
inline __m256 load_n(const float* p, int64_t n) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes(n));
}

// Even / odd lanes of the 16 floats a (0..7), b (8..15). vshufps works within 128-bit halves:
// [a0 a2 b0 b2 | a4 a6 b4 b6]; vpermpd then orders the 64-bit pairs as (0, 2, 1, 3).
inline __m256 even_lanes(__m256 a, __m256 b) {
  const __m256 t = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}
inline __m256 odd_lanes(__m256 a, __m256 b) {
  const __m256 t = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}

// 8 (or `m`) window values at input column `col` + SW*l of row `row` (SW 1 or 2).
template <int SW>
inline __m256 load_cols(const float* row, int64_t col, int64_t m) {
  if (SW == 1) return load_n(row + col, m);
  const int64_t need = 2 * m - 1;  // columns col .. col + 2m - 2
  const __m256 a = load_n(row + col, std::min<int64_t>(need, 8));
  const __m256 b = _mm256_maskload_ps(row + col + 8, lanes(std::max<int64_t>(need - 8, 0)));
  return even_lanes(a, b);
}

// Output columns [lo, hi) whose window lies inside [0, W) horizontally (DW == 1).
inline void interior(const Pool2dShape& s, int64_t* lo, int64_t* hi) {
  *lo = std::min(s.OW, (s.PW + s.SW - 1) / s.SW);
  const int64_t last = s.W - s.KW + s.PW;  // ow * SW <= last
  *hi = last < 0 ? *lo : std::max(*lo, std::min(s.OW, last / s.SW + 1));
}

// One window element of 8 lanes: take v where v > max or v is NaN (the scalar rule: the first
// maximum wins, a later NaN replaces anything), with its flat indices iv.
inline void max_step(__m256 v, __m256i iv, __m256* vmax, __m256i* vidx) {
  const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, *vmax, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  // take is all-ones or all-zeros per lane: and/andnot/or selects without the sign-bit
  // canonicalisation GCC puts before vblendvps (one more step in the vmax dependency chain).
  *vmax = _mm256_or_ps(_mm256_and_ps(take, v), _mm256_andnot_ps(take, *vmax));
  const __m256i t = _mm256_castps_si256(take);
  *vidx = _mm256_or_si256(_mm256_and_si256(t, iv), _mm256_andnot_si256(t, *vidx));
}

template <int SW>
void max_plane(const Pool2dShape& s, const float* x, float* y, int64_t* idx) {
  int64_t lo, hi;
  interior(s, &lo, &hi);
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const bool two_wide = SW == 2 && s.KW == 2;
  for (int64_t oh = 0; oh < s.OH; ++oh) {
    float* yr = y + oh * s.OW;
    int64_t* ir = idx + oh * s.OW;
    for (int64_t ow = 0; ow < lo; ++ow) max_one(s, x, oh, ow, yr + ow, ir + ow);
    int64_t h0 = oh * s.SH - s.PH;
    const int64_t h1 = std::min(h0 + (s.KH - 1) * s.DH + 1, s.H);
    if (h0 < 0) h0 += (-h0 + s.DH - 1) / s.DH * s.DH;  // the first tap inside, in O(1)
    for (int64_t ow = lo; ow < hi; ow += 8) {
      const int64_t m = std::min<int64_t>(8, hi - ow);
      const int64_t col = ow * SW - s.PW;
      // Flat index of lane l at (ih, kw): ih*W + col + kw + SW*l (int32: H*W < 2^31, checked).
      const __m256i lane_col = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(col)),
                                                _mm256_mullo_epi32(lane, _mm256_set1_epi32(SW)));
      __m256 vmax = ninf;
      // The indices of window column 0 of the current row, stepped by DH rows (no broadcast
      // per window element: shuffles and broadcasts share one port with the even/odd split).
      __m256i iv = _mm256_add_epi32(lane_col, _mm256_set1_epi32(static_cast<int32_t>(h0 * s.W)));
      const __m256i row_step = _mm256_set1_epi32(static_cast<int32_t>(s.DH * s.W)),
                    one = _mm256_set1_epi32(1);
      __m256i vidx = iv;
      if (two_wide) {
        // 2-wide windows at stride 2: the 2m columns col .. col + 2m - 1 of a row, loaded once,
        // are window column 0 (even lanes) and 1 (odd lanes), compared in that order.
        const int64_t na = std::min<int64_t>(2 * m, 8), nb = std::max<int64_t>(2 * m - 8, 0);
        for (int64_t ih = h0; ih < h1; ih += s.DH, iv = _mm256_add_epi32(iv, row_step)) {
          const float* row = x + ih * s.W + col;
          const __m256 a = load_n(row, na), b = load_n(row + 8, nb);
          max_step(even_lanes(a, b), iv, &vmax, &vidx);
          max_step(odd_lanes(a, b), _mm256_add_epi32(iv, one), &vmax, &vidx);
        }
      } else {
        for (int64_t ih = h0; ih < h1; ih += s.DH, iv = _mm256_add_epi32(iv, row_step)) {
          const float* row = x + ih * s.W;
          __m256i ik = iv;
          for (int64_t kw = 0; kw < s.KW; ++kw, ik = _mm256_add_epi32(ik, one))
            max_step(load_cols<SW>(row, col + kw, m), ik, &vmax, &vidx);
        }
      }
      // int64 indices: 4 per 256-bit store, each half of vidx widened.
      const __m256i lo4 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(vidx));
      const __m256i hi4 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(vidx, 1));
      if (m == 8) {
        _mm256_storeu_ps(yr + ow, vmax);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(ir + ow), lo4);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(ir + ow + 4), hi4);
      } else {
        // 64-bit lane j is on when 32-bit lane 2j is: the mask of the first min(m, 4) pairs.
        _mm256_maskstore_ps(yr + ow, lanes(m), vmax);
        _mm256_maskstore_epi64(reinterpret_cast<long long*>(ir + ow), lanes(2 * std::min<int64_t>(m, 4)),
                               lo4);
        _mm256_maskstore_epi64(reinterpret_cast<long long*>(ir + ow + 4),
                               lanes(2 * std::max<int64_t>(m - 4, 0)), hi4);
      }
    }
    for (int64_t ow = hi; ow < s.OW; ++ow) max_one(s, x, oh, ow, yr + ow, ir + ow);
  }
}

template <int SW>
void avg_plane(const Pool2dShape& s, bool cip, const float* x, float* y) {
  int64_t lo, hi;
  interior(s, &lo, &hi);
  for (int64_t oh = 0; oh < s.OH; ++oh) {
    float* yr = y + oh * s.OW;
    for (int64_t ow = 0; ow < lo; ++ow) avg_one(s, cip, x, oh, ow, yr + ow);
    const AvgRows r = avg_rows(s, oh);
    // Interior windows span KW columns inside the input: the divisor is one per row. A power
    // of two divides by multiplying by its (exact) reciprocal: the same correctly rounded
    // x / d, without vdivps.
    const int32_t d = static_cast<int32_t>((cip ? r.pool_h : r.h1 - r.h0) * s.KW);
    const bool pow2 = d > 0 && (d & (d - 1)) == 0;
    const __m256 div = _mm256_set1_ps(static_cast<float>(d));
    const __m256 inv = _mm256_set1_ps(1.0f / static_cast<float>(d));
    for (int64_t ow = lo; ow < hi; ow += 8) {
      const int64_t m = std::min<int64_t>(8, hi - ow);
      const int64_t col = ow * SW - s.PW;
      __m256 sum = _mm256_setzero_ps();
      if (SW == 2 && s.KW == 2) {
        // 2-wide windows at stride 2: one pair of loads (the 2m columns col .. col + 2m - 1)
        // per row gives both window columns, the even and the odd lanes, added in (kh, kw)
        // order as the scalar code does.
        const int64_t na = std::min<int64_t>(2 * m, 8), nb = std::max<int64_t>(2 * m - 8, 0);
        for (int64_t ih = r.h0; ih < r.h1; ++ih) {
          const float* row = x + ih * s.W + col;
          const __m256 a = load_n(row, na), b = load_n(row + 8, nb);
          sum = _mm256_add_ps(sum, even_lanes(a, b));
          sum = _mm256_add_ps(sum, odd_lanes(a, b));
        }
      } else {
        for (int64_t ih = r.h0; ih < r.h1; ++ih) {
          const float* row = x + ih * s.W;
          for (int64_t kw = 0; kw < s.KW; ++kw) sum = _mm256_add_ps(sum, load_cols<SW>(row, col + kw, m));
        }
      }
      const __m256 v = pow2 ? _mm256_mul_ps(sum, inv) : _mm256_div_ps(sum, div);
      if (m == 8)
        _mm256_storeu_ps(yr + ow, v);
      else
        _mm256_maskstore_ps(yr + ow, lanes(m), v);
    }
    for (int64_t ow = hi; ow < s.OW; ++ow) avg_one(s, cip, x, oh, ow, yr + ow);
  }
}

void max_planes(const Pool2dShape& s, const float* x, float* y, int64_t* idx, int64_t p0, int64_t p1) {
  if (s.DW != 1 || s.SW > 2) return pool2d_kernels_default.max_planes(s, x, y, idx, p0, p1);
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  for (int64_t p = p0; p < p1; ++p) {
    if (s.SW == 1)
      max_plane<1>(s, x + p * in, y + p * out, idx + p * out);
    else
      max_plane<2>(s, x + p * in, y + p * out, idx + p * out);
  }
}

void avg_planes(const Pool2dShape& s, bool cip, const float* x, float* y, int64_t p0, int64_t p1) {
  if (s.SW > 2) return pool2d_kernels_default.avg_planes(s, cip, x, y, p0, p1);
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  for (int64_t p = p0; p < p1; ++p) {
    if (s.SW == 1)
      avg_plane<1>(s, cip, x + p * in, y + p * out);
    else
      avg_plane<2>(s, cip, x + p * in, y + p * out);
  }
}

}  // namespace

const Pool2dKernels pool2d_kernels_avx2{max_planes, avg_planes};

}  // namespace fastnn
