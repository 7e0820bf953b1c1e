// f32 GEMM micro-kernel 6x16 for AVX2+FMA, and the framework instantiated for it.
//
// Register tile: 6 rows x 2 ymm (16 columns) = 12 accumulators, 2 ymm of B, 1 broadcast:
// 15 of the 16 ymm registers. Per k: 2 loads of B, 6 broadcasts, 12 FMAs. Column tails use
// maskload/maskstore; row tails use the mr < 6 instantiations.
#include <immintrin.h>

#include <algorithm>

#include "cpu/avx2/simd.h"
#include "cpu/gemm_driver.h"
#include "ops/gemm.h"

namespace fastnn {
namespace {

struct Ukr {
  static constexpr int MR = 6, NR = 16;
  // B is always packed: read in place, a row-major B's micro-panel is KC rows a whole row of B
  // apart, which fall into a few L1 sets and are evicted between row tiles (batch-64 Linear
  // layer 64x3136x128: 87 GF/s in place, 97 packed, Zen 4 at AVX2).
  static constexpr int NOPACK_B_MAX_M = 0;
  static constexpr bool PACK_B_PER_PANEL = true;
  // A read in place (tile_a_rows) up to 128 rows: 64x3136x128 +2-4%, B stored (N, K) or not;
  // from 256 rows 1-5% slower than packing it (Zen 4 at AVX2).
  static constexpr int64_t A_ROWS_MAX_M = 128;
  // Row-major B copied by the first row tile up to 512 columns (64x3136x{128,256,512}: 0.93-0.95x
  // -> 0.97-1.0x OpenBLAS); 1024 columns and up fell to 0.6-0.8x: each row of B a page apart.
  static constexpr int64_t FIRST_TILE_B_MAX_N = 512;

  // KC: the B micro-panel (KC x 16 floats) fills half of L1, the rest holding the A micro-panel
  // streaming from L2 and the C tile (32 KiB L1: KC 256, 16 KiB of B; 48 KiB: 384). MC: the A
  // block (MC x KC) in half of L2 (Zen 3's 512 KiB: 252 rows; Zen 4's 1 MiB: 510). NC: the B
  // panel (KC x NC) in a quarter of L3, at most 4096 columns.
  static Blocking blocking(const CpuCaches& c) {
    const int kc = static_cast<int>(round_down_to(c.l1d / 2 / (NR * 4), 16, 128, 512));
    return {kc, round_down_to(c.l2 / 2 / (kc * 4), MR, 4 * MR, 128 * MR),
            round_down_to(c.l3 / 4 / (kc * 4), NR, 16 * NR, 256 * NR)};
  }

  static inline __m256i mask_for(int n) {  // lanes [0, n) of one ymm, n clamped to [0, 8]
    return tail_mask(std::clamp(n, 0, 8));
  }

  // A full vector is loaded and stored plainly: vmaskmovps to memory is microcoded on AMD Zen
  // (one per ~10 cycles on Zen 3), which cost ~10% of a 1024^3 product at 12 stores per tile
  // and K block. Masks only at column tails.
  template <bool FULL>
  static inline __m256 load(const float* p, __m256i m) {
    return FULL ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
  }

  template <bool FULL>
  static inline void store(__m256 acc, __m256i m, float* out, const float* c, const float* bias,
                           const float* row_bias, const Epilogue& e) {
    __m256 x = _mm256_mul_ps(_mm256_set1_ps(e.alpha), acc);
    if (e.first) {
      if (e.beta != 0.0f) x = _mm256_fmadd_ps(_mm256_set1_ps(e.beta), load<FULL>(c, m), x);
    } else {
      x = _mm256_add_ps(x, load<FULL>(out, m));
    }
    if (e.last) {
      if (bias) x = _mm256_add_ps(x, load<FULL>(bias, m));
      if (row_bias) x = _mm256_add_ps(x, _mm256_set1_ps(*row_bias));
      if (e.relu) x = _mm256_max_ps(_mm256_setzero_ps(), x);  // max(0, NaN) keeps NaN
    }
    if (FULL) {
      _mm256_storeu_ps(out, x);
    } else {
      _mm256_maskstore_ps(out, m, x);
    }
  }

