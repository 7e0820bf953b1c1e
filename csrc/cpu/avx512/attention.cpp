// Attention for AVX-512: csrc/cpu/attention_impl.h's tiles with register-blocked micro-kernels.
// gemm: an RR x (16 NV) block of C in zmm registers (up to 6 x 64: 24 accumulators), one
// broadcast of A per row and NV vector loads of B per k, the last vector masked for n tails;
// exp_tile: exp from csrc/cpu/avx512/exp.h over whole 64-lane score rows.
#include <immintrin.h>

#include "cpu/attention_impl.h"
#include "cpu/avx512/exp.h"
#include "cpu/avx512/simd.h"

namespace fastnn {
namespace {

template <int RR, int NV>
void ukernel(int64_t K, const float* A, int64_t rs, int64_t ks, const float* B, int64_t ldb, float* C,
             int64_t ldc, bool acc, __mmask16 last) {
  __m512 c[RR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < RR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 mk = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
      c[r][v] = acc ? _mm512_maskz_loadu_ps(mk, C + r * ldc + 16 * v) : _mm512_setzero_ps();
    }
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = B + k * ldb;
    const float* ak = A + k * ks;
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, bk + 16 * v) : _mm512_loadu_ps(bk + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < RR; ++r) {
      const __m512 ar = _mm512_set1_ps(ak[r * rs]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(ar, bv[v], c[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (v == NV - 1)
        _mm512_mask_storeu_ps(C + r * ldc + 16 * v, last, c[r][v]);
      else
        _mm512_storeu_ps(C + r * ldc + 16 * v, c[r][v]);
    }
}

using Ukernel = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t,
                         bool, __mmask16);
constexpr int kRR = 6, kNV = 4;

template <int R, int V>
constexpr Ukernel pick() {
  return &ukernel<R, V>;
}

// table[rr - 1][nv - 1]
const Ukernel kTable[kRR][kNV] = {
    {pick<1, 1>(), pick<1, 2>(), pick<1, 3>(), pick<1, 4>()},
    {pick<2, 1>(), pick<2, 2>(), pick<2, 3>(), pick<2, 4>()},
    {pick<3, 1>(), pick<3, 2>(), pick<3, 3>(), pick<3, 4>()},
    {pick<4, 1>(), pick<4, 2>(), pick<4, 3>(), pick<4, 4>()},
    {pick<5, 1>(), pick<5, 2>(), pick<5, 3>(), pick<5, 4>()},
    {pick<6, 1>(), pick<6, 2>(), pick<6, 3>(), pick<6, 4>()},
};

struct Avx512Kernels {
  static void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t rs, int64_t ks, const float* B,
                   int64_t ldb, float* C, int64_t ldc, bool acc) {
    for (int64_t n0 = 0; n0 < N; n0 += 16 * kNV) {
      const int nn = static_cast<int>(std::min<int64_t>(16 * kNV, N - n0));
      const int nv = (nn + 15) / 16;
      const __mmask16 last = mask_for(nn - 16 * (nv - 1));
      for (int64_t r0 = 0; r0 < M; r0 += kRR) {
        const int rr = static_cast<int>(std::min<int64_t>(kRR, M - r0));
        kTable[rr - 1][nv - 1](K, A + r0 * rs, rs, ks, B + n0, ldb, C + r0 * ldc + n0, ldc, acc, last);
      }
    }
  }

  static void exp_tile(float* st, int rows, const float* m, float* lsum) {
    static_assert(QB == 64, "exp_tile handles 4 vectors of lanes");
    const __m512 ninf = _mm512_set1_ps(kNegInf);
    __m512 mv[4], s[4];
    for (int v = 0; v < 4; ++v) mv[v] = _mm512_loadu_ps(m + 16 * v), s[v] = _mm512_setzero_ps();
    for (int j = 0; j < rows; ++j) {
      float* r = st + j * QB;
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        const __m512 x = _mm512_loadu_ps(r + 16 * v);
        const __mmask16 keep = _mm512_cmp_ps_mask(x, ninf, _CMP_NEQ_UQ);  // -inf: exactly 0
        const __m512 p = _mm512_maskz_mov_ps(keep, exp_parts(_mm512_sub_ps(x, mv[v]), _mm512_setzero_ps()));
        _mm512_storeu_ps(r + 16 * v, p);
        s[v] = _mm512_add_ps(s[v], p);
      }
    }
    if (lsum)
      for (int v = 0; v < 4; ++v) _mm512_storeu_ps(lsum + 16 * v, s[v]);
  }
};

}  // namespace

const AttentionKernels attention_kernels_avx512{attention_forward_tiles<Avx512Kernels>,
                                                attention_backward_tiles<Avx512Kernels>};

}  // namespace fastnn
