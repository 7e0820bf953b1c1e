// Direct AVX-512 conv2d kernels (no im2col matrix): three forwards and a backward_weight.
//
// The forwards read a zero-padded copy of one image's group, (Cg, Hp, Wp) with row pitch Wp,
// so that with unit stride along W a tap k = (c, kh, kw) is one constant offset koff[k] from
// any output position. They differ in what fills the 16 lanes of a vector and what stays in
// registers:
// - few taps (K <= 4, or 3x3 over one input channel): 16 output positions, the weights of a
//   few output channels held in registers while the kernel streams over the image.
// - pixels in lanes: 16 consecutive output positions x a weight broadcast per output channel,
//   weights packed into channel panels [k][6]. Taken when the output's rows fill the vectors
//   well (widths that are multiples of 16, or a flat run over the pitch that wastes under a
//   tenth of the lanes).
// - channels in lanes: 32 output channels x a pixel broadcast, the tile transposed in
//   registers for the NCHW store; every lane is used whatever the width (14x14 images).
// Parallel over images (over tiles or rows when the batch is smaller than the thread count);
// every output element sees the same instruction sequence either way, so results do not
// depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "core/memory.h"
#include "core/threads.h"
#include "cpu/avx512/simd.h"
#include "cpu/winograd_impl.h"
#include "ops/conv2d.h"

