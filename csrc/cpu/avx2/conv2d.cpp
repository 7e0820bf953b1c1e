// Direct AVX2 + FMA conv2d kernels (no im2col matrix): a forward (which also serves
// backward_data as a convolution with flipped weights, csrc/ops/conv2d.cpp) and a
// backward_weight, laid out for 8-lane ymm vectors and 16 ymm registers.
//
// Both read a copy of one image's group in which, with unit stride along W, a tap k = (c, kh,
// kw) is one constant offset koff[k] from any output position (the AVX-512 unit's scheme,
// csrc/cpu/avx512/conv2d.cpp; the forward adds a flat layout for widths off the vector).
// - forward, pixels in lanes: 8 output pixels x a weight broadcast per output channel; tiles
//   of 3 vectors x 4 channels, 12 accumulators + 3 inputs + 1 broadcast = 16 registers (the
//   AVX-512 tiles, 24 accumulators of 16 lanes, would spill here); first layers (1 or 3 input
//   channels) run the same tiles over 9 or 27 taps.
// - backward_weight, channels in lanes: 16 output channels x 6 taps (2 kernel rows x 3),
//   reduced over the pixels of an image from a pixel-major copy of dy.
// Parallel over images (the forward over output rows when the batch is smaller than the thread
// count); every output element sees the same instruction sequence either way, so results do
// not depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "core/memory.h"
#include "core/threads.h"
#include "cpu/winograd_impl.h"
#include "ops/conv2d.h"

