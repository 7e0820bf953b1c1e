// Max and average pooling forward for AVX-512: 16 outputs of a row per vector, for the common
// horizontal layouts (dilation 1 across W, stride 1 or 2); everything else, and the border
// outputs whose window crosses the left/right edge, goes through the scalar code of
// csrc/cpu/pool2d_impl.h. PyTorch's NCHW kernel is scalar; this is what makes NCHW pooling
// as fast as its channels_last one (bench/README.md).
//
// Stride 2: a window column kw of 16 outputs is input columns base + kw + 2*l, l = 0..15: two
// loads of 16 (the second masked to 15 lanes, never reading past the last needed column) and
// one permutex2var picking the even lanes. Average pooling with 2-wide windows (the common 2x2
// stride 2) loads the 32 columns of a row once and takes both window columns from them (even
// and odd lanes), and divides by a power-of-two divisor by multiplying by its exact inverse
// (bench/README.md: vdivps was the bottleneck). Results are bit-identical to the scalar code:
// the same comparisons (max) and the same float additions in the same (kh, kw) order (avg),
// and x * (1/d) == x / d exactly when d is a power of two.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "cpu/avx512/simd.h"
#include "cpu/pool2d_impl.h"
#include "ops/pool2d.h"

namespace fastnn {
namespace {

// The first n of 16 lanes, n in [0, 16].
inline __mmask16 lanes(int64_t n) { return mask_for(static_cast<int>(n)); }

// 16 (or `m`) window values at input column `col` + SW*l of row `row` (SW 1 or 2).
template <int SW>
inline __m512 load_cols(const float* row, int64_t col, int64_t m) {
  if (SW == 1) return _mm512_maskz_loadu_ps(lanes(m), row + col);
  const int64_t need = 2 * m - 1;  // columns col .. col + 2m - 2
  const __m512 a = _mm512_maskz_loadu_ps(lanes(std::min<int64_t>(need, 16)), row + col);
  const __m512 b = _mm512_maskz_loadu_ps(lanes(std::max<int64_t>(need - 16, 0)), row + col + 16);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(a, even, b);
}

// Output columns [lo, hi) whose window lies inside [0, W) horizontally (DW == 1).
inline void interior(const Pool2dShape& s, int64_t* lo, int64_t* hi) {
  *lo = std::min(s.OW, (s.PW + s.SW - 1) / s.SW);
  const int64_t last = s.W - s.KW + s.PW;  // ow * SW <= last
  *hi = last < 0 ? *lo : std::max(*lo, std::min(s.OW, last / s.SW + 1));
}

template <int SW>
void max_plane(const Pool2dShape& s, const float* x, float* y, int64_t* idx) {
  int64_t lo, hi;
  interior(s, &lo, &hi);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t oh = 0; oh < s.OH; ++oh) {
    float* yr = y + oh * s.OW;
    int64_t* ir = idx + oh * s.OW;
    for (int64_t ow = 0; ow < lo; ++ow) max_one(s, x, oh, ow, yr + ow, ir + ow);
    int64_t h0 = oh * s.SH - s.PH;
    const int64_t h1 = std::min(h0 + (s.KH - 1) * s.DH + 1, s.H);
    if (h0 < 0) h0 += (-h0 + s.DH - 1) / s.DH * s.DH;  // the first tap inside, in O(1)
    for (int64_t ow = lo; ow < hi; ow += 16) {
      const int64_t m = std::min<int64_t>(16, hi - ow);
      const int64_t col = ow * SW - s.PW;
      // Flat index of lane l at (ih, kw): ih*W + col + kw + SW*l (int32: H*W < 2^31, checked).
      const __m512i lane_col = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(col)),
                                                _mm512_mullo_epi32(lane, _mm512_set1_epi32(SW)));
      __m512 vmax = ninf;
      __m512i vidx = _mm512_add_epi32(lane_col, _mm512_set1_epi32(static_cast<int32_t>(h0 * s.W)));
      for (int64_t ih = h0; ih < h1; ih += s.DH) {
        const float* row = x + ih * s.W;
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          const __m512 v = load_cols<SW>(row, col + kw, m);
          // Same rule as the scalar code: v > max, or v is NaN.
          const __mmask16 take =
              _mm512_cmp_ps_mask(v, vmax, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
          vmax = _mm512_mask_mov_ps(vmax, take, v);
          const __m512i iv =
              _mm512_add_epi32(lane_col, _mm512_set1_epi32(static_cast<int32_t>(ih * s.W + kw)));
          vidx = _mm512_mask_mov_epi32(vidx, take, iv);
        }
      }
      const __mmask16 mk = lanes(m);
      _mm512_mask_storeu_ps(yr + ow, mk, vmax);
      _mm512_mask_storeu_epi64(ir + ow, static_cast<__mmask8>(mk & 0xFF),
                               _mm512_cvtepi32_epi64(_mm512_castsi512_si256(vidx)));
      _mm512_mask_storeu_epi64(ir + ow + 8, static_cast<__mmask8>(mk >> 8),
                               _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(vidx, 1)));
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
    // x / d, without vdivps (one per ~16 cycles, the bottleneck of the 2x2 case).
    const int32_t d = static_cast<int32_t>((cip ? r.pool_h : r.h1 - r.h0) * s.KW);
    const bool pow2 = d > 0 && (d & (d - 1)) == 0;
    const __m512 div = _mm512_set1_ps(static_cast<float>(d));
    const __m512 inv = _mm512_set1_ps(1.0f / static_cast<float>(d));
    for (int64_t ow = lo; ow < hi; ow += 16) {
      const int64_t m = std::min<int64_t>(16, hi - ow);
      const int64_t col = ow * SW - s.PW;
      __m512 sum = _mm512_setzero_ps();
      if (SW == 2 && s.KW == 2) {
        // 2-wide windows at stride 2: one pair of loads (the 2m columns col .. col + 2m - 1)
        // per row gives both window columns, the even and the odd lanes, added in (kh, kw)
        // order as the scalar code does.
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        const __mmask16 ma = lanes(std::min<int64_t>(2 * m, 16)),
                        mb = lanes(std::max<int64_t>(2 * m - 16, 0));
        for (int64_t ih = r.h0; ih < r.h1; ++ih) {
          const float* row = x + ih * s.W + col;
          const __m512 a = _mm512_maskz_loadu_ps(ma, row), b = _mm512_maskz_loadu_ps(mb, row + 16);
          sum = _mm512_add_ps(sum, _mm512_permutex2var_ps(a, even, b));
          sum = _mm512_add_ps(sum, _mm512_permutex2var_ps(a, odd, b));
        }
      } else {
        for (int64_t ih = r.h0; ih < r.h1; ++ih) {
          const float* row = x + ih * s.W;
          for (int64_t kw = 0; kw < s.KW; ++kw) sum = _mm512_add_ps(sum, load_cols<SW>(row, col + kw, m));
        }
      }
      _mm512_mask_storeu_ps(yr + ow, lanes(m), pow2 ? _mm512_mul_ps(sum, inv) : _mm512_div_ps(sum, div));
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

const Pool2dKernels pool2d_kernels_avx512{max_planes, avg_planes};

}  // namespace fastnn