namespace fastnn {
namespace {

constexpr int NR = 32;  // output channels per channels-in-lanes tile (two zmm)

// The geometry of the padded copy of one group of one image.
struct Padded {
  int64_t Hp, Wp, plane, size;  // size: Cg planes + 16 floats of slack for a vector's overrun
  explicit Padded(const Conv2dShape& s)
      : Hp(s.H + s.PT + s.PB), Wp(s.W + s.PL + s.PR), plane(Hp * Wp), size(s.Cg() * plane + 16) {}
};

// koff[(c*KH + kh)*KW + kw] = c*plane + kh*DH*Wp + kw*DW.
std::vector<int32_t> tap_offsets(const Conv2dShape& s, const Padded& pd) {
  std::vector<int32_t> koff(s.Kg());
  for (int64_t c = 0; c < s.Cg(); ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw)
        koff[(c * s.KH + kh) * s.KW + kw] =
            static_cast<int32_t>(c * pd.plane + kh * s.DH * pd.Wp + kw * s.DW);
  return koff;
}

// (Cg, H, W) -> the interior of the padded image; its border and slack were zeroed when the
// buffer was made and are never written.
void pad_interior(const Conv2dShape& s, const Padded& pd, const float* xg, float* xpad) {
  for (int64_t c = 0; c < s.Cg(); ++c)
    for (int64_t h = 0; h < s.H; ++h) {
      const float* src = xg + (c * s.H + h) * s.W;
      float* dst = xpad + c * pd.plane + (h + s.PT) * pd.Wp + s.PL;
      for (int64_t i = 0; i < s.W; i += 16) {
        const __mmask16 m = mask_for(static_cast<int>(std::min<int64_t>(16, s.W - i)));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
      }
    }
}

// Prefetch into L2 the part-th of nparts slices of the n floats at p: spread over the tiles of
// one image, it brings the next image's input in while this one computes (backward_weight,
// which reads x and dy per image: 2-3% there; nothing measurable in the forwards).
inline void prefetch_slice(const float* p, int64_t n, int64_t part, int64_t nparts) {
  const int64_t lines = (n + 15) / 16, l0 = lines * part / nparts, l1 = lines * (part + 1) / nparts;
  for (int64_t l = l0; l < l1; ++l) _mm_prefetch(reinterpret_cast<const char*>(p + l * 16), _MM_HINT_T1);
}

// Weights w (OC, Cg*KH*KW) packed as [g][panel][k][width]: panel p holds output channels
// [start(p), start(p + 1)) of each group, zero past them.
template <class Start>
std::vector<float> pack_panels(const Conv2dShape& s, const float* w, int64_t npanel, int width, Start start) {
  const int64_t OCg = s.OCg(), K = s.Kg();
  std::vector<float> wp(static_cast<size_t>(s.G * npanel * K * width), 0.0f);
  for (int64_t g = 0; g < s.G; ++g)
    for (int64_t p = 0; p < npanel; ++p)
      for (int64_t oc = start(p); oc < start(p + 1); ++oc) {
        float* dst = wp.data() + (g * npanel + p) * K * width + (oc - start(p));
        const float* src = w + (g * OCg + oc) * K;
        for (int64_t k = 0; k < K; ++k) dst[k * width] = src[k];
      }
  return wp;
}

// Calls work(xpad, b, g, u0, u1) for every group of every image, with xpad its padded copy
// and [u0, u1) a range of the nunits work units of one group: all of them per call when the
// batch spreads over the threads, else split over the threads image by image.
template <class Work>
void for_each_padded_group(const Conv2dShape& s, const float* x, const Padded& pd, int64_t nunits,
                           int nthreads, Work&& work) {
  const int64_t xg_size = s.Cg() * s.H * s.W;
  if (s.B >= nthreads) {
    std::vector<AlignedFloats> pads;
    for (int i = 0; i < nthreads; ++i) pads.push_back(aligned_zeros(static_cast<size_t>(pd.size)));
    parallel(nthreads, [&](int tid, int nt) {
      long b0, b1;
      split_range(s.B, tid, nt, &b0, &b1);
      for (long b = b0; b < b1; ++b)
        for (int64_t g = 0; g < s.G; ++g) {
          pad_interior(s, pd, x + (b * s.G + g) * xg_size, pads[tid].get());
          work(static_cast<const float*>(pads[tid].get()), static_cast<int64_t>(b), g, int64_t{0}, nunits);
        }
    });
    return;
  }
  AlignedFloats xpad = aligned_zeros(static_cast<size_t>(pd.size));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t g = 0; g < s.G; ++g) {
      pad_interior(s, pd, x + (b * s.G + g) * xg_size, xpad.get());
      parallel(static_cast<int>(std::min<int64_t>(nthreads, nunits)), [&](int tid, int nt) {
        long u0, u1;
        split_range(nunits, tid, nt, &u0, &u1);
        work(static_cast<const float*>(xpad.get()), b, g, static_cast<int64_t>(u0), static_cast<int64_t>(u1));
      });
    }
}

// ---- Forward, pixels in lanes ----
//
// A vector is 16 consecutive positions q of the output laid over the padded pitch
// (q = oh*SH*Wp + ow), so for tap k its 16 inputs are 16 consecutive floats at q + koff[k].
// Tile: up to 4 vectors x 6 output channels (24 accumulators); per k, 4 vector loads and 6
// weight broadcasts feed 24 FMAs (narrower panels take up to 12 vectors, keeping enough FMA
// chains in flight). The vectors are whole output rows in pieces of 16 or, where that wastes
// fewer lanes, a flat run over the pitch whose lanes past a row's end are computed and not
// stored. A tile touches a few vectors' worth of the image and one panel (K x 6), both
// L1-resident; stores are masked, segment by segment, straight into NCHW.

constexpr int ACC = 24;  // accumulators per tile: vectors x channels
constexpr int RV = 12;   // most vectors (of 16 output pixels) per tile
constexpr int NP = 6;    // output channels per weight panel

// Where the lanes of one vector go: lanes in `mask` store to the channel plane of y at
// dst + lane (one segment per output row the vector crosses).
struct Seg {
  int64_t dst;
  __mmask16 mask;
};
struct Vec {
  int64_t q0;          // first position, in padded-image floats
  int32_t seg0, nseg;  // its segments
};

struct FTile {
  const int32_t* koff;  // K tap offsets into the padded group image
  int K;
  const float* wp;    // weight panel [K][NP]
  const float* bias;  // the panel's first channel, or null
  bool relu;
  int64_t ohw;  // channel stride of y
  const Seg* segs;
};

template <int R, int N>
void ftile(const float* xpad, const Vec* v, const FTile& t, float* y) {
  __m512 acc[R][N];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) {
      acc[r][n] = _mm512_setzero_ps();
    }
  const float* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = xpad + v[r].q0;
  const float* wk = t.wp;
  for (int k = 0; k < t.K; ++k, wk += NP) {
    const int64_t o = t.koff[k];
    __m512 a[R];
    for (int r = 0; r < R; ++r) a[r] = _mm512_loadu_ps(xr[r] + o);
    for (int n = 0; n < N; ++n) {
      const __m512 b = _mm512_set1_ps(wk[n]);
      for (int r = 0; r < R; ++r) acc[r][n] = _mm512_fmadd_ps(a[r], b, acc[r][n]);
    }
  }
  for (int n = 0; n < N; ++n) {
    const __m512 b = t.bias ? _mm512_set1_ps(t.bias[n]) : _mm512_setzero_ps();
    float* yc = y + n * t.ohw;
    for (int r = 0; r < R; ++r) {
      __m512 out = _mm512_add_ps(acc[r][n], b);
      if (t.relu) out = _mm512_max_ps(_mm512_setzero_ps(), out);  // max(0, NaN) keeps NaN
      for (int i = 0; i < v[r].nseg; ++i) {
        const Seg& sg = t.segs[v[r].seg0 + i];
        // Lanes outside the mask are neither read nor written (no fault past either end).
        _mm512_mask_storeu_ps(yc + sg.dst, sg.mask, out);
      }
    }
  }
}

using FTileFn = void (*)(const float*, const Vec*, const FTile&, float*);

