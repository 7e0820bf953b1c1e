// f32 GEMM micro-kernel 6x16 for AVX2+FMA, and the framework instantiated for it.
//
// Register tile: 6 rows x 2 ymm (16 columns) = 12 accumulators, 2 ymm of B, 1 broadcast:
// 15 of the 16 ymm registers. Per k: 2 loads of B, 6 broadcasts, 12 FMAs. Column tails use
// maskload/maskstore; row tails use the mr < 6 instantiations.
#include <immintrin.h>

#include "cpu/gemm_driver.h"
#include "ops/gemm.h"

namespace fastnn {
namespace {

struct Ukr {
  static constexpr int MR = 6, NR = 16;
  static constexpr int KC = 384;      // B micro-panel 384 x 16 floats = 24 KiB: L1
  static constexpr int MC = 6 * 56;   // A block 336 x 384 floats = 504 KiB: L2
  static constexpr int NC = 16 * 256; // B panel 384 x 4096 floats = 6 MiB: L3
  static constexpr int NOPACK_B_MAX_M = 8 * MR;

  static inline __m256i mask_for(int n) {  // lanes [0, n) of one ymm, n clamped to [0, 8]
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
  }

  static inline void store(__m256 acc, __m256i m, float* out, const float* c,
                           const float* bias, const float* row_bias, const Epilogue& e) {
    __m256 x = _mm256_mul_ps(_mm256_set1_ps(e.alpha), acc);
    if (e.first) {
      if (e.beta != 0.0f) x = _mm256_fmadd_ps(_mm256_set1_ps(e.beta), _mm256_maskload_ps(c, m), x);
    } else {
      x = _mm256_add_ps(x, _mm256_maskload_ps(out, m));
    }
    if (e.last) {
      if (bias) x = _mm256_add_ps(x, _mm256_maskload_ps(bias, m));
      if (row_bias) x = _mm256_add_ps(x, _mm256_set1_ps(*row_bias));
      if (e.relu) x = _mm256_max_ps(_mm256_setzero_ps(), x);  // max(0, NaN) keeps NaN
    }
    _mm256_maskstore_ps(out, m, x);
  }

  template <int mr, int NV, bool FULL>
  static inline void compute(int kc, const float* a, const float* b, int64_t ldbk, int nr,
                             const TileOut& o, const Epilogue& e) {
    const __m256i m0 = mask_for(nr), m1 = mask_for(nr - 8);
    // Start fetching the C tile now: its rows are far apart and would miss at the store.
#pragma GCC unroll 6
    for (int i = 0; i < mr; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(o.out + i * o.ldc), _MM_HINT_T0);
      if (NV == 2) _mm_prefetch(reinterpret_cast<const char*>(o.out + i * o.ldc + 15), _MM_HINT_T0);
    }
    __m256 c0[mr], c1[mr];
#pragma GCC unroll 6
    for (int i = 0; i < mr; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
    for (int k = 0; k < kc; ++k) {
      const __m256 b0 = FULL ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
      __m256 b1 = b0;
      if (NV == 2) b1 = FULL ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1);
#pragma GCC unroll 6
      for (int i = 0; i < mr; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i);
        c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
        if (NV == 2) c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
      }
      a += MR;
      b += ldbk;
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; ++i) {
      const int64_t r = i * o.ldc;
      const float* rb = o.bias_row ? o.bias_row + i : nullptr;
      store(c0[i], m0, o.out + r, o.c + r, o.bias, rb, e);
      if (NV == 2) store(c1[i], m1, o.out + r + 8, o.c + r + 8, o.bias ? o.bias + 8 : nullptr, rb, e);
    }
  }

  static void transpose_pack(int kc, int rows, int R, const float* src, int64_t ld, float* dst) {
    transpose_pack_scalar(kc, rows, R, src, ld, dst);
  }

  template <int mr>
  static void tile(int kc, const float* a, const float* b, int64_t ldbk, int nr,
                   const TileOut& o, const Epilogue& e) {
    if (nr == NR) {
      compute<mr, 2, true>(kc, a, b, ldbk, nr, o, e);
    } else if (nr > 8) {
      compute<mr, 2, false>(kc, a, b, ldbk, nr, o, e);
    } else {
      compute<mr, 1, false>(kc, a, b, ldbk, nr, o, e);
    }
  }
};

}  // namespace

const GemmTile gemm_tile_avx2{Ukr::MR, Ukr::NR, Ukr::KC, Ukr::MC, Ukr::NC};

void gemm_avx2(const GemmArgs& g, int nthreads) { GemmDriver<Ukr>::run(g, nthreads); }
void gemm_pack_b_avx2(const float* b, int64_t ldb, bool trans_b, int64_t K, int64_t N, float* dst) {
  GemmDriver<Ukr>::pack_b_full(b, ldb, trans_b, K, N, dst);
}
void gemm_pack_a_avx2(const float* a, int64_t lda, bool trans_a, int64_t M, int64_t K, int64_t k0, int64_t k1,
                     float* dst) {
  GemmDriver<Ukr>::pack_a_full(a, lda, trans_a, M, K, k0, k1, dst);
}

}  // namespace fastnn
