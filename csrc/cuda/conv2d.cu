// conv2d on the GPU (the contract of csrc/ops/conv2d.h, on the Conv2dShape that conv2d's meta
// functions checked; see cuda/kernels.h). Every pass is an implicit GEMM: 64x64 output
// tiles per block of 256 threads, each thread a 4x4 register block (rows ty + 16i, columns
// tx + 16j), K in steps of 16 staged through shared memory. The operand that would be the
// im2col matrix is gathered from the image while its tile is loaded (taps on the padding read
// zero; edges and the K tail are zero-filled), so no column buffer exists. Each output element
// is summed by one thread in ascending k with fused multiply-adds and no pass uses atomics: the
// results are the same on every run.
//
//   forward:          per group, y[oc, (b, oh, ow)] = sum_k w[oc, k] col[k, (b, oh, ow)] with
//                     k = (c, kh, kw): M = OC/G, N = B*OH*OW, K = C/G*KH*KW; bias, then ReLU
//                     (which keeps a NaN, as the CPU's), in the epilogue.
//   backward_data:    gather form over the dx pixels, per group and stride phase (ih mod SH,
//                     iw mod SW). Within a phase only the taps kh with ih + PT - kh*DH a
//                     multiple of SH land on an output row (likewise kw), every pixel of the
//                     phase has the same such taps, and the others are left out of K:
//                     dx[c, pixel] = sum_{oc, landing kh, kw} w[oc, c, kh, kw] dy[oc, oh, ow]
//                     (M = C/G, N = B*pixels of the phase, K = OC/G*landing taps; landing taps
//                     past the border of dy read zero).
//   backward_weight:  dw[oc, (c, kh, kw)] = sum_{(b, oh, ow)} dy[oc, (b, oh, ow)] col[(c, kh, kw), ...]
//                     (M = OC/G, N = C/G*KH*KW, K = B*OH*OW). When the weight has too few tiles
//                     to fill the GPU, K is split into S chunks (S from the geometry alone) that
//                     write partial tiles to a workspace, summed afterwards in ascending chunk
//                     order by one thread per weight.
//   backward_bias:    a block per channel: each thread sums its pixels image by image, then the
//                     fixed tree of block_sum.
#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "ops/conv2d.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
constexpr int RS = BM / TM;              // 16: a thread's rows are ty + RS*i, its columns tx + RS*j
constexpr int THREADS = RS * (BN / TN);  // 256
constexpr int LDS = BM + 2;  // tile row pitch: k-major stores (k = tid % 16) hit 32 distinct banks
constexpr size_t SMEM = 2 * BK * LDS * sizeof(float);
constexpr unsigned kMaxGridYZ = 65535;
static_assert(BM == BN && BM == 4 * RS && THREADS == RS * BK && THREADS == BN * BK / 4,
              "the tile loads: 4 rows of A (or B) per thread, 4 k-rows of B per thread");

// The geometry in 32-bit (host-checked to fit with room to spare), the batch and per-image
// products in 64-bit.
struct Geom {
  int C, H, W, OC, KH, KW, SH, SW, PT, PL, DH, DW, G, OH, OW;
  int Cg, OCg, KK, Kg;  // C/G, OC/G, KH*KW, C/G*KH*KW
  int64_t N, HW, OHW;
};