template <int R, int N>
constexpr FTileFn tile_fn() {
  if constexpr (R * N <= ACC)
    return &ftile<R, N>;
  else
    return nullptr;
}
template <int R, int... N>
constexpr std::array<FTileFn, NP> tile_row(std::integer_sequence<int, N...>) {
  return {tile_fn<R, N + 1>()...};
}
template <int... R>
constexpr std::array<std::array<FTileFn, NP>, RV> tile_table(std::integer_sequence<int, R...>) {
  return {tile_row<R + 1>(std::make_integer_sequence<int, NP>{})...};
}
// kFTiles[R - 1][N - 1]: R vectors x N channels, for R * N <= ACC.
constexpr auto kFTiles = tile_table(std::make_integer_sequence<int, RV>{});

// Vectors per image: rows in pieces of 16, or (stride 1 along H) one flat run over the pitch
// up to the last output, whichever is fewer; *flat says which.
int64_t vectors_per_image(const Conv2dShape& s, int64_t Wp, bool* flat) {
  const int64_t rows = s.OH() * ((s.OW() + 15) / 16);
  const int64_t run = ((s.OH() - 1) * Wp + s.OW() + 15) / 16;
  *flat = s.SH == 1 && run < rows;
  return *flat ? run : rows;
}

// The output of one image as vectors of 16 positions over the padded pitch, and their segments.
// With overlap (rows of at least 16), a row's last vector starts at OW - 16 instead of ending
// past the row: it recomputes a few positions of the one before and stores all 16 lanes.
void plan_vectors(const Conv2dShape& s, int64_t Wp, bool flat, std::vector<Vec>* vecs, std::vector<Seg>* segs,
                  bool overlap = false) {
  const int64_t OH = s.OH(), OW = s.OW();
  const int64_t qend = (OH - 1) * Wp + OW;
  auto add = [&](int64_t dst, int lo, int hi) {  // lanes [lo, hi) of the last vector
    segs->push_back({dst, static_cast<__mmask16>(mask_for(hi) & ~mask_for(lo))});
    ++vecs->back().nseg;
  };
  if (!flat) {
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ow += 16) {
        const int64_t ow0 = overlap && OW >= 16 ? std::min(ow, OW - 16) : ow;
        const int64_t q0 = oh * s.SH * Wp + ow0;
        vecs->push_back({q0, static_cast<int32_t>(segs->size()), 0});
        add(oh * OW + ow0, 0, static_cast<int>(std::min<int64_t>(16, OW - ow0)));
      }
    return;
  }
  for (int64_t q0 = 0; q0 < qend; q0 += 16) {
    vecs->push_back({q0, static_cast<int32_t>(segs->size()), 0});
    for (int64_t oh = q0 / Wp; oh < OH && oh * Wp < q0 + 16; ++oh) {
      const int64_t lo = std::max(q0, oh * Wp) - q0, hi = std::min(q0 + 16, oh * Wp + OW) - q0;
      if (lo < hi) add(oh * OW + q0 - oh * Wp, static_cast<int>(lo), static_cast<int>(hi));
    }
  }
}

bool forward_pixel_lanes(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                         Activation act, float* y, int nthreads) {
  const Padded pd(s);
  const int64_t OCg = s.OCg(), K = s.Kg(), OHW = s.OH() * s.OW();
  const std::vector<int32_t> koff = tap_offsets(s, pd);
  const int64_t npanel = (OCg + NP - 1) / NP;  // panels of at most NP, as even as possible
  auto panel_start = [&](int64_t p) { return p * OCg / npanel; };
  const std::vector<float> wp = pack_panels(s, w, npanel, NP, panel_start);

  bool flat;
  vectors_per_image(s, pd.Wp, &flat);
  std::vector<Vec> vecs;
  std::vector<Seg> segs;
  plan_vectors(s, pd.Wp, flat, &vecs, &segs);
  const int64_t nvec = static_cast<int64_t>(vecs.size());
  // Tiles of consecutive vectors, as even as possible, as many as the widest panel allows with
  // ACC accumulators (narrow panels take more vectors, keeping enough FMA chains in flight).
  const int64_t rmax = std::min<int64_t>(RV, ACC / ((OCg + npanel - 1) / npanel));
  const int64_t ntile = (nvec + rmax - 1) / rmax;
  auto tile_start = [&](int64_t i) { return i * nvec / ntile; };

  for_each_padded_group(
      s, x, pd, ntile, nthreads, [&](const float* xpad, int64_t b, int64_t g, int64_t t0, int64_t t1) {
        for (int64_t i = t0; i < t1; ++i) {
          const int64_t v0 = tile_start(i), nv = tile_start(i + 1) - v0;
          for (int64_t p = 0; p < npanel; ++p) {
            const int64_t oc0 = panel_start(p), np = panel_start(p + 1) - oc0;
            const FTile t{koff.data(),
                          static_cast<int>(K),
                          wp.data() + (g * npanel + p) * K * NP,
                          bias ? bias + g * OCg + oc0 : nullptr,
                          act == Activation::Relu,
                          OHW,
                          segs.data()};
            kFTiles[nv - 1][np - 1](xpad, vecs.data() + v0, t, y + (b * s.OC + g * OCg + oc0) * OHW);
          }
        }
      });
  return true;
}