namespace fastnn {
namespace {

constexpr int kLanes = 8;  // floats per ymm

// The geometry of the padded copy of one group of one image.
struct Padded {
  int64_t Hp, Wp, plane, size;  // size: Cg planes + a vector of slack
  explicit Padded(const Conv2dShape& s)
      : Hp(s.H + s.PT + s.PB), Wp(s.W + s.PL + s.PR), plane(Hp * Wp), size(s.Cg() * plane + kLanes) {}
};

// (Cg, H, W) -> the interior of the padded image; its border and slack were zeroed when the
// buffer was made and are never written.
void pad_interior(const Conv2dShape& s, const Padded& pd, const float* xg, float* xpad) {
  for (int64_t c = 0; c < s.Cg(); ++c)
    for (int64_t h = 0; h < s.H; ++h)
      std::memcpy(xpad + c * pd.plane + (h + s.PT) * pd.Wp + s.PL, xg + (c * s.H + h) * s.W,
                  sizeof(float) * s.W);
}

// How the forward copies one image's group, so that with unit stride along W an output vector
// reads each tap k = (c, kh, kw) at one constant offset koff[k] from its position:
// - by rows: the zero-padded image (Cg, Hp, Wp); an output vector is 8 pixels of one output
//   row at q = oh*SH*Wp + ow, koff = c*Hp*Wp + kh*DH*Wp + kw*DW. A row's last vector is cut
//   short (masked) where OW is not a multiple of 8: 14-wide rows use 14 of 16 lanes.
// - flat (unit stride along H too): KW column-shifted copies of the padded image, (Cg, KW, Hp,
//   OW) with xs[c][kw][hp][ow] = xpad[c][hp][ow + kw*DW], so that the output pixel p = oh*OW +
//   ow reads p + koff with koff = (c*KW + kw)*Hp*OW + kh*DH*OW; vectors run over the flat
//   output across row ends and only the image's last one is cut short (a 14x14 output is 25
//   vectors where rows take 28). Costs KW copies of the image, about 1% of the arithmetic.
struct Layout {
  bool flat;
  int64_t Hp, Wp, pitch, plane, size;  // pitch: Wp or OW; plane: Hp * pitch; size + slack
  Layout(const Conv2dShape& s, bool flat_)
      : flat(flat_),
        Hp(s.H + s.PT + s.PB),
        Wp(s.W + s.PL + s.PR),
        pitch(flat ? s.OW() : Wp),
        plane(Hp * pitch),
        size(s.Cg() * (flat ? s.KW : 1) * plane + kLanes) {}
  int64_t offset(const Conv2dShape& s, int64_t c, int64_t kh, int64_t kw) const {
    return flat ? (c * s.KW + kw) * plane + kh * s.DH * pitch : c * plane + kh * s.DH * pitch + kw * s.DW;
  }
  // (Cg, H, W) -> the copy; the padding and slack were zeroed when the buffer was made and
  // are never written.
  void fill(const Conv2dShape& s, const float* xg, float* xs) const {
    if (!flat) {
      const Padded pd(s);
      pad_interior(s, pd, xg, xs);
      return;
    }
    const int64_t OW = s.OW();
    for (int64_t c = 0; c < s.Cg(); ++c)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        // output columns whose input column ow + kw*DW - PL lies inside the image
        const int64_t shift = kw * s.DW - s.PL;
        const int64_t lo = std::max<int64_t>(0, -shift), hi = std::min(OW, s.W - shift);
        if (hi <= lo) continue;
        float* dst = xs + (c * s.KW + kw) * plane + s.PT * OW;
        for (int64_t h = 0; h < s.H; ++h)
          std::memcpy(dst + h * OW + lo, xg + (c * s.H + h) * s.W + lo + shift, sizeof(float) * (hi - lo));
      }
  }
};

// Calls work(xs, b, g, r0, r1, tid) for every group of every image, with xs its copy and
// [r0, r1) a range of its output rows: all of them when the batch spreads over the threads,
// else split over the threads image by image (rows, so that no two threads store to one output
// pixel); tid < nthreads is the calling thread's index.
template <class Work>
void for_each_group_copy(const Conv2dShape& s, const float* x, const Layout& lay, int nthreads, Work&& work) {
  const int64_t xg_size = s.Cg() * s.H * s.W, OH = s.OH();
  if (s.B >= nthreads) {
    std::vector<AlignedFloats> bufs;
    for (int i = 0; i < nthreads; ++i) bufs.push_back(aligned_zeros(static_cast<size_t>(lay.size)));
    parallel(nthreads, [&](int tid, int nt) {
      long b0, b1;
      split_range(s.B, tid, nt, &b0, &b1);
      for (long b = b0; b < b1; ++b)
        for (int64_t g = 0; g < s.G; ++g) {
          lay.fill(s, x + (b * s.G + g) * xg_size, bufs[tid].get());
          work(static_cast<const float*>(bufs[tid].get()), static_cast<int64_t>(b), g, int64_t{0}, OH, tid);
        }
    });
    return;
  }
  AlignedFloats buf = aligned_zeros(static_cast<size_t>(lay.size));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t g = 0; g < s.G; ++g) {
      lay.fill(s, x + (b * s.G + g) * xg_size, buf.get());
      parallel(static_cast<int>(std::min<int64_t>(nthreads, OH)), [&](int tid, int nt) {
        long r0, r1;
        split_range(OH, tid, nt, &r0, &r1);
        work(static_cast<const float*>(buf.get()), b, g, static_cast<int64_t>(r0), static_cast<int64_t>(r1),
             tid);
      });
    }
}

// ---- Forward, pixels in lanes ----
//
// Per tap k the tile loads its R input vectors (8 consecutive floats at v[r].q + koff[k]) and
// broadcasts N weights from the panel row wp[k][0..N), R*N FMAs. Panels are 4 channels wide
// where there are 4 or more and tiles 3 vectors: 12 accumulators + 3 inputs + one broadcast
// fill the 16 ymm registers exactly (7 loads per 12 FMAs). The tile's input and its weight
// panel (K x N floats) are L1-resident. Each
// output is summed over its taps from zero in k order, then the bias is added: the same bits
// whichever tile shape computes it.

constexpr int ACC = 12;  // accumulators per tile: vectors x channels
constexpr int RV = 7;    // most vectors per tile
constexpr int NP = 6;    // most output channels per panel
// Most vectors per tile with N channels: R*N accumulators + R inputs + one broadcast <= 16
// registers (4 x 3 would need 17, and GCC's spills halve its speed).
constexpr int kMaxR[NP + 1] = {0, 7, 5, 3, 3, 2, 2};