// acc[i][j] += sum_kk as[kk][ty + RS*i] * bs[kk][tx + RS*j] over the staged 16-deep tiles.
__device__ __forceinline__ void tile_fma(const float* as, const float* bs, int tx, int ty,
                                         float (&acc)[TM][TN]) {
#pragma unroll
  for (int kk = 0; kk < BK; ++kk) {
    float a[TM], b[TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) a[i] = as[kk * LDS + ty + RS * i];
#pragma unroll
    for (int j = 0; j < TN; ++j) b[j] = bs[kk * LDS + tx + RS * j];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

__device__ __forceinline__ bool inside(int i, int n) {
  return static_cast<unsigned>(i) < static_cast<unsigned>(n);
}

// Grid: x = tiles of B*OH*OW, y strides over the tiles of OC/G, z over the groups.
__global__ void __launch_bounds__(THREADS)
    forward_kernel(Geom g, const float* __restrict__ x, const float* __restrict__ w,
                   const float* __restrict__ bias, int act, float* __restrict__ y) {
  FASTNN_DYNAMIC_SHARED(float, smem);
  float* as = smem;             // as[k][m]: weights
  float* bs = smem + BK * LDS;  // bs[k][n]: the gathered im2col tile
  const int tid = threadIdx.x, tx = tid % RS, ty = tid / RS;
  const int64_t cols = g.N * g.OHW, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  // B tile: this thread gathers column lc, rows lr .. lr+3; its image and window corner.
  const int lc = tid % BN, lr = tid / BN * 4;
  const bool has_col = n0 + lc < cols;
  int64_t img = 0;
  int ih0 = 0, iw0 = 0;
  if (has_col) {
    img = (n0 + lc) / g.OHW;
    const int p = static_cast<int>(n0 + lc - img * g.OHW);
    ih0 = p / g.OW * g.SH - g.PT;
    iw0 = p % g.OW * g.SW - g.PL;
  }
  const int ka = tid % BK, ra = tid / BK;  // A tile: column ka, rows ra + RS*i
  for (int grp = blockIdx.z; grp < g.G; grp += gridDim.z) {
    const float* xg = x + (img * g.C + static_cast<int64_t>(grp) * g.Cg) * g.HW;
    const float* wg = w + static_cast<int64_t>(grp) * g.OCg * g.Kg;
    for (int m0 = blockIdx.y * BM; m0 < g.OCg; m0 += gridDim.y * BM) {
      float acc[TM][TN] = {};
      for (int k0 = 0; k0 < g.Kg; k0 += BK) {
        const int kA = k0 + ka;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int m = m0 + ra + RS * i;
          as[ka * LDS + ra + RS * i] =
              m < g.OCg && kA < g.Kg ? wg[static_cast<int64_t>(m) * g.Kg + kA] : 0.0f;
        }
        int k = k0 + lr, c = k / g.KK, r = k - c * g.KK, kh = r / g.KW, kw = r - kh * g.KW;
#pragma unroll
        for (int i = 0; i < 4; ++i, ++k) {
          const int ih = ih0 + kh * g.DH, iw = iw0 + kw * g.DW;
          bs[(lr + i) * LDS + lc] = has_col && k < g.Kg && inside(ih, g.H) && inside(iw, g.W)
                                        ? xg[static_cast<int64_t>(c) * g.HW + ih * g.W + iw]
                                        : 0.0f;
          if (++kw == g.KW) {
            kw = 0;
            if (++kh == g.KH) {
              kh = 0;
              ++c;
            }
          }
        }
        __syncthreads();
        tile_fma(as, bs, tx, ty, acc);
        __syncthreads();  // the tiles are read by all before the next ones overwrite them
      }
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const int64_t n = n0 + tx + RS * j;
        if (n >= cols) break;
        const int64_t b = n / g.OHW;
        float* yp = y + (b * g.OC + static_cast<int64_t>(grp) * g.OCg) * g.OHW + (n - b * g.OHW);
#pragma unroll
        for (int i = 0; i < TM; ++i) {
          const int m = m0 + ty + RS * i;
          if (m >= g.OCg) break;
          float v = acc[i][j];
          if (bias) v += bias[grp * g.OCg + m];
          if (act == 1) v = v < 0.0f ? 0.0f : v;
          yp[static_cast<int64_t>(m) * g.OHW] = v;
        }
      }
    }
  }
}

// The taps of one axis that land on an output row or column for the inputs i = rem + S*q:
// k = first + t*step for t < count (k*D = rem + P mod S repeats every S/gcd(S, D) taps), each
// reading output o = base + q - t*dq.
struct Taps {
  int first, step, count, base, dq;
};
__device__ __forceinline__ Taps landing_taps(int rem, int P, int K, int S, int D) {
  int a = S, b = D;
  while (b) {
    const int t = a % b;
    a = b;
    b = t;
  }
  Taps t{0, S / a, 0, 0, D / a};
  int k = 0;
  while (k < t.step && k < K && (rem + P - k * D) % S != 0) ++k;
  if (k < t.step && k < K) {
    t.first = k;
    t.count = (K - 1 - k) / t.step + 1;
    t.base = (rem + P - k * D) / S;
  }
  return t;
}