// ---- Forward, weights in registers (few taps) ----
//
// At K <= 9 taps per output channel (a first layer on one input channel, a depthwise layer)
// the tiles above spend about as long zeroing, spilling and storing their 24 accumulators as
// on their K FMA steps, and load one input vector per 2 FMAs. Here the weights of N output
// channels stay broadcast in registers while the kernel streams over the image:
// - rows: for 3x3 kernels over one input channel with unit stride and row dilation, each
//   input row's 3 shifted vectors are loaded once and feed the 3 output rows that use it
//   (3 loads per 9N FMAs); the accumulators of 3 output rows rotate through registers.
// - vectors: any other K <= 9: per output vector K loads and N*K FMAs.
// Rows of at least 16 are covered by vectors that overlap at the row's end (the last starts at
// OW - 16), so every store is one unmasked vector; narrower rows are masked. Each output
// element is summed over its taps in the same order as in the tiles above (from zero, then
// the bias), so every forward path gives the same bits.

constexpr int KFEW = 9;    // most taps for these kernels
constexpr int NFEW = 6;    // most channels per pass
constexpr int WREGS = 18;  // weight registers of the vector kernel
constexpr int nfew(int K) { return std::min(NFEW, WREGS / K); }

struct Stream {
  const int32_t* koff;  // K tap offsets into the padded group image
  const float* w;       // w[oc][k] of the pass's first channel, row pitch K
  const float* bias;    // the pass's first channel, or null
  bool relu;
  int64_t ohw;  // channel stride of y
};

inline __m512 epilogue(__m512 acc, __m512 b, bool relu) {
  const __m512 out = _mm512_add_ps(acc, b);
  return relu ? _mm512_max_ps(_mm512_setzero_ps(), out) : out;  // max(0, NaN) keeps NaN
}

// Weights w[n][k] and biases b[n] of N channels, broadcast.
template <int K, int N>
inline void load_weights(const Stream& t, __m512 (&w)[N][K], __m512 (&b)[N]) {
  for (int n = 0; n < N; ++n) {
    for (int k = 0; k < K; ++k) w[n][k] = _mm512_set1_ps(t.w[n * K + k]);
    b[n] = t.bias ? _mm512_set1_ps(t.bias[n]) : _mm512_setzero_ps();
  }
}

// Vectors: output vectors v[0, nv) of one image (segments segs), N channels.
template <int K, int N>
void wstream(const float* xpad, const Vec* v, int64_t nv, const Seg* segs, const Stream& t, float* y) {
  __m512 w[N][K], b[N];
  load_weights<K, N>(t, w, b);
  int32_t off[K];
  for (int k = 0; k < K; ++k) off[k] = t.koff[k];
  for (int64_t i = 0; i < nv; ++i) {
    const float* p = xpad + v[i].q0;
    __m512 acc[N];
    for (int n = 0; n < N; ++n) acc[n] = _mm512_setzero_ps();
#pragma GCC unroll 9
    for (int k = 0; k < K; ++k) {
      const __m512 a = _mm512_loadu_ps(p + off[k]);
      for (int n = 0; n < N; ++n) acc[n] = _mm512_fmadd_ps(a, w[n][k], acc[n]);
    }
    const Seg* sg = segs + v[i].seg0;
    const bool whole = v[i].nseg == 1 && sg->mask == 0xFFFF;
    for (int n = 0; n < N; ++n) {
      const __m512 out = epilogue(acc[n], b[n], t.relu);
      float* yc = y + n * t.ohw;
      if (whole) {
        _mm512_storeu_ps(yc + sg->dst, out);
      } else {
        for (int j = 0; j < v[i].nseg; ++j) _mm512_mask_storeu_ps(yc + sg[j].dst, sg[j].mask, out);
      }
    }
  }
}

using WStreamFn = void (*)(const float*, const Vec*, int64_t, const Seg*, const Stream&, float*);

template <int K, int N>
constexpr WStreamFn wstream_fn() {
  if constexpr (N <= nfew(K))
    return &wstream<K, N>;
  else
    return nullptr;
}
template <int K, int... N>
constexpr std::array<WStreamFn, NFEW> wstream_row(std::integer_sequence<int, N...>) {
  return {wstream_fn<K, N + 1>()...};
}
template <int... K>
constexpr std::array<std::array<WStreamFn, NFEW>, KFEW> wstream_table(std::integer_sequence<int, K...>) {
  return {wstream_row<K + 1>(std::make_integer_sequence<int, NFEW>{})...};
}
// kWStreams[K - 1][N - 1], for N <= nfew(K)
constexpr auto kWStreams = wstream_table(std::make_integer_sequence<int, KFEW>{});

// Rows: output rows [oh0, oh1) at columns ow0 of one image, N channels, 3x3 taps over one
// input channel, unit stride and row dilation (input row r feeds output rows r - kh).
constexpr int NROWS = 2;  // channels per pass: 18 weights + 6 accumulators + 3 inputs
struct RowGeom {
  int64_t Wp, OW, oh0, oh1;
  int32_t dw;      // column dilation
  __mmask16 mask;  // lanes stored: all where OW >= 16
};