// One output vector: input position q in the copy, destination dst in a channel plane of y,
// n lanes stored (8 but for a row's or the image's last vector).
struct Vec {
  int64_t q, dst;
  int n;
};

struct FTile {
  const int32_t* koff;  // the chunk's K tap offsets into the copy of the group image
  int K;
  const float* wp;  // the chunk's rows of the weight panel [K][ldw]
  int ldw;
  const float* bias;  // the panel's first channel, or null
  bool relu;
  bool first, last;  // the first and the last chunk of taps
  int64_t ohw;       // channel stride of y
  // np panels of N channels each, one after the other: panel j's weights at wp + j*wstride,
  // its outputs N*j channels further on (one call for all of them saves each its set-up).
  int np = 1;
  int64_t wstride = 0;
};

inline __m256i lanes_below(int n) {  // lanes [0, n) set
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// R vectors x N output channels, over one chunk of the taps: the first chunk starts from zero,
// later ones from the partial sums they find in y; the last adds the bias (and ReLU), the
// others store their partial sums. The FMA chain of each output runs over k in the same order
// whatever the chunks, so chunking does not change a bit.
template <int R, int N>
void fwd_ukernel_avx2(const float* xs, const Vec* v, const FTile& t, float* y) {
  // The tile's fields and vectors are read into locals first: stores to y could otherwise
  // alias them for the compiler, which then reloads them after every store (a few % at 27
  // taps, where the epilogue is a large part of a tile).
  const int64_t ohw = t.ohw;
  const bool first = t.first, last = t.last, relu = t.relu;
  const int K = t.K, ldw = t.ldw, np = t.np;
  const int32_t* const koff = t.koff;
  int64_t dst[R];
  const float* xr[R];
  bool whole = true;
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    dst[r] = v[r].dst;
    xr[r] = xs + v[r].q;
    whole = whole && v[r].n == kLanes;
  }
  __m256i m[R];  // lanes past a cut vector's n are neither read, written nor faulted on
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) m[r] = lanes_below(v[r].n);
  const float* wpanel = t.wp;
  const float* bias = t.bias;
  for (int j = 0; j < np; ++j, wpanel += t.wstride, y += N * ohw, bias = bias ? bias + N : nullptr) {
    __m256 acc[R][N];
#pragma GCC unroll 12
    for (int n = 0; n < N; ++n)
#pragma GCC unroll 12
      for (int r = 0; r < R; ++r) {
        const float* yc = y + n * ohw + dst[r];
        acc[r][n] = first ? _mm256_setzero_ps() : whole ? _mm256_loadu_ps(yc) : _mm256_maskload_ps(yc, m[r]);
      }
    const float* wk = wpanel;
    // (GCC keeps the accumulators in registers only with every loop over r and n unrolled;
    // otherwise it stores them to the stack on each k.)
    auto tap = [&](int k) {
      const int64_t o = koff[k];
      __m256 a[R];
#pragma GCC unroll 12
      for (int r = 0; r < R; ++r) a[r] = _mm256_loadu_ps(xr[r] + o);
#pragma GCC unroll 12
      for (int n = 0; n < N; ++n) {
        const __m256 b = _mm256_broadcast_ss(wk + n);
#pragma GCC unroll 12
        for (int r = 0; r < R; ++r) acc[r][n] = _mm256_fmadd_ps(a[r], b, acc[r][n]);
      }
      wk += ldw;
    };
    // First layers (27 and 9 taps: 3 and 1 input channels) fully unrolled: a short tap loop's
    // exit branch and bookkeeping cost ~10% of such a tile.
    if (K == 27) {
#pragma GCC unroll 27
      for (int k = 0; k < 27; ++k) tap(k);
    } else if (K == 9) {
#pragma GCC unroll 9
      for (int k = 0; k < 9; ++k) tap(k);
    } else {
      for (int k = 0; k < K; ++k) tap(k);
    }
    if (last) {
#pragma GCC unroll 12
      for (int n = 0; n < N; ++n) {
        const __m256 bn = bias ? _mm256_broadcast_ss(bias + n) : _mm256_setzero_ps();
#pragma GCC unroll 12
        for (int r = 0; r < R; ++r) {
          acc[r][n] = _mm256_add_ps(acc[r][n], bn);
          if (relu) acc[r][n] = _mm256_max_ps(_mm256_setzero_ps(), acc[r][n]);  // keeps NaN
        }
      }
    }
    if (whole) {
#pragma GCC unroll 12
      for (int n = 0; n < N; ++n)
#pragma GCC unroll 12
        for (int r = 0; r < R; ++r) _mm256_storeu_ps(y + n * ohw + dst[r], acc[r][n]);
    } else {
#pragma GCC unroll 12
      for (int n = 0; n < N; ++n)
#pragma GCC unroll 12
        for (int r = 0; r < R; ++r) _mm256_maskstore_ps(y + n * ohw + dst[r], m[r], acc[r][n]);
    }
  }
}

