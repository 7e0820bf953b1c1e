// Winograd F(2x2, 3x3) transforms for conv2d (csrc/ops/conv2d_winograd.cpp has the method),
// eight tiles of one tile row at a time in the lanes of a ymm register. AVX2 intrinsics:
// included by the AVX2 and the AVX-512 units (the transforms are a small part of the work; the
// products run on each unit's own gemm).
//
// A tile is a 2x2 block of output pixels (ty, tx) and the 4x4 patch of input it reads, rows
// 2*ty - PT + r and columns 2*tx - PL + j (zero outside the image). With the patch d, the
// products m[xi] and the output Y (xi = 4*a + b):
//   V = B^T d B,  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   Y = A^T m A,  A^T = [1 1 1 0; 0 1 -1 -1]
// Every value is computed by the same expression in the same order on every ISA and thread.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ops/conv2d.h"

namespace fastnn {
namespace {

// The geometry of the zero-padded copy of one channel the input transform reads: rows
// h + PT for h < 2*TH + 2 - PT, columns w + PL, TW rounded up to whole vectors of 8 tiles.
struct WinogradPad {
  int64_t TH, TW, TW8, Hp, Wp;
  explicit WinogradPad(const Conv2dShape& s)
      : TH((s.OH() + 1) / 2), TW((s.OW() + 1) / 2), TW8((TW + 7) / 8 * 8), Hp(2 * TH + 2), Wp(2 * TW8 + 8) {}
  int64_t floats() const { return Hp * Wp; }
};

// Lanes [0, 8) of p, and their even / odd elements of p[0, 16): columns 2t and 2t + 1.
inline void deinterleave(const float* p, __m256* even, __m256* odd) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  // shuffle_ps works within 128-bit lanes: [a0 a2 b0 b2 | a4 a6 b4 b6]; reorder the 64-bit pairs.
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

// V[(xi*C + c)*ldv + t] for the tiles t = i*T + ty*TW + tx of images i < nimg (x points at the
// first, (C, H, W) each). pad: WinogradPad::floats() of scratch, zeroed by the caller before the
// first call (only the image's interior is written here). Up to 7 floats past the last tile of
// each row of V are written (ldv leaves room).
inline void winograd_input_impl(const Conv2dShape& s, const float* x, int64_t nimg, float* V, int64_t ldv,
                                float* pad) {
  const WinogradPad pd(s);
  const int64_t H = s.H, W = s.W, C = s.C, T = pd.TH * pd.TW, cs = C * ldv;
  const int64_t h0 = std::max<int64_t>(0, -s.PT), h1 = std::min(H, pd.Hp - s.PT);  // rows copied
  const int64_t w0 = std::max<int64_t>(0, -s.PL), w1 = std::min(W, pd.Wp - s.PL);
  for (int64_t i = 0; i < nimg; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const float* xc = x + (i * C + c) * H * W;
      for (int64_t h = h0; h < h1; ++h)
        std::memcpy(pad + (h + s.PT) * pd.Wp + w0 + s.PL, xc + h * W + w0,
                    sizeof(float) * static_cast<size_t>(w1 - w0));
      for (int64_t ty = 0; ty < pd.TH; ++ty) {
        const float* row = pad + 2 * ty * pd.Wp;
        float* v = V + c * ldv + i * T + ty * pd.TW;
        for (int64_t tx = 0; tx < pd.TW; tx += 8) {
          __m256 d[4][4];
          for (int r = 0; r < 4; ++r) {
            deinterleave(row + r * pd.Wp + 2 * tx, &d[r][0], &d[r][1]);
            deinterleave(row + r * pd.Wp + 2 * tx + 2, &d[r][2], &d[r][3]);
          }
          __m256 t[4][4];  // B^T d
          for (int j = 0; j < 4; ++j) {
            t[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
            t[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
            t[2][j] = _mm256_sub_ps(d[2][j], d[1][j]);
            t[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
          }
          for (int a = 0; a < 4; ++a) {  // (B^T d) B
            _mm256_storeu_ps(v + (4 * a + 0) * cs + tx, _mm256_sub_ps(t[a][0], t[a][2]));
            _mm256_storeu_ps(v + (4 * a + 1) * cs + tx, _mm256_add_ps(t[a][1], t[a][2]));
            _mm256_storeu_ps(v + (4 * a + 2) * cs + tx, _mm256_sub_ps(t[a][2], t[a][1]));
            _mm256_storeu_ps(v + (4 * a + 3) * cs + tx, _mm256_sub_ps(t[a][1], t[a][3]));
          }
        }
      }
    }
}

// out[0, n) of one output row from the interleaved pair (e, o): out[2t] = e[t], out[2t+1] = o[t],
// plus the bias, then relu (NaN stays NaN, as in the direct kernels). With spill, a short row
// (n < 16) is stored whole and its last 16 - n floats land on what follows it in y, which the
// caller rewrites afterwards (vmaskmovps stores are microcoded on AMD: a third of this transform
// on 14-wide rows).
inline void winograd_store_row(float* out, int64_t n, __m256 e, __m256 o, __m256 bias, bool relu,
                               bool spill) {
  const __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
  __m256 r0 = _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), bias);
  __m256 r1 = _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x31), bias);
  if (relu) {
    r0 = _mm256_max_ps(_mm256_setzero_ps(), r0);
    r1 = _mm256_max_ps(_mm256_setzero_ps(), r1);
  }
  if (n >= 16 || spill) {
    _mm256_storeu_ps(out, r0);
    _mm256_storeu_ps(out + 8, r1);
  } else {
    alignas(32) float tmp[16];
    _mm256_store_ps(tmp, r0);
    _mm256_store_ps(tmp + 8, r1);
    std::memcpy(out, tmp, sizeof(float) * static_cast<size_t>(n));
  }
}

// y (images i < nimg, (OC, OH, OW) each) = act(A^T m A + bias) from m[xi] = M[(xi*OC + oc)*ldm
// + t]; reads up to 7 floats past a row's last tile (ldm leaves room).
inline void winograd_output_impl(const Conv2dShape& s, const float* M, int64_t ldm, int64_t nimg,
                                 const float* bias, bool relu, float* y) {
  const int64_t OH = s.OH(), OW = s.OW(), OC = s.OC, TH = (OH + 1) / 2, TW = (OW + 1) / 2, T = TH * TW;
  const int64_t ms = OC * ldm;  // stride of xi in M
  for (int64_t i = 0; i < nimg; ++i)
    for (int64_t oc = 0; oc < OC; ++oc) {
      const __m256 b = _mm256_set1_ps(bias ? bias[oc] : 0.0f);
      float* yc = y + (i * OC + oc) * OH * OW;
      for (int64_t ty = 0; ty < TH; ++ty) {
        const float* m = M + oc * ldm + i * T + ty * TW;
        for (int64_t tx = 0; tx < TW; tx += 8) {
          __m256 t[2][4];  // A^T m
          for (int j = 0; j < 4; ++j) {
            const __m256 m0 = _mm256_loadu_ps(m + j * ms + tx), m1 = _mm256_loadu_ps(m + (4 + j) * ms + tx),
                         m2 = _mm256_loadu_ps(m + (8 + j) * ms + tx),
                         m3 = _mm256_loadu_ps(m + (12 + j) * ms + tx);
            t[0][j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
            t[1][j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
          }
          const int64_t n = OW - 2 * tx;  // columns of the row left from 2*tx
          for (int r = 0; r < 2 && 2 * ty + r < OH; ++r) {
            const __m256 e = _mm256_add_ps(_mm256_add_ps(t[r][0], t[r][1]), t[r][2]);
            const __m256 o = _mm256_sub_ps(_mm256_sub_ps(t[r][1], t[r][2]), t[r][3]);
            // A short row's last vector may spill onto the next output row where that is
            // written after it: the next tile row's (r = 1), or this tile row's second when
            // this is its only vector (r = 0, tx = 0); never past the plane (another thread's
            // image, or the end of y).
            const int64_t pos = (2 * ty + r) * OW + 2 * tx;
            winograd_store_row(yc + pos, n, e, o, b, relu, (r == 1 || tx == 0) && pos + 16 <= OH * OW);
          }
        }
      }
    }
}

inline int64_t winograd_pad_floats_impl(const Conv2dShape& s) { return WinogradPad(s).floats(); }

// The transforms' table (csrc/ops/conv2d.h: WinogradKernels), the winograd part of the
// Conv2dKernels of each unit that includes this.
constexpr WinogradKernels kWinogradKernels{winograd_input_impl, winograd_output_impl,
                                           winograd_pad_floats_impl};

}  // namespace
}  // namespace fastnn