template <int N>
void wrows(const float* xpad, const RowGeom& g, const Stream& t, float* y) {
  __m512 w[N][9], b[N];
  load_weights<9, N>(t, w, b);
  const int64_t dw = g.dw;
  for (int64_t ow = 0; ow < g.OW; ow += 16) {
    const int64_t ow0 = g.OW >= 16 ? std::min(ow, g.OW - 16) : 0;
    __m512 acc[3][N];  // acc[oh % 3]: output row oh
    // Input row r: kh = r - oh for the output rows oh in [max(oh0, r - 2), min(oh1 - 1, r)].
    // S = r % 3 at compile time, so the rotating accumulators stay in registers.
    auto row = [&](int64_t r, auto S) {
      constexpr int s0 = decltype(S)::value, s1 = (s0 + 2) % 3, s2 = (s0 + 1) % 3;
      const float* p = xpad + r * g.Wp + ow0;
      const __m512 a0 = _mm512_loadu_ps(p), a1 = _mm512_loadu_ps(p + dw), a2 = _mm512_loadu_ps(p + 2 * dw);
      const bool k2 = r - 2 >= g.oh0 && r - 2 < g.oh1, k1 = r - 1 >= g.oh0 && r - 1 < g.oh1,
                 k0 = r >= g.oh0 && r < g.oh1;
      for (int n = 0; n < N; ++n) {
        if (k2) {  // output row r - 2 gets its last kernel row and is stored
          __m512 c = _mm512_fmadd_ps(a0, w[n][6], acc[s2][n]);
          c = _mm512_fmadd_ps(a1, w[n][7], c);
          c = _mm512_fmadd_ps(a2, w[n][8], c);
          _mm512_mask_storeu_ps(y + n * t.ohw + (r - 2) * g.OW + ow0, g.mask, epilogue(c, b[n], t.relu));
        }
        if (k1) {
          __m512 c = _mm512_fmadd_ps(a0, w[n][3], acc[s1][n]);
          c = _mm512_fmadd_ps(a1, w[n][4], c);
          acc[s1][n] = _mm512_fmadd_ps(a2, w[n][5], c);
        }
        if (k0) {  // output row r starts
          __m512 c = _mm512_fmadd_ps(a0, w[n][0], _mm512_setzero_ps());
          c = _mm512_fmadd_ps(a1, w[n][1], c);
          acc[s0][n] = _mm512_fmadd_ps(a2, w[n][2], c);
        }
      }
    };
    using I0 = std::integral_constant<int, 0>;
    using I1 = std::integral_constant<int, 1>;
    using I2 = std::integral_constant<int, 2>;
    int64_t r = g.oh0;
    const int64_t rend = g.oh1 + 2;  // the last output row's last input row, + 1
    // Start at a multiple of 3 below oh0 so the slot of row r is r % 3 (rows before oh0 do
    // nothing but load).
    for (r -= r % 3; r + 3 <= rend; r += 3) {
      row(r, I0{});
      row(r + 1, I1{});
      row(r + 2, I2{});
    }
    if (r < rend) row(r, I0{});
    if (r + 1 < rend) row(r + 1, I1{});
  }
}

using WRowsFn = void (*)(const float*, const RowGeom&, const Stream&, float*);
constexpr WRowsFn kWRows[NROWS] = {&wrows<1>, &wrows<2>};

// Which few-taps kernel serves s, if any: rows where they apply, else vectors up to KVEC taps
// (beyond, at 2 FMAs per load, the tiles above are as fast).
constexpr int KVEC = 4;
bool rows_kernel(const Conv2dShape& s) {
  return s.Cg() == 1 && s.KH == 3 && s.KW == 3 && s.SH == 1 && s.DH == 1;
}

