// Attention for AVX2+FMA: csrc/cpu/attention_impl.h's tiles with register-blocked micro-kernels.
// gemm: a 6 x 16 block of C in ymm registers (12 accumulators, 2 vectors of B, 1 broadcast of A:
// 15 of the 16 ymm), one broadcast of A per row and 2 vector loads of B per k; row tails use the
// smaller instantiations, column tails (head dims not a multiple of 8) maskload/maskstore.
// exp_tile: exp from csrc/cpu/avx2/exp.h over the score rows, 16 lanes at a time.
// transpose: 8 x 8 blocks in registers (the scalar loops' strided accesses cost ~4% of a call).
#include <immintrin.h>

#include "cpu/attention_impl.h"
#include "cpu/avx2/exp.h"

namespace fastnn {
namespace {

inline __m256i lanes_below(int n) {  // lanes [0, n) of one ymm as a maskload mask
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// C[r][0, 8 NV) (= or +=) sum_k A[r*rs + k*ks] B[k][.], r < RR; with TAIL the last vector covers
// only the lanes of `last` (maskload reads nothing past them, maskstore writes nothing).
template <int RR, int NV, bool TAIL>
__attribute__((always_inline)) inline void gemm_ukernel_avx2(int64_t K, const float* A, int64_t rs,
                                                             int64_t ks, const float* B, int64_t ldb,
                                                             float* C, int64_t ldc, bool acc, __m256i last) {
  __m256 c[RR][NV];
#pragma GCC unroll 6
  for (int r = 0; r < RR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      const float* cp = C + r * ldc + 8 * v;
      c[r][v] = !acc ? _mm256_setzero_ps()
                     : (TAIL && v == NV - 1 ? _mm256_maskload_ps(cp, last) : _mm256_loadu_ps(cp));
    }
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = B + k * ldb;
    const float* ak = A + k * ks;
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      bv[v] = TAIL && v == NV - 1 ? _mm256_maskload_ps(bk + 8 * v, last) : _mm256_loadu_ps(bk + 8 * v);
#pragma GCC unroll 6
    for (int r = 0; r < RR; ++r) {
      const __m256 ar = _mm256_broadcast_ss(ak + r * rs);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) c[r][v] = _mm256_fmadd_ps(ar, bv[v], c[r][v]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < RR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* cp = C + r * ldc + 8 * v;
      if (TAIL && v == NV - 1)
        _mm256_maskstore_ps(cp, last, c[r][v]);
      else
        _mm256_storeu_ps(cp, c[r][v]);
    }
}

constexpr int kRR = 6, kNV = 2;

// One column stripe of C (8 NV columns), all M rows: 6-row blocks, then one block of the rest.
// The row loop sits inside (not a call per block): at K = 64 the calls cost ~5% of a product.
template <int NV, bool TAIL>
void gemm_stripe_avx2(int64_t M, int64_t K, const float* A, int64_t rs, int64_t ks, const float* B,
                      int64_t ldb, float* C, int64_t ldc, bool acc, __m256i last) {
  int64_t r0 = 0;
  for (; r0 + kRR <= M; r0 += kRR)
    gemm_ukernel_avx2<kRR, NV, TAIL>(K, A + r0 * rs, rs, ks, B, ldb, C + r0 * ldc, ldc, acc, last);
  A += r0 * rs, C += r0 * ldc;
  switch (M - r0) {
    case 1:
      gemm_ukernel_avx2<1, NV, TAIL>(K, A, rs, ks, B, ldb, C, ldc, acc, last);
      break;
    case 2:
      gemm_ukernel_avx2<2, NV, TAIL>(K, A, rs, ks, B, ldb, C, ldc, acc, last);
      break;
    case 3:
      gemm_ukernel_avx2<3, NV, TAIL>(K, A, rs, ks, B, ldb, C, ldc, acc, last);
      break;
    case 4:
      gemm_ukernel_avx2<4, NV, TAIL>(K, A, rs, ks, B, ldb, C, ldc, acc, last);
      break;
    case 5:
      gemm_ukernel_avx2<5, NV, TAIL>(K, A, rs, ks, B, ldb, C, ldc, acc, last);
      break;
    default:
      break;
  }
}

using Stripe = void (*)(int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                        int64_t, bool, __m256i);
// kStripe[tail][nv - 1]
const Stripe kStripe[2][kNV] = {{&gemm_stripe_avx2<1, false>, &gemm_stripe_avx2<2, false>},
                                {&gemm_stripe_avx2<1, true>, &gemm_stripe_avx2<2, true>}};

// In-register 8x8 transpose: r[i] holds row i; afterwards r[c] holds column c.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {  // pairs of rows interleaved within 128-bit lanes
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {  // u[4i+m], 128-bit lane h: rows 4i..4i+3 of column 4h+m
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {  // column m from the low halves, column 4+m from the high ones
    r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
    r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
  }
}

struct Avx2Kernels {
  static void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t rs, int64_t ks, const float* B,
                   int64_t ldb, float* C, int64_t ldc, bool acc) {
    for (int64_t n0 = 0; n0 < N; n0 += 8 * kNV) {
      const int nn = static_cast<int>(std::min<int64_t>(8 * kNV, N - n0));
      const int nv = (nn + 7) / 8;
      const bool tail = nn % 8 != 0;  // only the last block of columns can be partial
      const __m256i last = lanes_below(nn - 8 * (nv - 1));
      kStripe[tail][nv - 1](M, K, A, rs, ks, B + n0, ldb, C + n0, ldc, acc, last);
    }
  }

  // Two vectors of lanes at a time down all rows: their max shift, running sums and the exp's
  // temporaries fit the 16 ymm registers (all 8 vectors of a row would not).
  // x - m <= 0 here (m is the running max in the forward, the logsumexp in the backward):
  // exp_ps takes its fast path unless a lane is below -86.5, and its clamp at -104 gives exactly
  // 0 (e^-104 is below half the least denormal), which is what a masked -inf score becomes; NaN
  // propagates.
  static void exp_tile(float* st, int rows, const float* m, float* lsum) {
    static_assert(QB % 16 == 0, "exp_tile walks 16 lanes at a time");
    for (int i0 = 0; i0 < QB; i0 += 16) {
      const __m256 m0 = _mm256_loadu_ps(m + i0), m1 = _mm256_loadu_ps(m + i0 + 8);
      __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
      for (int j = 0; j < rows; ++j) {
        float* r = st + j * QB + i0;
        const __m256 p0 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(r), m0));
        const __m256 p1 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(r + 8), m1));
        _mm256_storeu_ps(r, p0);
        _mm256_storeu_ps(r + 8, p1);
        s0 = _mm256_add_ps(s0, p0);
        s1 = _mm256_add_ps(s1, p1);
      }
      if (lsum) _mm256_storeu_ps(lsum + i0, s0), _mm256_storeu_ps(lsum + i0 + 8, s1);
    }
  }

  // dst[c*ldd + r] = scale * src[r*lds + c]: whole 8 x 8 blocks in registers, the edges scalar.
  static void transpose(int64_t rows, int64_t cols, const float* src, int64_t lds, float scale, float* dst,
                        int64_t ldd) {
    const __m256 sv = _mm256_set1_ps(scale);
    const int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (int64_t r0 = 0; r0 < r8; r0 += 8) {
      for (int64_t c0 = 0; c0 < c8; c0 += 8) {
        __m256 x[8];
        for (int i = 0; i < 8; ++i) x[i] = _mm256_loadu_ps(src + (r0 + i) * lds + c0);
        transpose8(x);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (c0 + i) * ldd + r0, _mm256_mul_ps(sv, x[i]));
      }
      for (int64_t c = c8; c < cols; ++c)
        for (int64_t r = r0; r < r0 + 8; ++r) dst[c * ldd + r] = scale * src[r * lds + c];
    }
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = r8; r < rows; ++r) dst[c * ldd + r] = scale * src[r * lds + c];
  }
};

}  // namespace

const AttentionKernels attention_kernels_avx2{attention_forward_tiles<Avx2Kernels>,
                                              attention_backward_tiles<Avx2Kernels>};

}  // namespace fastnn