using FwdFn = void (*)(const float*, const Vec*, const FTile&, float*);

template <int R, int N>
constexpr FwdFn fwd_fn() {
  if constexpr (R * N <= ACC)
    return &fwd_ukernel_avx2<R, N>;
  else
    return nullptr;
}
template <int R, int... N>
constexpr std::array<FwdFn, NP> fwd_row(std::integer_sequence<int, N...>) {
  return {fwd_fn<R, N + 1>()...};
}
template <int... R>
constexpr std::array<std::array<FwdFn, NP>, RV> fwd_table(std::integer_sequence<int, R...>) {
  return {fwd_row<R + 1>(std::make_integer_sequence<int, NP>{})...};
}
// kFwd[R - 1][N - 1]: R vectors x N channels, for R * N <= ACC.
constexpr auto kFwd = fwd_table(std::make_integer_sequence<int, RV>{});

// The output vectors of rows [r0, r1).
void plan_vectors(const Conv2dShape& s, const Layout& lay, int64_t r0, int64_t r1, std::vector<Vec>* vecs) {
  const int64_t OW = s.OW();
  vecs->clear();
  if (lay.flat) {
    for (int64_t p = r0 * OW; p < r1 * OW; p += kLanes)
      vecs->push_back({p, p, static_cast<int>(std::min<int64_t>(kLanes, r1 * OW - p))});
    return;
  }
  for (int64_t oh = r0; oh < r1; ++oh)
    for (int64_t ow = 0; ow < OW; ow += kLanes)
      vecs->push_back(
          {oh * s.SH * lay.Wp + ow, oh * OW + ow, static_cast<int>(std::min<int64_t>(kLanes, OW - ow))});
}