bool forward_few_taps(const Conv2dShape& s, const float* x, const float* w, const float* bias, Activation act,
                      float* y, int nthreads) {
  const Padded pd(s);
  const int64_t OCg = s.OCg(), K = s.Kg(), OH = s.OH(), OW = s.OW(), OHW = OH * OW;
  const std::vector<int32_t> koff = tap_offsets(s, pd);
  const bool rows = rows_kernel(s);
  // Passes of at most nmax channels, as even as possible.
  const int nmax = rows ? NROWS : nfew(static_cast<int>(K));
  const int64_t npass = (OCg + nmax - 1) / nmax;
  auto pass_start = [&](int64_t p) { return p * OCg / npass; };
  auto stream = [&](int64_t g, int64_t p) {
    const int64_t oc0 = g * OCg + pass_start(p);
    return Stream{koff.data(), w + oc0 * K, bias ? bias + oc0 : nullptr, act == Activation::Relu, OHW};
  };

  if (rows) {  // work units: output rows
    for_each_padded_group(
        s, x, pd, OH, nthreads, [&](const float* xpad, int64_t b, int64_t g, int64_t r0, int64_t r1) {
          const RowGeom geom{pd.Wp,
                             OW,
                             r0,
                             r1,
                             static_cast<int32_t>(s.DW),
                             mask_for(static_cast<int>(std::min<int64_t>(16, OW)))};
          for (int64_t p = 0; p < npass; ++p) {
            const int64_t n = pass_start(p + 1) - pass_start(p);
            kWRows[n - 1](xpad, geom, stream(g, p), y + (b * s.OC + g * OCg + pass_start(p)) * OHW);
          }
        });
    return true;
  }
  // Work units: output vectors; rows of at least 16 as overlapping whole vectors, narrower
  // ones as the tiles plan them.
  bool flat = false;
  if (OW < 16) vectors_per_image(s, pd.Wp, &flat);
  std::vector<Vec> vecs;
  std::vector<Seg> segs;
  plan_vectors(s, pd.Wp, flat, &vecs, &segs, /*overlap=*/true);
  const int64_t nvec = static_cast<int64_t>(vecs.size());
  for_each_padded_group(
      s, x, pd, nvec, nthreads, [&](const float* xpad, int64_t b, int64_t g, int64_t v0, int64_t v1) {
        for (int64_t p = 0; p < npass; ++p) {
          const int64_t n = pass_start(p + 1) - pass_start(p);
          kWStreams[K - 1][n - 1](xpad, vecs.data() + v0, v1 - v0, segs.data(), stream(g, p),
                                  y + (b * s.OC + g * OCg + pass_start(p)) * OHW);
        }
      });
  return true;
}

// ---- Forward, channels in lanes ----
//
// Tile: up to 14 output pixels of one output row x 32 output channels (28 accumulators). Per
// k: 2 loads of packed weights and the tile's pixels broadcast from the padded image (14
// consecutive floats at xpad + koff[k] + oh*Wp + ow0). The tile is transposed in registers to
// channel-major for the NCHW store, after bias and ReLU.

constexpr int MR = 14;  // pixels per tile (broadcast operand)

struct Tile {
  const int32_t* koff;  // K offsets into the padded group image: c*Hp*Wp + kh*DH*Wp + kw*DW
  int K;
  const float* wp;    // weight panel [K][32], zero beyond the valid channels
  int nr;             // valid channels of the panel (1..32)
  const float* bias;  // bias of the panel's first channel, or null
  bool relu;
  int64_t ohw;  // channel stride of y
};