// Grid: x = phases x tiles (tiles: those of the largest phase, (0, 0)), y strides over the
// tiles of C/G, z over the groups. At least 2 blocks per SM, not the default target of 4: the
// tap bookkeeping does not fit 64 registers without spilling.
__global__ void __launch_bounds__(THREADS, 2)
    backward_data_kernel(Geom g, int phases_w, int64_t tiles, const float* __restrict__ dy,
                         const float* __restrict__ w, float* __restrict__ dx) {
  FASTNN_DYNAMIC_SHARED(float, smem);
  float* as = smem;             // as[k][c]: weights, transposed
  float* bs = smem + BK * LDS;  // bs[k][n]: dy at the landing taps of the phase's pixels
  const int tid = threadIdx.x, tx = tid % RS, ty = tid / RS;
  const int phase = static_cast<int>(blockIdx.x / tiles), rh = phase / phases_w, rw = phase % phases_w;
  const int HQ = static_cast<int>((int64_t{g.H} - rh + g.SH - 1) / g.SH);  // rows of the phase
  const int WQ = static_cast<int>((int64_t{g.W} - rw + g.SW - 1) / g.SW);
  const int64_t per_image = int64_t{HQ} * WQ, cols = g.N * per_image;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x % tiles) * BN;
  if (n0 >= cols) return;  // the whole block: this phase has fewer tiles than the largest
  const Taps th = landing_taps(rh, g.PT, g.KH, g.SH, g.DH), tw = landing_taps(rw, g.PL, g.KW, g.SW, g.DW);
  const int taps = th.count * tw.count, K = g.OCg * taps;
  // A tile: tap (t1, t2) of the phase is weight column tap0 + t1*hstep + t2*tw.step.
  const int tap0 = th.first * g.KW + tw.first, hstep = th.step * g.KW;
  // B tile: this thread gathers column lc (pixel (qh, qw) of the phase in image img), rows
  // lr .. lr+3; tap (t1, t2) reads dy at (oh0 - t1*th.dq, ow0 - t2*tw.dq).
  const int lc = tid % BN, lr = tid / BN * 4;
  const bool has_col = n0 + lc < cols;
  int64_t img = 0;
  int oh0 = 0, ow0 = 0;
  if (has_col) {
    img = (n0 + lc) / per_image;
    const int q = static_cast<int>(n0 + lc - img * per_image);
    oh0 = th.base + q / WQ;
    ow0 = tw.base + q % WQ;
  }
  const int ka = tid % BK, ra = tid / BK;
  for (int grp = blockIdx.z; grp < g.G; grp += gridDim.z) {
    const float* dyg = dy + (img * g.OC + static_cast<int64_t>(grp) * g.OCg) * g.OHW;
    const float* wg = w + static_cast<int64_t>(grp) * g.OCg * g.Kg;
    for (int m0 = blockIdx.y * BM; m0 < g.Cg; m0 += gridDim.y * BM) {
      float acc[TM][TN] = {};
      for (int k0 = 0; k0 < K; k0 += BK) {
        {  // A[c][k] = w[oc, c, kh, kw], k = (oc, t_h, t_w) over the landing taps
          const int k = k0 + ka;
          int oc = 0, t1 = 0, t2 = 0;
          if (k < K) {
            oc = k / taps;
            t1 = (k - oc * taps) / tw.count;
            t2 = k - oc * taps - t1 * tw.count;
          }
          const int64_t wo = static_cast<int64_t>(oc) * g.Kg + tap0 + t1 * hstep + t2 * tw.step;
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int c = m0 + ra + RS * i;
            as[ka * LDS + ra + RS * i] = k < K && c < g.Cg ? wg[wo + static_cast<int64_t>(c) * g.KK] : 0.0f;
          }
        }
        int k = k0 + lr, oc = 0, t1 = 0, t2 = 0;
        if (k < K) {
          oc = k / taps;
          t1 = (k - oc * taps) / tw.count;
          t2 = k - oc * taps - t1 * tw.count;
        }
#pragma unroll
        for (int i = 0; i < 4; ++i, ++k) {
          const int oh = oh0 - t1 * th.dq, ow = ow0 - t2 * tw.dq;
          bs[(lr + i) * LDS + lc] = has_col && k < K && inside(oh, g.OH) && inside(ow, g.OW)
                                        ? dyg[static_cast<int64_t>(oc) * g.OHW + oh * g.OW + ow]
                                        : 0.0f;
          if (++t2 == tw.count) {
            t2 = 0;
            if (++t1 == th.count) {
              t1 = 0;
              ++oc;
            }
          }
        }
        __syncthreads();
        tile_fma(as, bs, tx, ty, acc);
        __syncthreads();
      }
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        const int64_t n = n0 + tx + RS * j;
        if (n >= cols) break;
        const int64_t b = n / per_image;
        const int q = static_cast<int>(n - b * per_image), ih = rh + g.SH * (q / WQ),
                  iw = rw + g.SW * (q % WQ);
        float* dxp = dx + (b * g.C + static_cast<int64_t>(grp) * g.Cg) * g.HW + ih * g.W + iw;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
          const int c = m0 + ty + RS * i;
          if (c >= g.Cg) break;
          dxp[static_cast<int64_t>(c) * g.HW] = acc[i][j];
        }
      }
    }
  }
}

