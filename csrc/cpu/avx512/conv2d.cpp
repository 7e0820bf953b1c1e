// Direct stride-1 conv2d forward for AVX-512, without an im2col matrix.
//
// Tile: up to 14 output pixels of one output row x 32 output channels (28 zmm accumulators).
// Per k = (c, kh, kw): 2 loads of packed weights (32 channels), and the tile's 14 input pixels
// broadcast from the zero-padded image, which with stride 1 are 14 consecutive floats at
// xpad + koff[k] + oh*Wp + ow0. The weight panel (K x 32) is packed once per call and stays in
// L1/L2 across all tiles; the padded image of one group stays in L2. The tile is transposed in
// registers to channel-major for the NCHW store, after bias and ReLU.
// Parallel over images (or over output rows when the batch is smaller than the thread count);
// every output element sees the same instruction sequence, so results do not depend on it.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/threads.h"
#include "cpu/avx512/simd.h"
#include "ops/conv2d.h"

namespace fastnn {
namespace {

constexpr int MR = 14;  // pixels per tile (broadcast operand)
constexpr int NR = 32;  // output channels per tile (two zmm)

struct Tile {
  const int32_t* koff;  // K offsets into the padded group image: c*Hp*Wp + kh*DH*Wp + kw*DW
  int K;
  const float* wp;      // weight panel [K][32], zero beyond the valid channels
  int nr;               // valid channels of the panel (1..32)
  const float* bias;    // bias of the panel's first channel, or null
  bool relu;
  int64_t ohw;          // channel stride of y
};

// Bias and ReLU on one 16-channel vector per pixel, then the mr x 16 block transposed and
// stored as 16 channel rows of mr pixels.
template <int mr>
inline void store16(__m512 (&acc)[mr], int nch, const float* bias, bool relu, float* y,
                    int64_t ohw) {
  const __m512 b = bias ? _mm512_maskz_loadu_ps(mask_for(nch), bias) : _mm512_setzero_ps();
  __m512 r[16];
  for (int i = 0; i < 16; ++i) {
    if (i < mr) {
      __m512 v = _mm512_add_ps(acc[i], b);
      r[i] = relu ? _mm512_max_ps(_mm512_setzero_ps(), v) : v;  // max(0, NaN) keeps NaN
    } else {
      r[i] = _mm512_setzero_ps();
    }
  }
  transpose16(r);
  const __mmask16 m = mask_for(mr);
  for (int l = 0; l < nch; ++l) _mm512_mask_storeu_ps(y + l * ohw, m, r[l]);
}

template <int mr, int NV>
void tile(const float* a, const Tile& t, float* y) {
  __m512 c0[mr], c1[mr];
  for (int i = 0; i < mr; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  const float* b = t.wp;
  for (int k = 0; k < t.K; ++k, b += NR) {
    const float* ak = a + t.koff[k];
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = NV == 2 ? _mm512_loadu_ps(b + 16) : b0;
#pragma GCC unroll 14
    for (int i = 0; i < mr; ++i) {
      const __m512 ai = _mm512_set1_ps(ak[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      if (NV == 2) c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
  }
  store16<mr>(c0, std::min(16, t.nr), t.bias, t.relu, y, t.ohw);
  if (NV == 2) store16<mr>(c1, t.nr - 16, t.bias ? t.bias + 16 : nullptr, t.relu, y + 16 * t.ohw, t.ohw);
}

using TileFn = void (*)(const float*, const Tile&, float*);

template <int NV, int... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::integer_sequence<int, I...>) {
  return {&tile<I + 1, NV>...};
}
constexpr auto kTiles1 = make_tiles<1>(std::make_integer_sequence<int, MR>{});
constexpr auto kTiles2 = make_tiles<2>(std::make_integer_sequence<int, MR>{});

}  // namespace

bool conv2d_forward_direct_avx512(const Conv2dShape& s, const float* x, const float* w,
                                  const float* bias, Activation act, float* y, int nthreads) {
  const int64_t OCg = s.OCg(), Cg = s.Cg(), K = s.Kg();
  if (s.SH != 1 || s.SW != 1 || OCg < 16) return false;  // the im2col path serves the rest
  const int64_t OH = s.OH(), OW = s.OW(), OHW = OH * OW;
  const int64_t Hp = s.H + s.PT + s.PB, Wp = s.W + s.PL + s.PR, plane = Hp * Wp;
  if (Cg * plane > INT32_MAX) return false;

  std::vector<int32_t> koff(K);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw)
        koff[(c * s.KH + kh) * s.KW + kw] = static_cast<int32_t>(c * plane + kh * s.DH * Wp + kw * s.DW);

  // Weight panels [g][panel][k][32] from w (OC, Cg, KH, KW) = (OC, K).
  const int64_t npanel = (OCg + NR - 1) / NR;
  std::vector<float> wp(static_cast<size_t>(s.G * npanel * K * NR), 0.0f);
  for (int64_t g = 0; g < s.G; ++g)
    for (int64_t oc = 0; oc < OCg; ++oc) {
      float* dst = wp.data() + ((g * npanel + oc / NR) * K) * NR + oc % NR;
      const float* src = w + (g * OCg + oc) * K;
      for (int64_t k = 0; k < K; ++k) dst[k * NR] = src[k];
    }

  // Pixels per tile: the row split into equal tiles of at most 14.
  const int64_t ntile = (OW + MR - 1) / MR, P = (OW + ntile - 1) / ntile;

  auto pad_group = [&](const float* xg, float* xpad) {  // (Cg, H, W) -> zero-padded (Cg, Hp, Wp)
    std::fill(xpad, xpad + Cg * plane, 0.0f);
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t h = 0; h < s.H; ++h)
        std::copy(xg + (c * s.H + h) * s.W, xg + (c * s.H + h + 1) * s.W,
                  xpad + c * plane + (h + s.PT) * Wp + s.PL);
  };
  // Output rows [r0, r1) of group g of one image from its padded group image.
  auto rows = [&](const float* xpad, int64_t b, int64_t g, int64_t r0, int64_t r1) {
    for (int64_t p = 0; p < npanel; ++p) {
      const int nr = static_cast<int>(std::min<int64_t>(NR, OCg - p * NR));
      const Tile t{koff.data(), static_cast<int>(K), wp.data() + (g * npanel + p) * K * NR, nr,
                   bias ? bias + g * OCg + p * NR : nullptr, act == Activation::Relu, OHW};
      float* yp = y + (b * s.OC + g * OCg + p * NR) * OHW;
      for (int64_t oh = r0; oh < r1; ++oh)
        for (int64_t ow0 = 0; ow0 < OW; ow0 += P) {
          const int mr = static_cast<int>(std::min(P, OW - ow0));
          const TileFn fn = nr > 16 ? kTiles2[mr - 1] : kTiles1[mr - 1];
          fn(xpad + oh * Wp + ow0, t, yp + oh * OW + ow0);
        }
    }
  };

  const int64_t xg_size = Cg * s.H * s.W;
  if (s.B >= nthreads) {
    std::vector<std::vector<float>> pads(nthreads, std::vector<float>(Cg * plane));
    parallel(nthreads, [&](int tid, int nt) {
      long b0, b1;
      split_range(s.B, tid, nt, &b0, &b1);
      for (long b = b0; b < b1; ++b)
        for (int64_t g = 0; g < s.G; ++g) {
          pad_group(x + (b * s.G + g) * xg_size, pads[tid].data());
          rows(pads[tid].data(), b, g, 0, OH);
        }
    });
  } else {
    std::vector<float> xpad(Cg * plane);
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t g = 0; g < s.G; ++g) {
        pad_group(x + (b * s.G + g) * xg_size, xpad.data());
        parallel(static_cast<int>(std::min<int64_t>(nthreads, OH)), [&](int tid, int nt) {
          long r0, r1;
          split_range(OH, tid, nt, &r0, &r1);
          rows(xpad.data(), b, g, r0, r1);
        });
      }
  }
  return true;
}


// Direct stride-1 conv2d backward_weight for AVX-512, for 3-wide kernels (KW = 3).
//
// dw[oc, k] = sum over images and output pixels of dy[oc, pixel] * xpad[koff[k] + pixel].
// Tile: 4 kernel rows (c, kh) x 3 taps kw = 12 k's x 32 output channels (24 accumulators),
// reduced over the pixels of one image: per pixel 2 loads of dy (transposed to pixel-major,
// 32 channels) and 12 broadcasts from 4 row pointers of the padded image. The batch is split
// into a fixed number of chunks (independent of the thread count); each chunk sums its images
// in order into its own (K x OC) partial, and the partials are added in chunk order, so the
// result does not depend on the thread count.
namespace {

constexpr int KW3 = 3;
constexpr int kChunks = 8;

template <int NG, int NV>
void wtile(const float* const* q, int dw, const float* dyt, int64_t OH, int64_t OW, int64_t Wp,
           float* part, int64_t ldp) {
  __m512 c0[NG * KW3], c1[NG * KW3];
  for (int r = 0; r < NG * KW3; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* d = dyt + oh * OW * NR;
    for (int64_t ow = 0; ow < OW; ++ow, d += NR) {
      const int64_t pix = oh * Wp + ow;
      const __m512 b0 = _mm512_loadu_ps(d);
      const __m512 b1 = NV == 2 ? _mm512_loadu_ps(d + 16) : b0;
#pragma GCC unroll 4
      for (int j = 0; j < NG; ++j) {
#pragma GCC unroll 3
        for (int kw = 0; kw < KW3; ++kw) {
          const __m512 a = _mm512_set1_ps(q[j][pix + kw * dw]);
          c0[j * KW3 + kw] = _mm512_fmadd_ps(a, b0, c0[j * KW3 + kw]);
          if (NV == 2) c1[j * KW3 + kw] = _mm512_fmadd_ps(a, b1, c1[j * KW3 + kw]);
        }
      }
    }
  }
  for (int r = 0; r < NG * KW3; ++r) {  // partial[k][oc] += tile, k-major rows of the panel
    float* p = part + r * ldp;
    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), c0[r]));
    if (NV == 2) _mm512_storeu_ps(p + 16, _mm512_add_ps(_mm512_loadu_ps(p + 16), c1[r]));
  }
}