// Bias and ReLU on one 16-channel vector per pixel, then the mr x 16 block transposed and
// stored as 16 channel rows of mr pixels.
template <int mr>
inline void store16(__m512 (&acc)[mr], int nch, const float* bias, bool relu, float* y, int64_t ohw) {
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

bool forward_channel_lanes(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                           Activation act, float* y, int nthreads) {
  const Padded pd(s);
  const int64_t OCg = s.OCg(), K = s.Kg(), OH = s.OH(), OW = s.OW(), OHW = OH * OW;
  const std::vector<int32_t> koff = tap_offsets(s, pd);
  const int64_t npanel = (OCg + NR - 1) / NR;  // panels of 32, the last one partly zero
  const std::vector<float> wp =
      pack_panels(s, w, npanel, NR, [&](int64_t p) { return std::min<int64_t>(p * NR, OCg); });
  const int64_t ntile = (OW + MR - 1) / MR, P = (OW + ntile - 1) / ntile;  // even tiles <= 14

  for_each_padded_group(s, x, pd, OH, nthreads,
                        [&](const float* xpad, int64_t b, int64_t g, int64_t r0, int64_t r1) {
                          for (int64_t p = 0; p < npanel; ++p) {
                            const int nr = static_cast<int>(std::min<int64_t>(NR, OCg - p * NR));
                            const Tile t{koff.data(),
                                         static_cast<int>(K),
                                         wp.data() + (g * npanel + p) * K * NR,
                                         nr,
                                         bias ? bias + g * OCg + p * NR : nullptr,
                                         act == Activation::Relu,
                                         OHW};
                            float* yp = y + (b * s.OC + g * OCg + p * NR) * OHW;
                            for (int64_t oh = r0; oh < r1; ++oh)
                              for (int64_t ow0 = 0; ow0 < OW; ow0 += P) {
                                const int mr = static_cast<int>(std::min(P, OW - ow0));
                                const TileFn fn = nr > 16 ? kTiles2[mr - 1] : kTiles1[mr - 1];
                                fn(xpad + oh * pd.Wp + ow0, t, yp + oh * OW + ow0);
                              }
                          }
                        });
  return true;
}

bool forward_direct(const Conv2dShape& s, const float* x, const float* w, const float* bias, Activation act,
                    float* y, int nthreads) {
  if (s.SW != 1 || s.B < 1) return false;  // the im2col path serves strided rows
  const Padded pd(s);
  if (pd.size > INT32_MAX) return false;
  // Channels in lanes where pixel vectors would leave more than a tenth of their lanes idle
  // (14x14: 87.5% used) and it applies (stride 1, at least 16 output channels per group).
  if (rows_kernel(s) || s.Kg() <= KVEC) return forward_few_taps(s, x, w, bias, act, y, nthreads);
  bool flat;
  const int64_t nvec = vectors_per_image(s, pd.Wp, &flat);
  const bool sparse = s.OH() * s.OW() * 10 < nvec * 16 * 9;
  if (sparse && s.SH == 1 && s.OCg() >= 16) return forward_channel_lanes(s, x, w, bias, act, y, nthreads);
  return forward_pixel_lanes(s, x, w, bias, act, y, nthreads);
}

// Direct stride-1 conv2d backward_weight for AVX-512, for 3-wide kernels (KW = 3).
//
// dw[oc, k] = sum over images and output pixels of dy[oc, pixel] * xpad[koff[k] + pixel].
// Tile: 2 kernel rows (c, kh) x 3 taps kw = 6 k's x 64 output channels, or 4 rows (12 k's) x
// 32 channels where the channels per group are not a multiple of 64 (24 accumulators either
// way), reduced over the pixels of one image: per pixel 4 (2) loads of dy (transposed to
// pixel-major panels of 64 (32) channels) and 6 (12) broadcasts from row pointers of the
// padded image. The 64-wide tile issues fewer instructions per FMA: 4% faster at 32->64. The batch is split
// into a fixed number of chunks (independent of the thread count); each chunk sums its images
// in order into its own (K x OC) partial, and the partials are added in chunk order, so the
// result does not depend on the thread count.
constexpr int KW3 = 3;
constexpr int kChunks = 8;

template <int NG, int NV>
void wtile(const float* const* q, int dw, const float* dyt, int64_t OH, int64_t OW, int64_t Wp, float* part,
           int64_t ldp) {
  constexpr int PW = NV == 4 ? 64 : 32;  // the dyt panel's width
  __m512 c[NV][NG * KW3];
  for (int u = 0; u < NV; ++u)
    for (int r = 0; r < NG * KW3; ++r) c[u][r] = _mm512_setzero_ps();
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* d = dyt + oh * OW * PW;
    for (int64_t ow = 0; ow < OW; ++ow, d += PW) {
      const int64_t pix = oh * Wp + ow;
      __m512 b[NV];
#pragma GCC unroll 4
      for (int u = 0; u < NV; ++u) b[u] = _mm512_loadu_ps(d + 16 * u);
#pragma GCC unroll 4
      for (int j = 0; j < NG; ++j) {
#pragma GCC unroll 3
        for (int kw = 0; kw < KW3; ++kw) {
          const __m512 a = _mm512_set1_ps(q[j][pix + kw * dw]);
#pragma GCC unroll 4
          for (int u = 0; u < NV; ++u) c[u][j * KW3 + kw] = _mm512_fmadd_ps(a, b[u], c[u][j * KW3 + kw]);
        }
      }
    }
  }
  for (int r = 0; r < NG * KW3; ++r) {  // partial[k][oc] += tile, k-major rows of the panel
    float* p = part + r * ldp;
    for (int u = 0; u < NV; ++u)
      _mm512_storeu_ps(p + 16 * u, _mm512_add_ps(_mm512_loadu_ps(p + 16 * u), c[u][r]));
  }
}

using WTileFn = void (*)(const float* const*, int, const float*, int64_t, int64_t, int64_t, float*, int64_t);
// [vectors per panel row: 1, 2, 4][(c, kh) rows per tile - 1]: 24 accumulators at most
constexpr WTileFn kWTiles[3][4] = {
    {&wtile<1, 1>, &wtile<2, 1>, &wtile<3, 1>, &wtile<4, 1>},
    {&wtile<1, 2>, &wtile<2, 2>, &wtile<3, 2>, &wtile<4, 2>},
    {&wtile<1, 4>, &wtile<2, 4>, nullptr, nullptr},
};