bool forward_direct(const Conv2dShape& s, const float* x, const float* w, const float* bias, Activation act,
                    float* y, int nthreads) {
  // The 1x1 shortcut is a plain gemm already; everything else with unit stride along W runs
  // direct (1.3-2x the column blocks at AVX2 on the CNN layers of bench/).
  if (s.pointwise()) return false;
  const int64_t OH = s.OH(), OW = s.OW();
  if (s.SW != 1 || s.B < 1) return false;  // the im2col path serves strided rows
  // Flat where it takes fewer vectors than rows do; rows narrower than half a vector
  // otherwise go to im2col + gemm.
  const int64_t row_vecs = OH * ((OW + kLanes - 1) / kLanes);
  const bool flat = s.SH == 1 && (OH * OW + kLanes - 1) / kLanes < row_vecs;
  if (!flat && OW < kLanes / 2) return false;
  const Layout lay(s, flat);
  if (lay.size > INT32_MAX) return false;
  const int64_t OCg = s.OCg(), K = s.Kg(), OHW = OH * OW;
  std::vector<int32_t> koff(K);
  for (int64_t c = 0; c < s.Cg(); ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw)
        koff[(c * s.KH + kh) * s.KW + kw] = static_cast<int32_t>(lay.offset(s, c, kh, kw));
  // Panels of at most 4 channels, as even as possible (64 -> 16 x 4, 3 -> 1 x 3), and as many
  // vectors per tile as 12 accumulators allow.
  const int64_t npanel = (OCg + 3) / 4, nmax = (OCg + npanel - 1) / npanel;
  auto panel_start = [&](int64_t p) { return p * OCg / npanel; };
  // Weights w (OC, K) packed as [g][panel][k][nmax], zero past the panel's channels.
  const AlignedFloats wbuf = aligned_zeros(static_cast<size_t>(s.G * npanel * K * nmax));
  float* const wp = wbuf.get();
  for (int64_t g = 0; g < s.G; ++g)
    for (int64_t p = 0; p < npanel; ++p)
      for (int64_t oc = panel_start(p); oc < panel_start(p + 1); ++oc) {
        float* dst = wp + (g * npanel + p) * K * nmax + (oc - panel_start(p));
        const float* src = w + (g * OCg + oc) * K;
        for (int64_t k = 0; k < K; ++k) dst[k * nmax] = src[k];
      }
  const int64_t rmax = kMaxR[nmax];
  // Chunks of input channels whose input a tile reads (about the floats of its rows per
  // kernel row, or per shifted copy) take about 16 KiB, so that it stays in L1 across the
  // panels: 64 -> 32 at 16x16 (backward_data) in 2 chunks, 32 -> 64 at 14x14 (flat) in 2.
  const int64_t span = rmax * kLanes + 16;
  const int64_t per_channel =
      4 * (flat ? s.KW * ((s.KH - 1) * s.DH * OW + span) : s.KH * ((s.KW - 1) * s.DW + span));
  const int64_t cpc = std::max<int64_t>(1, 16384 / per_channel);  // channels per chunk
  const int64_t nchunk = (s.Cg() + cpc - 1) / cpc;
  const int64_t KK = s.KH * s.KW;
  auto chunk_k = [&](int64_t c) { return c * s.Cg() / nchunk * KK; };  // first tap of chunk c
  // Each thread's vector list, made before the parallel region (nothing may throw inside it).
  std::vector<std::vector<Vec>> plans(nthreads);
  std::vector<std::pair<int64_t, int64_t>> planned(nthreads, {-1, -1});  // rows of each plan
  for (std::vector<Vec>& pl : plans) pl.reserve(static_cast<size_t>(row_vecs));

  for_each_group_copy(
      s, x, lay, nthreads, [&](const float* xs, int64_t b, int64_t g, int64_t r0, int64_t r1, int tid) {
        std::vector<Vec>& vecs = plans[tid];
        if (planned[tid] != std::make_pair(r0, r1)) {  // the same rows for every image: plan once
          plan_vectors(s, lay, r0, r1, &vecs);
          planned[tid] = {r0, r1};
        }
        // Tiles of consecutive vectors, as even as possible.
        const int64_t nvec = static_cast<int64_t>(vecs.size()), ntile = (nvec + rmax - 1) / rmax;
        float* yg = y + (b * s.OC + g * OCg) * OHW;
        for (int64_t c = 0; c < nchunk; ++c) {
          const int64_t k0 = chunk_k(c), k1 = chunk_k(c + 1);
          for (int64_t i = 0; i < ntile; ++i) {
            const int64_t t0 = i * nvec / ntile, nv = (i + 1) * nvec / ntile - t0;
            // Panels of equal width in one call (32 -> 8 x 4), else one call per panel.
            const bool even = OCg % npanel == 0;
            for (int64_t p = 0; p < npanel; p += even ? npanel : 1) {
              const int64_t oc0 = panel_start(p), n = panel_start(p + 1) - oc0;
              const FTile t{koff.data() + k0,
                            static_cast<int>(k1 - k0),
                            wp + ((g * npanel + p) * K + k0) * nmax,
                            static_cast<int>(nmax),
                            bias ? bias + g * OCg + oc0 : nullptr,
                            act == Activation::Relu,
                            c == 0,
                            c == nchunk - 1,
                            OHW,
                            static_cast<int>(even ? npanel : 1),
                            K * nmax};
              kFwd[nv - 1][n - 1](xs, vecs.data() + t0, t, yg + oc0 * OHW);
            }
          }
        }
      });
  return true;
}

