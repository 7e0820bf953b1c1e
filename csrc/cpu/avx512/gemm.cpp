// f32 GEMM micro-kernel 14x32 for AVX-512 (F), and the framework instantiated for it.
//
// Register tile: 14 rows x 2 zmm (32 columns) = 28 accumulators, 2 zmm of B, 1 broadcast:
// 31 of the 32 zmm registers. Per k: 2 loads of B, 14 broadcasts of packed A, 28 FMAs, so the
// two FMA ports, not the load ports, set the pace. Column tails (nr < 32) use masked loads and
// stores; row tails use the mr < 14 instantiations.
#include <immintrin.h>

#include <algorithm>

#include "cpu/avx512/simd.h"
#include "cpu/gemm_driver.h"
#include "ops/gemm.h"

namespace fastnn {
namespace {

struct Ukr {
  static constexpr int MR = 14, NR = 32;
  static constexpr int NOPACK_B_MAX_M = 64;  // batch-64 Linear layers: B read in place (bench/README.md)
  static constexpr bool PACK_B_PER_PANEL = false;

  // KC is past what keeps a B micro-panel (KC x 32) in L1: the micro-kernel streams it from L2
  // with prefetches, and each K block costs a full read and write of C, so fewer passes over C
  // win (bench/README.md; on Zen 4, 1 MiB L2, KC 512 beats 256 by 1-3%). KC: the B micro-panel
  // in 1/16 of L2, at most 512 (64 KiB of B). MC: the A block (MC x KC) in two thirds of L2, at
  // most 336 rows (1 MiB and 2 MiB L2: 336). NC: the B panel (KC x NC) in a quarter of L3, at
  // most 4096 columns.
  static Blocking blocking(const CpuCaches& c) {
    const int kc = static_cast<int>(round_down_to(c.l2 / 16 / (NR * 4), 16, 128, 512));
    return {kc, round_down_to(c.l2 * 2 / 3 / (kc * 4), MR, 4 * MR, 24 * MR),
            round_down_to(c.l3 / 4 / (kc * 4), NR, 8 * NR, 128 * NR)};
  }

  // Epilogue on one zmm of the tile: out = act(alpha*acc + (beta*C | out) + bias).
  static inline void store(__m512 acc, __mmask16 m, float* out, const float* c, const float* bias,
                           const float* row_bias, const Epilogue& e) {
    __m512 x = _mm512_mul_ps(_mm512_set1_ps(e.alpha), acc);
    if (e.first) {
      if (e.beta != 0.0f) x = _mm512_fmadd_ps(_mm512_set1_ps(e.beta), _mm512_maskz_loadu_ps(m, c), x);
    } else {
      x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, out));
    }
    if (e.last) {
      if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, bias));
      if (row_bias) x = _mm512_add_ps(x, _mm512_set1_ps(*row_bias));
      if (e.relu) x = _mm512_max_ps(_mm512_setzero_ps(), x);  // max(0, NaN) keeps NaN
    }
    _mm512_mask_storeu_ps(out, m, x);
  }

  // transpose_pack_scalar's contract, 16 rows x 16 k at a time through transpose16.
  static void transpose_pack(int kc, int rows, int R, const float* src, int64_t ld, float* dst) {
    for (int i0 = 0; i0 < R; i0 += 16) {
      const int nrow = std::max(0, std::min(16, rows - i0));
      const __mmask16 store_mask = mask_for(R - i0);  // padding rows are stored as zeros
      for (int k0 = 0; k0 < kc; k0 += 16) {
        const int nk = std::min(16, kc - k0);
        const __mmask16 km = mask_for(nk);
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = i < nrow ? _mm512_maskz_loadu_ps(km, src + (i0 + i) * ld + k0) : _mm512_setzero_ps();
        transpose16(r);
        for (int c = 0; c < nk; ++c) _mm512_mask_storeu_ps(dst + (k0 + c) * R + i0, store_mask, r[c]);
      }
    }
  }

  // NV = zmm per row (1 or 2). FULL: all NR columns valid, no masks in the k loop. FAR: B was
  // packed by the caller (Epilogue::far_b) and streams from L3: it is also fetched into L2 64 k
  // ahead (a recurrent layer's per-step products: LSTM I=128 H=256 T=128 B=16 1-2% faster, A/B
  // in one process; a B packed a moment ago is in L2 already, where the extra prefetches cost).
  template <int mr, int NV, bool FULL, bool FAR = false>
  static inline void compute(int kc, const float* a, const float* b, int64_t ldbk, int nr, const TileOut& o,
                             const Epilogue& e) {
    const __mmask16 m0 = FULL ? 0xFFFF : mask_for(nr);
    const __mmask16 m1 = FULL ? 0xFFFF : mask_for(nr - 16);
    // Start fetching the C tile now: its rows are far apart in memory and would otherwise
    // miss at the store, after the k loop.
#pragma GCC unroll 14
    for (int i = 0; i < mr; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(o.out + i * o.ldc), _MM_HINT_T0);
      if (NV == 2) _mm_prefetch(reinterpret_cast<const char*>(o.out + i * o.ldc + 31), _MM_HINT_T0);
    }
    __m512 c0[mr], c1[mr];
#pragma GCC unroll 14
    for (int i = 0; i < mr; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; ++k) {
      if (FULL) {  // 8 k ahead: the B micro-panel (KC x 32) outgrows L1 and streams from L2
        _mm_prefetch(reinterpret_cast<const char*>(b + 8 * ldbk), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b + 8 * ldbk + 16), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(a + 8 * MR), _MM_HINT_T0);
        if (FAR) {
          _mm_prefetch(reinterpret_cast<const char*>(b + 64 * ldbk), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(b + 64 * ldbk + 16), _MM_HINT_T1);
        }
      }
      const __m512 b0 = FULL ? _mm512_loadu_ps(b) : _mm512_maskz_loadu_ps(m0, b);
      __m512 b1 = b0;
      if (NV == 2) b1 = FULL ? _mm512_loadu_ps(b + 16) : _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 14
      for (int i = 0; i < mr; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
        if (NV == 2) c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
      }
      a += MR;
      b += ldbk;
    }
#pragma GCC unroll 14
    for (int i = 0; i < mr; ++i) {
      const int64_t r = i * o.ldc;
      const float* rb = o.bias_row ? o.bias_row + i : nullptr;
      store(c0[i], m0, o.out + r, o.c + r, o.bias, rb, e);
      if (NV == 2) store(c1[i], m1, o.out + r + 16, o.c + r + 16, o.bias ? o.bias + 16 : nullptr, rb, e);
    }
  }

  template <int mr>
  static void tile(int kc, const float* a, const float* b, int64_t ldbk, int nr, const TileOut& o,
                   const Epilogue& e) {
    if (nr == NR && e.far_b) {
      compute<mr, 2, true, true>(kc, a, b, ldbk, nr, o, e);
    } else if (nr == NR) {
      compute<mr, 2, true>(kc, a, b, ldbk, nr, o, e);
    } else if (nr > 16) {
      compute<mr, 2, false>(kc, a, b, ldbk, nr, o, e);
    } else {
      compute<mr, 1, false>(kc, a, b, ldbk, nr, o, e);
    }
  }
};

}  // namespace

const GemmKernels gemm_kernels_avx512 = GemmDriver<Ukr>::kernels();

}  // namespace fastnn