using WTileFn = void (*)(const float* const*, int, const float*, int64_t, int64_t, int64_t,
                         float*, int64_t);
constexpr WTileFn kWTiles[2][4] = {
    {&wtile<1, 1>, &wtile<2, 1>, &wtile<3, 1>, &wtile<4, 1>},
    {&wtile<1, 2>, &wtile<2, 2>, &wtile<3, 2>, &wtile<4, 2>},
};

}  // namespace

bool conv2d_backward_weight_direct_avx512(const Conv2dShape& s, const float* dy, const float* x,
                                          float* dw, int nthreads) {
  const int64_t OCg = s.OCg(), Cg = s.Cg(), K = s.Kg();
  if (s.SH != 1 || s.SW != 1 || s.KW != KW3 || OCg < 16 || s.B < 1) return false;
  const int64_t OH = s.OH(), OW = s.OW(), OHW = OH * OW;
  const int64_t Hp = s.H + s.PT + s.PB, Wp = s.W + s.PL + s.PR, plane = Hp * Wp;
  const int64_t npanel = (OCg + NR - 1) / NR, ocp = npanel * NR;  // channels padded to panels
  const int64_t rows = Cg * s.KH;                                  // (c, kh) pairs
  // (c, kh) rows per tile: at most 4, spread evenly (9 rows: 3 + 3 + 3, not 4 + 4 + 1)
  const int64_t gstep = (rows + (rows + 3) / 4 - 1) / ((rows + 3) / 4);
  const int64_t nchunk = std::min<int64_t>(kChunks, s.B);
  const int64_t xg_size = Cg * s.H * s.W;

  // partial[chunk][g][k][oc padded]
  std::vector<float> part(static_cast<size_t>(nchunk * s.G * K * ocp), 0.0f);
  const int nt_used = static_cast<int>(std::min<int64_t>(nthreads, nchunk));
  // Per-thread scratch, allocated before the parallel region (nothing may throw inside it);
  // the padding of xpad and the channels past OC/G in dyt stay zero.
  std::vector<std::vector<float>> xpads(nt_used, std::vector<float>(Cg * plane, 0.0f));
  std::vector<std::vector<float>> dyts(nt_used, std::vector<float>(npanel * OHW * NR, 0.0f));
  parallel(nt_used, [&](int tid, int nt) {
    long c0, c1;
    split_range(nchunk, tid, nt, &c0, &c1);
    std::vector<float>& xpad = xpads[tid];
    std::vector<float>& dyt = dyts[tid];
    for (long chunk = c0; chunk < c1; ++chunk) {
      long b0, b1;
      split_range(s.B, static_cast<int>(chunk), static_cast<int>(nchunk), &b0, &b1);
      for (long b = b0; b < b1; ++b) {
        for (int64_t g = 0; g < s.G; ++g) {
          const float* xg = x + (b * s.G + g) * xg_size;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t h = 0; h < s.H; ++h)
              std::copy(xg + (c * s.H + h) * s.W, xg + (c * s.H + h + 1) * s.W,
                        xpad.data() + c * plane + (h + s.PT) * Wp + s.PL);
          // dyt[panel][pixel][32] = dy[b, g*OCg + panel*32 + j, pixel], 16 x 16 blocks
          const float* dyg = dy + (b * s.OC + g * OCg) * OHW;
          for (int64_t oc0 = 0; oc0 < OCg; oc0 += 16) {
            const int nch = static_cast<int>(std::min<int64_t>(16, OCg - oc0));
            float* dst = dyt.data() + (oc0 / NR) * OHW * NR + oc0 % NR;
            for (int64_t p0 = 0; p0 < OHW; p0 += 16) {
              const int np = static_cast<int>(std::min<int64_t>(16, OHW - p0));
              __m512 r[16];
              for (int i = 0; i < 16; ++i)
                r[i] = i < nch ? _mm512_maskz_loadu_ps(mask_for(np), dyg + (oc0 + i) * OHW + p0)
                               : _mm512_setzero_ps();
              transpose16(r);
              for (int p = 0; p < np; ++p) _mm512_mask_storeu_ps(dst + (p0 + p) * NR, mask_for(nch), r[p]);
            }
          }
          float* pg = part.data() + (chunk * s.G + g) * K * ocp;
          for (int64_t pn = 0; pn < npanel; ++pn) {
            const int nv = OCg - pn * NR > 16 ? 2 : 1;
            for (int64_t r0 = 0; r0 < rows; r0 += gstep) {
              const int ng = static_cast<int>(std::min<int64_t>(gstep, rows - r0));
              const float* q[4];
              for (int j = 0; j < ng; ++j) {
                const int64_t c = (r0 + j) / s.KH, kh = (r0 + j) % s.KH;
                q[j] = xpad.data() + c * plane + kh * s.DH * Wp;
              }
              kWTiles[nv - 1][ng - 1](q, static_cast<int>(s.DW), dyt.data() + pn * OHW * NR, OH,
                                      OW, Wp, pg + r0 * KW3 * ocp + pn * NR, ocp);
            }
          }
        }
      }
    }
  });
  // dw[g*OCg + oc][k] = sum over chunks, in order, of partial[chunk][g][k][oc]
  for (int64_t g = 0; g < s.G; ++g)
    for (int64_t oc = 0; oc < OCg; ++oc)
      for (int64_t k = 0; k < K; ++k) {
        float sum = 0.0f;
        for (int64_t c = 0; c < nchunk; ++c) sum += part[((c * s.G + g) * K + k) * ocp + oc];
        dw[(g * OCg + oc) * K + k] = sum;
      }
  return true;
}

}  // namespace fastnn