// ---- Backward weight, channels in lanes ----
//
// dw[oc, k] = sum over images and output pixels of dy[oc, pixel] * xpad[koff[k] + pixel], for
// 3-wide kernels with unit stride. Tile: NG kernel rows (c, kh) x 3 taps kw x NV vectors of 8
// output channels (NG*3*NV <= 12 accumulators), reduced over the pixels of one image: per pixel
// NV loads of dy (transposed to pixel-major panels of 8*NV channels) and 3*NG broadcasts from
// row pointers of the padded image. 2 x 6 (16 channels, 2 kernel rows) takes 8 loads per 12
// FMAs with 15 registers live; 32 channels x 3 taps would need 17. The batch is split into a
// fixed number of chunks (independent of the thread count); each chunk sums its images in
// order into its own (K x OC) partial, and the partials are added in chunk order.
constexpr int KW3 = 3;
constexpr int kChunks = 8;

// Where a tile spreads its prefetches: lines [0, n) at p, n * (oh + 1) / OH of them by the end
// of output row oh.
struct Prefetch {
  const float* p;
  int64_t n;
};

template <int NG, int NV>
void wgrad_ukernel_avx2(const float* const* q, int dw, const float* dyt, int64_t OH, int64_t OW, int64_t Wp,
                        float* part, int64_t ldp, Prefetch pf0, Prefetch pf1) {
  constexpr int PW = NV * kLanes;  // the dyt panel's width
  __m256 c[NV][NG * KW3];
#pragma GCC unroll 12
  for (int u = 0; u < NV; ++u)
#pragma GCC unroll 12
    for (int r = 0; r < NG * KW3; ++r) c[u][r] = _mm256_setzero_ps();
  for (int64_t oh = 0; oh < OH; ++oh) {
    for (const Prefetch& pf : {pf0, pf1})
      for (int64_t l = pf.n * oh / OH; l < pf.n * (oh + 1) / OH; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(pf.p + l * 16), _MM_HINT_T1);
    const float* d = dyt + oh * OW * PW;
    for (int64_t ow = 0; ow < OW; ++ow, d += PW) {
      const int64_t pix = oh * Wp + ow;
      __m256 b[NV];
#pragma GCC unroll 12
      for (int u = 0; u < NV; ++u) b[u] = _mm256_loadu_ps(d + kLanes * u);
#pragma GCC unroll 12
      for (int j = 0; j < NG; ++j)
#pragma GCC unroll 12
        for (int kw = 0; kw < KW3; ++kw) {
          const __m256 a = _mm256_broadcast_ss(q[j] + pix + kw * dw);
#pragma GCC unroll 12
          for (int u = 0; u < NV; ++u) c[u][j * KW3 + kw] = _mm256_fmadd_ps(a, b[u], c[u][j * KW3 + kw]);
        }
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < NG * KW3; ++r) {  // partial[k][oc] += tile, k-major rows of the panel
    float* p = part + r * ldp;
#pragma GCC unroll 12
    for (int u = 0; u < NV; ++u)
      _mm256_storeu_ps(p + kLanes * u, _mm256_add_ps(_mm256_loadu_ps(p + kLanes * u), c[u][r]));
  }
}

using WgradFn = void (*)(const float* const*, int, const float*, int64_t, int64_t, int64_t, float*, int64_t,
                         Prefetch, Prefetch);
// [vectors per panel row - 1][(c, kh) rows per tile - 1]: 12 accumulators at most
constexpr WgradFn kWgrad[2][4] = {
    {&wgrad_ukernel_avx2<1, 1>, &wgrad_ukernel_avx2<2, 1>, &wgrad_ukernel_avx2<3, 1>,
     &wgrad_ukernel_avx2<4, 1>},
    {&wgrad_ukernel_avx2<1, 2>, &wgrad_ukernel_avx2<2, 2>, nullptr, nullptr},
};

// 8 x 8 block transpose: rows src + i*lds (i < 8), 8 floats each -> dst + j*ldd (j < 8).
// Halves of rows i and i + 4 are loaded into one register (128-bit inserts), so that two
// 4 x 4 in-lane transposes finish the job: 16 shuffles per block instead of 24.
inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 a[8];
  for (int i = 0; i < 4; ++i) {
    a[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(src + i * lds)),
                                _mm_loadu_ps(src + (i + 4) * lds), 1);  // columns 0-3
    a[i + 4] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(src + i * lds + 4)),
                                    _mm_loadu_ps(src + (i + 4) * lds + 4), 1);  // columns 4-7
  }
  for (int h = 0; h < 8; h += 4) {
    const __m256 t0 = _mm256_unpacklo_ps(a[h], a[h + 1]), t1 = _mm256_unpackhi_ps(a[h], a[h + 1]);
    const __m256 t2 = _mm256_unpacklo_ps(a[h + 2], a[h + 3]);
    const __m256 t3 = _mm256_unpackhi_ps(a[h + 2], a[h + 3]);
    _mm256_storeu_ps(dst + (h + 0) * ldd, _mm256_shuffle_ps(t0, t2, 0x44));
    _mm256_storeu_ps(dst + (h + 1) * ldd, _mm256_shuffle_ps(t0, t2, 0xEE));
    _mm256_storeu_ps(dst + (h + 2) * ldd, _mm256_shuffle_ps(t1, t3, 0x44));
    _mm256_storeu_ps(dst + (h + 3) * ldd, _mm256_shuffle_ps(t1, t3, 0xEE));
  }
}