bool backward_weight_direct(const Conv2dShape& s, const float* dy, const float* x, float* dw, int nthreads) {
  const int64_t OCg = s.OCg(), Cg = s.Cg(), K = s.Kg();
  if (s.SH != 1 || s.SW != 1 || s.KW != KW3 || OCg < 16 || s.B < 1) return false;
  const int64_t OH = s.OH(), OW = s.OW(), OHW = OH * OW;
  const Padded pd(s);
  const int64_t Wp = pd.Wp, plane = pd.plane;
  // Panels of 64 output channels (4 vectors x 2 kernel rows per tile) where the channels fill
  // them, else of 32 (2 vectors x 4 rows): 24 accumulators either way; the 64-wide tile loads
  // 4 + 6 floats per 24 FMAs where the 32-wide one loads 2 + 12 (fewer instructions per FMA).
  const int64_t pw = OCg % 64 == 0 ? 64 : 32, maxrows = pw == 64 ? 2 : 4;
  const int64_t npanel = (OCg + pw - 1) / pw, ocp = npanel * pw;  // channels padded to panels
  const int64_t rows = Cg * s.KH;                                 // (c, kh) pairs
  // (c, kh) rows per tile: at most maxrows, spread evenly (9 rows: 3 + 3 + 3, not 4 + 4 + 1)
  const int64_t ntile_rows = (rows + maxrows - 1) / maxrows;
  const int64_t gstep = (rows + ntile_rows - 1) / ntile_rows;
  const int64_t nchunk = std::min<int64_t>(kChunks, s.B);
  const int64_t xg_size = Cg * s.H * s.W;

  // partial[chunk][g][k][oc padded]
  std::vector<float> part(static_cast<size_t>(nchunk * s.G * K * ocp), 0.0f);
  const int nt_used = static_cast<int>(std::min<int64_t>(nthreads, nchunk));
  // Per-thread scratch, allocated before the parallel region (nothing may throw inside it);
  // the padding of xpad and the channels past OC/G in dyt stay zero.
  std::vector<AlignedFloats> xpads;
  for (int i = 0; i < nt_used; ++i) xpads.push_back(aligned_zeros(static_cast<size_t>(pd.size)));
  // Not the (count, value) constructor: its std:: helper compiled here (AVX-512) is a weak
  // symbol that csrc/ops/conv2d.cpp also instantiates, and the linker may keep this copy for
  // both (scripts/check_baseline_isa.py).
  std::vector<std::vector<float>> dyts(nt_used);
  for (std::vector<float>& d : dyts) d.assign(static_cast<size_t>(npanel * OHW * pw), 0.0f);
  parallel(nt_used, [&](int tid, int nt) {
    long c0, c1;
    split_range(nchunk, tid, nt, &c0, &c1);
    float* xpad = xpads[tid].get();
    std::vector<float>& dyt = dyts[tid];
    for (long chunk = c0; chunk < c1; ++chunk) {
      long b0, b1;
      split_range(s.B, static_cast<int>(chunk), static_cast<int>(nchunk), &b0, &b1);
      for (long b = b0; b < b1; ++b) {
        for (int64_t g = 0; g < s.G; ++g) {
          pad_interior(s, pd, x + (b * s.G + g) * xg_size, xpad);
          // dyt[panel][pixel][32] = dy[b, g*OCg + panel*32 + j, pixel], 16 x 16 blocks
          const float* dyg = dy + (b * s.OC + g * OCg) * OHW;
          for (int64_t oc0 = 0; oc0 < OCg; oc0 += 16) {
            const int nch = static_cast<int>(std::min<int64_t>(16, OCg - oc0));
            float* dst = dyt.data() + (oc0 / pw) * OHW * pw + oc0 % pw;
            for (int64_t p0 = 0; p0 < OHW; p0 += 16) {
              const int np = static_cast<int>(std::min<int64_t>(16, OHW - p0));
              __m512 r[16];
              for (int i = 0; i < 16; ++i)
                r[i] = i < nch ? _mm512_maskz_loadu_ps(mask_for(np), dyg + (oc0 + i) * OHW + p0)
                               : _mm512_setzero_ps();
              transpose16(r);
              for (int p = 0; p < np; ++p) _mm512_mask_storeu_ps(dst + (p0 + p) * pw, mask_for(nch), r[p]);
            }
          }
          float* pg = part.data() + (chunk * s.G + g) * K * ocp;
          // the group after this one, whose x and dy the tiles prefetch
          const bool more = g + 1 < s.G || b + 1 < b1;
          const int64_t nb = g + 1 < s.G ? b : b + 1, ng = g + 1 < s.G ? g + 1 : 0;
          const int64_t ntiles = npanel * ((rows + gstep - 1) / gstep);
          int64_t tix = 0;
          for (int64_t pn = 0; pn < npanel; ++pn) {
            const int vi = pw == 64 ? 2 : OCg - pn * pw > 16 ? 1 : 0;  // 4, 2 or 1 vectors
            for (int64_t r0 = 0; r0 < rows; r0 += gstep, ++tix) {
              if (more) {
                prefetch_slice(x + (nb * s.G + ng) * xg_size, xg_size, tix, ntiles);
                prefetch_slice(dy + (nb * s.OC + ng * OCg) * OHW, OCg * OHW, tix, ntiles);
              }
              const int ng = static_cast<int>(std::min<int64_t>(gstep, rows - r0));
              const float* q[4];
              for (int j = 0; j < ng; ++j) {
                const int64_t c = (r0 + j) / s.KH, kh = (r0 + j) % s.KH;
                q[j] = xpad + c * plane + kh * s.DH * Wp;
              }
              kWTiles[vi][ng - 1](q, static_cast<int>(s.DW), dyt.data() + pn * OHW * pw, OH, OW, Wp,
                                  pg + r0 * KW3 * ocp + pn * pw, ocp);
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

const Conv2dKernels conv2d_kernels_avx512{forward_direct, backward_weight_direct, kWinogradKernels};

}  // namespace fastnn