// Grid: x = chunks x tiles of C/G*KH*KW, y strides over the tiles of OC/G, z over the groups.
// Chunk s sums k in [s*chunk, (s+1)*chunk) into out + s*OC*Kg (out is dw for one chunk).
__global__ void __launch_bounds__(THREADS)
    backward_weight_kernel(Geom g, int64_t chunk, int ntiles, const float* __restrict__ dy,
                           const float* __restrict__ x, float* __restrict__ out) {
  FASTNN_DYNAMIC_SHARED(float, smem);
  float* as = smem;             // as[k][m]: dy
  float* bs = smem + BK * LDS;  // bs[k][n]: the gathered im2col tile, transposed
  const int tid = threadIdx.x, tx = tid % RS, ty = tid / RS;
  const int s = static_cast<int>(blockIdx.x / ntiles), n0 = static_cast<int>(blockIdx.x % ntiles) * BN;
  const int64_t K = g.N * g.OHW, kbeg = s * chunk, kend = min(K, kbeg + chunk);
  float* outs = out + static_cast<int64_t>(s) * g.OC * g.Kg;
  // Both tiles load column k = k0 + ka and rows ra + RS*i; the B rows are weight columns
  // n = (c, kh, kw), fixed for the block: their channel offset and window offset.
  const int ka = tid % BK, ra = tid / BK;
  int64_t coff[4];
  int cdh[4], cdw[4];
  bool cok[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int n = n0 + ra + RS * i, c = n / g.KK, r = n - c * g.KK, kh = r / g.KW;
    cok[i] = n < g.Kg;
    coff[i] = static_cast<int64_t>(c) * g.HW;
    cdh[i] = kh * g.DH - g.PT;
    cdw[i] = (r - kh * g.KW) * g.DW - g.PL;
  }
  for (int grp = blockIdx.z; grp < g.G; grp += gridDim.z) {
    const float* xg = x + static_cast<int64_t>(grp) * g.Cg * g.HW;
    const float* dyg = dy + static_cast<int64_t>(grp) * g.OCg * g.OHW;
    for (int m0 = blockIdx.y * BM; m0 < g.OCg; m0 += gridDim.y * BM) {
      float acc[TM][TN] = {};
      for (int64_t k0 = kbeg; k0 < kend; k0 += BK) {
        const int64_t k = k0 + ka;
        const bool kok = k < kend;
        int64_t b = 0;
        int p = 0;
        if (kok) {
          b = k / g.OHW;
          p = static_cast<int>(k - b * g.OHW);
        }
        const int oh = p / g.OW * g.SH, ow = p % g.OW * g.SW;
        const float* dyb = dyg + b * g.OC * g.OHW + p;
        const float* xb = xg + b * g.C * g.HW;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int m = m0 + ra + RS * i;
          as[ka * LDS + ra + RS * i] = kok && m < g.OCg ? dyb[static_cast<int64_t>(m) * g.OHW] : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int ih = oh + cdh[i], iw = ow + cdw[i];
          bs[ka * LDS + ra + RS * i] =
              kok && cok[i] && inside(ih, g.H) && inside(iw, g.W) ? xb[coff[i] + ih * g.W + iw] : 0.0f;
        }
        __syncthreads();
        tile_fma(as, bs, tx, ty, acc);
        __syncthreads();
      }
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const int m = m0 + ty + RS * i;
        if (m >= g.OCg) break;
        float* op = outs + static_cast<int64_t>(grp * g.OCg + m) * g.Kg;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
          const int n = n0 + tx + RS * j;
          if (n >= g.Kg) break;
          op[n] = acc[i][j];
        }
      }
    }
  }
}