// Lines [l0, l1) of the n floats at p, the part-th of nparts even slices: spread over the tiles
// of one image, the prefetches of the next image's x and dy (into L2) overlap its reads from
// memory with this image's arithmetic.
Prefetch slice(const float* p, int64_t n, int64_t part, int64_t nparts) {
  const int64_t lines = (n + 15) / 16, l0 = lines * part / nparts, l1 = lines * (part + 1) / nparts;
  return Prefetch{p + l0 * 16, l1 - l0};
}

// dyt[panel][pixel][pw] = dy[oc = panel*pw + j, pixel] for the OCg channels of one group (the
// lanes past OCg stay zero): 8 x 8 blocks transposed in registers, the edges one by one.
void transpose_dy(const float* dyg, int64_t OCg, int64_t OHW, int64_t pw, float* dyt) {
  int64_t oc0 = 0;
  for (; oc0 + kLanes <= OCg; oc0 += kLanes) {
    float* dst = dyt + (oc0 / pw) * OHW * pw + oc0 % pw;
    int64_t p0 = 0;
    // 16 pixels (a cache line of each of the 8 rows) per step, each line read once
    for (; p0 + 2 * kLanes <= OHW; p0 += 2 * kLanes) {
      transpose8x8(dyg + oc0 * OHW + p0, OHW, dst + p0 * pw, pw);
      transpose8x8(dyg + oc0 * OHW + p0 + kLanes, OHW, dst + (p0 + kLanes) * pw, pw);
    }
    for (; p0 + kLanes <= OHW; p0 += kLanes) transpose8x8(dyg + oc0 * OHW + p0, OHW, dst + p0 * pw, pw);
    for (; p0 < OHW; ++p0)
      for (int i = 0; i < kLanes; ++i) dst[p0 * pw + i] = dyg[(oc0 + i) * OHW + p0];
  }
  for (; oc0 < OCg; ++oc0) {
    float* dst = dyt + (oc0 / pw) * OHW * pw + oc0 % pw;
    for (int64_t p = 0; p < OHW; ++p) dst[p * pw] = dyg[oc0 * OHW + p];
  }
}

