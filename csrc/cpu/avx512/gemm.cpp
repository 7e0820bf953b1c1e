// f32 GEMM micro-kernel 14x32 for AVX-512 (F), and the framework instantiated for it.
//
// Register tile: 14 rows x 2 zmm (32 columns) = 28 accumulators, 2 zmm of B, 1 broadcast:
// 31 of the 32 zmm registers. Per k: 2 loads of B, 14 broadcasts of packed A, 28 FMAs, so the
// two FMA ports, not the load ports, set the pace. Column tails (nr < 32) use masked loads and
// stores; row tails use the mr < 14 instantiations.
#include <immintrin.h>

#include "cpu/gemm_driver.h"
#include "ops/gemm.h"

namespace fastnn {
namespace {

struct Ukr {
  static constexpr int MR = 14, NR = 32;
  static constexpr int KC = 256;       // B micro-panel 256 x 32 floats = 32 KiB: stays in L1
  static constexpr int MC = 14 * 24;   // A block 336 x 256 floats = 336 KiB: stays in L2
  static constexpr int NC = 32 * 128;  // B panel 256 x 4096 floats = 4 MiB: L3
  static constexpr int NOPACK_B_MAX_M = 4 * MR;

  static inline __mmask16 mask_for(int n) {  // lanes [0, n) of one zmm, n in [0, 16]
    return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
  }

  // Epilogue on one zmm of the tile: out = act(alpha*acc + (beta*C | out) + bias).
  static inline void store(__m512 acc, __mmask16 m, float* out, const float* c,
                           const float* bias, const Epilogue& e) {
    __m512 x = _mm512_mul_ps(_mm512_set1_ps(e.alpha), acc);
    if (e.first) {
      if (e.beta != 0.0f) x = _mm512_fmadd_ps(_mm512_set1_ps(e.beta), _mm512_maskz_loadu_ps(m, c), x);
    } else {
      x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, out));
    }
    if (e.last) {
      if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, bias));
      if (e.relu) x = _mm512_max_ps(_mm512_setzero_ps(), x);  // max(0, NaN) keeps NaN
    }
    _mm512_mask_storeu_ps(out, m, x);
  }

  // NV = zmm per row (1 or 2). FULL: all NR columns valid, no masks in the k loop.
  template <int mr, int NV, bool FULL>
  static inline void compute(int kc, const float* a, const float* b, int64_t ldbk, int nr,
                             const TileOut& o, const Epilogue& e) {
    const __mmask16 m0 = FULL ? 0xFFFF : mask_for(nr);
    const __mmask16 m1 = FULL ? 0xFFFF : mask_for(nr - 16);
    __m512 c0[mr], c1[mr];
#pragma GCC unroll 14
    for (int i = 0; i < mr; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; ++k) {
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
      store(c0[i], m0, o.out + r, o.c + r, o.bias, e);
      if (NV == 2) store(c1[i], m1, o.out + r + 16, o.c + r + 16, o.bias ? o.bias + 16 : nullptr, e);
    }
  }

  template <int mr>
  static void tile(int kc, const float* a, const float* b, int64_t ldbk, int nr,
                   const TileOut& o, const Epilogue& e) {
    if (nr == NR) {
      compute<mr, 2, true>(kc, a, b, ldbk, nr, o, e);
    } else if (nr > 16) {
      compute<mr, 2, false>(kc, a, b, ldbk, nr, o, e);
    } else {
      compute<mr, 1, false>(kc, a, b, ldbk, nr, o, e);
    }
  }
};

}  // namespace

const GemmTile gemm_tile_avx512{Ukr::MR, Ukr::NR, Ukr::KC, Ukr::MC, Ukr::NC};

void gemm_avx512(const GemmArgs& g, int nthreads) { GemmDriver<Ukr>::run(g, nthreads); }

}  // namespace fastnn