// dw[e] = the chunks' partials of weight e summed in ascending chunk order.
__global__ void __launch_bounds__(THREADS)
    sum_chunks_kernel(int64_t n, int chunks, const float* __restrict__ part, float* __restrict__ dw) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += step) {
    float s = part[e];
    for (int c = 1; c < chunks; ++c) s += part[c * n + e];
    dw[e] = s;
  }
}

__global__ void __launch_bounds__(THREADS)
    backward_bias_kernel(int64_t n, int64_t oc, int64_t hw, const float* __restrict__ dy,
                         float* __restrict__ db) {
  __shared__ float scratch[32];
  for (int64_t c = blockIdx.x; c < oc; c += gridDim.x) {
    float s = 0.0f;
    for (int64_t b = 0; b < n; ++b) {
      const float* p = dy + (b * oc + c) * hw;
      for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) s += p[i];
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) db[c] = s;
  }
}

// The 32-bit geometry; sizes whose coordinates could pass 2^31 in the kernels' int arithmetic
// are refused (every plane, padded extent, kernel window, stride and per-group product below
// 2^30; the CPU's own limit is 2^31 - 1).
Geom geom32(const Conv2dShape& s, const char* op) {
  constexpr int64_t lim = int64_t{1} << 30;
  const int64_t Cg = s.C / s.G, OCg = s.OC / s.G, KK = s.KH * s.KW;
  if (s.C > lim || s.OC > lim || s.H + s.PT + s.PB > lim || s.W + s.PL + s.PR > lim || s.SH > lim ||
      s.SW > lim || s.H * s.W > lim || s.OH() * s.OW() > lim || Cg * KK > lim || OCg * KK > lim || KK > lim)
    throw std::invalid_argument(std::string(op) +
                                ": sizes past 2^30 (a plane, a padded side, a stride, "
                                "C/groups*KH*KW) are not supported on the GPU");
  Geom g;
  g.C = static_cast<int>(s.C), g.H = static_cast<int>(s.H), g.W = static_cast<int>(s.W);
  g.OC = static_cast<int>(s.OC), g.KH = static_cast<int>(s.KH), g.KW = static_cast<int>(s.KW);
  g.SH = static_cast<int>(s.SH), g.SW = static_cast<int>(s.SW), g.PT = static_cast<int>(s.PT);
  g.PL = static_cast<int>(s.PL), g.DH = static_cast<int>(s.DH), g.DW = static_cast<int>(s.DW);
  g.G = static_cast<int>(s.G), g.OH = static_cast<int>(s.OH()), g.OW = static_cast<int>(s.OW());
  g.Cg = static_cast<int>(Cg), g.OCg = static_cast<int>(OCg), g.KK = static_cast<int>(KK);
  g.Kg = static_cast<int>(Cg * KK);
  g.N = s.B, g.HW = s.H * s.W, g.OHW = s.OH() * s.OW();
  return g;
}

int64_t tiles_of(int64_t n, int64_t per) { return (n + per - 1) / per; }

dim3 grid_of(const char* op, int64_t x, int64_t y, int64_t z) {
  if (x > INT_MAX) throw std::invalid_argument(std::string(op) + ": the problem exceeds the CUDA grid");
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(std::min<int64_t>(y, kMaxGridYZ)),
              static_cast<unsigned>(std::min<int64_t>(z, kMaxGridYZ)));
}