  // AROWS: A is read in place, row i of the tile at a + i*lda (A stored (M, K), unpacked);
  // otherwise a packed micro-panel, a[k*MR + i]. Same FMAs in the same order either way.
  template <int mr, int NV, bool FULL, bool AROWS, bool COPYB = false>
  static inline void compute(int kc, const float* a, int64_t lda, const float* b, int64_t ldbk, int nr,
                             const TileOut& o, const Epilogue& e, float* bcopy = nullptr) {
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
    const float* a3 = a + 3 * lda;  // AROWS: rows 0-2 from a, rows 3-5 from a3
    for (int k = 0; k < kc; ++k) {
      const __m256 b0 = (FULL || NV == 2) ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
      __m256 b1 = b0;
      if (NV == 2) b1 = FULL ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1);
      if (COPYB) {
        _mm256_store_ps(bcopy, b0);
        _mm256_store_ps(bcopy + 8, b1);
        bcopy += NR;
      }
#pragma GCC unroll 6
      for (int i = 0; i < mr; ++i) {
        const __m256 ai = _mm256_broadcast_ss(AROWS ? (i < 3 ? a + i * lda : a3 + (i - 3) * lda) : a + i);
        c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
        if (NV == 2) c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
      }
      a += AROWS ? 1 : MR;
      a3 += 1;
      b += ldbk;
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; ++i) {
      const int64_t r = i * o.ldc;
      const float* rb = o.bias_row ? o.bias_row + i : nullptr;
      // NV == 2 and not FULL: the first vector is whole (nr > 8), only the second is masked.
      store<FULL || NV == 2>(c0[i], m0, o.out + r, o.c + r, o.bias, rb, e);
      if (NV == 2) store<FULL>(c1[i], m1, o.out + r + 8, o.c + r + 8, o.bias ? o.bias + 8 : nullptr, rb, e);
    }
  }

  // In-register 8x8 transpose: r[i] holds row i (8 floats); afterwards r[c] holds column c.
  static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; ++i) {  // pairs of rows interleaved within 128-bit lanes
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {  // u[4i+m], lane L: rows 4i..4i+3 of column 4L+m
      u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
      u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
      u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int m = 0; m < 4; ++m) {  // low lanes: columns 0-3, high lanes: columns 4-7
      r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
      r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
    }
  }

  // transpose_pack_scalar's contract, 8 rows x 8 k at a time through transpose8: packing A
  // stored (M, K) (R = MR = 6: 6 floats stored per k) and B stored (N, K) (R = NR = 16, a
  // Linear layer's weight). The scalar loop scattered with stride R and cost as much as a
  // third of a batch-64 Linear layer's product.
  static void transpose_pack(int kc, int rows, int R, const float* src, int64_t ld, float* dst) {
    if (R != MR && R % 8 != 0) return transpose_pack_scalar(kc, rows, R, src, ld, dst);
    const int kc8 = kc / 8 * 8;
    for (int i0 = 0; i0 < R; i0 += 8) {
      const int w = std::min(8, R - i0);                     // floats stored per k: 8, or 6 for MR
      const int nrow = std::max(0, std::min(w, rows - i0));  // rows read; the rest are zeros
      for (int k0 = 0; k0 < kc8; k0 += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i)
          r[i] = i < nrow ? _mm256_loadu_ps(src + (i0 + i) * ld + k0) : _mm256_setzero_ps();
        transpose8(r);
        float* d = dst + k0 * R + i0;
        for (int c = 0; c < 8; ++c, d += R) {
          if (w == 8) {
            _mm256_storeu_ps(d, r[c]);
          } else {  // w == 6: four floats, then two
            _mm_storeu_ps(d, _mm256_castps256_ps128(r[c]));
            _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(r[c], 1));
          }
        }
      }
      for (int k = kc8; k < kc; ++k)  // k tail
        for (int i = 0; i < w; ++i) dst[k * R + i0 + i] = i < nrow ? src[(i0 + i) * ld + k] : 0.0f;
    }
  }

  template <int mr, bool AROWS>
  static void any_tile(int kc, const float* a, int64_t lda, const float* b, int64_t ldbk, int nr,
                       const TileOut& o, const Epilogue& e) {
    if (nr == NR) {
      compute<mr, 2, true, AROWS>(kc, a, lda, b, ldbk, nr, o, e);
    } else if (nr > 8) {
      compute<mr, 2, false, AROWS>(kc, a, lda, b, ldbk, nr, o, e);
    } else {
      compute<mr, 1, false, AROWS>(kc, a, lda, b, ldbk, nr, o, e);
    }
  }
  template <int mr>
  static void tile(int kc, const float* a, const float* b, int64_t ldbk, int nr, const TileOut& o,
                   const Epilogue& e) {
    any_tile<mr, false>(kc, a, 0, b, ldbk, nr, o, e);
  }
  template <int mr>
  static void tile_a_rows(int kc, const float* a, int64_t lda, const float* b, int64_t ldbk, int nr,
                          const TileOut& o, const Epilogue& e, float* bcopy) {
    if (bcopy) {
      compute<mr, 2, true, true, true>(kc, a, lda, b, ldbk, nr, o, e, bcopy);
    } else {
      any_tile<mr, true>(kc, a, lda, b, ldbk, nr, o, e);
    }
  }
};

}  // namespace

const GemmKernels gemm_kernels_avx2 = GemmDriver<Ukr>::kernels();

}  // namespace fastnn