bool backward_weight_direct(const Conv2dShape& s, const float* dy, const float* x, float* dw, int nthreads) {
  const int64_t OCg = s.OCg(), Cg = s.Cg(), K = s.Kg();
  if (s.SH != 1 || s.SW != 1 || s.KW != KW3 || OCg < kLanes || s.B < 1) return false;
  const int64_t OH = s.OH(), OW = s.OW(), OHW = OH * OW;
  const Padded pd(s);
  if (pd.size > INT32_MAX) return false;
  const int64_t Wp = pd.Wp, plane = pd.plane;
  // Panels of 16 output channels (2 vectors x 2 kernel rows per tile), or of 8 (1 vector x 4
  // rows) where a group has fewer than 16.
  const int64_t pw = OCg >= 16 ? 16 : 8, maxrows = pw == 16 ? 2 : 4;
  const int64_t npanel = (OCg + pw - 1) / pw, ocp = npanel * pw;  // channels padded to panels
  // Each image adds into its chunk's (K x OC) partial; past 512 KiB (128 -> 128 3x3: 576 KiB)
  // that no longer stays in L2 and the column blocks win (0.7x of them at 8x8, 0.6x at 7x7).
  if (K * ocp > 128 * 1024) return false;
  const int64_t rows = Cg * s.KH;  // (c, kh) pairs
  // (c, kh) rows per tile: at most maxrows, spread evenly (9 rows by 4: 3 + 3 + 3)
  const int64_t ntile_rows = (rows + maxrows - 1) / maxrows;
  const int64_t gstep = (rows + ntile_rows - 1) / ntile_rows;
  const int64_t nchunk = std::min<int64_t>(kChunks, s.B);
  const int64_t xg_size = Cg * s.H * s.W;

  // partial[chunk][g][k][oc padded]
  const AlignedFloats pbuf = aligned_zeros(static_cast<size_t>(nchunk * s.G * K * ocp));
  float* const part = pbuf.get();
  const int nt_used = static_cast<int>(std::min<int64_t>(nthreads, nchunk));
  // Per-thread scratch, allocated before the parallel region (nothing may throw inside it);
  // the padding of xpad and the channels past OC/G in dyt stay zero.
  std::vector<AlignedFloats> xpads, dyts;
  for (int i = 0; i < nt_used; ++i) {
    xpads.push_back(aligned_zeros(static_cast<size_t>(pd.size)));
    dyts.push_back(aligned_zeros(static_cast<size_t>(npanel * OHW * pw)));
  }
  parallel(nt_used, [&](int tid, int nt) {
    long c0, c1;
    split_range(nchunk, tid, nt, &c0, &c1);
    float* xpad = xpads[tid].get();
    float* dyt = dyts[tid].get();
    for (long chunk = c0; chunk < c1; ++chunk) {
      long b0, b1;
      split_range(s.B, static_cast<int>(chunk), static_cast<int>(nchunk), &b0, &b1);
      for (long b = b0; b < b1; ++b) {
        for (int64_t g = 0; g < s.G; ++g) {
          pad_interior(s, pd, x + (b * s.G + g) * xg_size, xpad);
          transpose_dy(dy + (b * s.OC + g * OCg) * OHW, OCg, OHW, pw, dyt);
          float* pg = part + (chunk * s.G + g) * K * ocp;
          // the group after this one, whose x and dy the tiles prefetch
          const bool more = g + 1 < s.G || b + 1 < b1;
          const int64_t nb = g + 1 < s.G ? b : b + 1, nxg = g + 1 < s.G ? g + 1 : 0;
          const int64_t ntiles = npanel * ((rows + gstep - 1) / gstep);
          int64_t tix = 0;
          for (int64_t pn = 0; pn < npanel; ++pn) {
            const int vi = pw == 16 ? 1 : 0;
            for (int64_t r0 = 0; r0 < rows; r0 += gstep, ++tix) {
              Prefetch pf0{x, 0}, pf1{x, 0};
              if (more) {
                pf0 = slice(x + (nb * s.G + nxg) * xg_size, xg_size, tix, ntiles);
                pf1 = slice(dy + (nb * s.OC + nxg * OCg) * OHW, OCg * OHW, tix, ntiles);
              }
              const int ng = static_cast<int>(std::min<int64_t>(gstep, rows - r0));
              const float* q[4];
              for (int j = 0; j < ng; ++j) {
                const int64_t c = (r0 + j) / s.KH, kh = (r0 + j) % s.KH;
                q[j] = xpad + c * plane + kh * s.DH * Wp;
              }
              kWgrad[vi][ng - 1](q, static_cast<int>(s.DW), dyt + pn * OHW * pw, OH, OW, Wp,
                                 pg + r0 * KW3 * ocp + pn * pw, ocp, pf0, pf1);
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

}  // namespace

const Conv2dKernels conv2d_kernels_avx2{forward_direct, backward_weight_direct, kWinogradKernels};

}  // namespace fastnn