// The backward_weight split of K = B*OH*OW: enough blocks for a large GPU, chunks of at least
// 8 tiles of K, a workspace of at most 2^26 floats. From the geometry alone, so the summation
// order (and the result) does not depend on the device.
struct Split {
  int64_t chunks, chunk;
};
Split weight_split(const Geom& g) {
  constexpr int64_t kTargetBlocks = 512, kMinChunk = 8 * BK, kMaxWorkspace = int64_t{1} << 26;
  const int64_t K = g.N * g.OHW, weights = int64_t{g.OC} * g.Kg;
  const int64_t blocks = g.G * tiles_of(g.OCg, BM) * tiles_of(g.Kg, BN);
  int64_t s = std::min({tiles_of(kTargetBlocks, std::min(blocks, kTargetBlocks)), tiles_of(K, kMinChunk),
                        kMaxWorkspace / weights, int64_t{1024}});
  s = std::max<int64_t>(s, 1);
  const int64_t chunk = std::max<int64_t>(BK, tiles_of(tiles_of(K, s), BK) * BK);
  return {std::max<int64_t>(1, tiles_of(K, chunk)), chunk};
}

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, int act,
                    float* y, Stream stream) {
  const char* op = "conv2d_forward";
  const Geom g = geom32(s, op);
  const int64_t cols = g.N * g.OHW;
  if (cols == 0) return;
  FASTNN_LAUNCH(forward_kernel, grid_of(op, tiles_of(cols, BN), tiles_of(g.OCg, BM), g.G), THREADS, SMEM,
                static_cast<cudaStream_t>(stream))(g, x, w, bias, act, y);
  check_launch(op);
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx, Stream stream) {
  const char* op = "conv2d_backward_data";
  const Geom g = geom32(s, op);
  if (g.N == 0) return;
  // Phases (ih mod SH, iw mod SW) that hold a pixel; the largest, (0, 0), sets the tiles.
  const int ph = std::min(g.SH, g.H), pw = std::min(g.SW, g.W);
  const int64_t tiles = tiles_of(g.N * tiles_of(g.H, g.SH) * tiles_of(g.W, g.SW), BN);
  FASTNN_LAUNCH(backward_data_kernel, grid_of(op, int64_t{ph} * pw * tiles, tiles_of(g.Cg, BM), g.G), THREADS,
                SMEM, static_cast<cudaStream_t>(stream))(g, pw, tiles, dy, w, dx);
  check_launch(op);
}

int64_t conv2d_backward_weight_workspace(const Conv2dShape& s) {
  const Geom g = geom32(s, "conv2d_backward_weight");
  const Split sp = weight_split(g);
  return sp.chunks > 1 ? sp.chunks * g.OC * g.Kg : 0;
}

void conv2d_backward_weight(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                            float* workspace, Stream stream) {
  const char* op = "conv2d_backward_weight";
  const Geom g = geom32(s, op);
  const Split sp = weight_split(g);
  if (sp.chunks > 1 && !workspace)
    throw std::invalid_argument(std::string(op) +
                                ": needs the workspace of conv2d_backward_weight_workspace");
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int ntiles = static_cast<int>(tiles_of(g.Kg, BN));
  FASTNN_LAUNCH(backward_weight_kernel, grid_of(op, sp.chunks * ntiles, tiles_of(g.OCg, BM), g.G), THREADS,
                SMEM, st)(g, sp.chunk, ntiles, dy, x, sp.chunks > 1 ? workspace : dw);
  check_launch(op);
  if (sp.chunks == 1) return;
  const int64_t n = int64_t{g.OC} * g.Kg;
  FASTNN_LAUNCH(sum_chunks_kernel, blocks_for(n, THREADS), THREADS, 0, st)(n, static_cast<int>(sp.chunks),
                                                                           workspace, dw);
  check_launch(op);
}

void conv2d_backward_bias(int64_t n, int64_t oc, int64_t hw, const float* dy, float* db, Stream stream) {
  if (oc == 0) return;
  FASTNN_LAUNCH(backward_bias_kernel, blocks_for(oc, 1), THREADS, 0, static_cast<cudaStream_t>(stream))(
      n, oc, hw, dy, db);
  check_launch("conv2d_backward_bias");
}

}  // namespace cuda
}  // namespace fastnn
