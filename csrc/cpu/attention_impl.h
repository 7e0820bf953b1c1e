// Flash-attention framework, written once and compiled into each ISA's translation unit with
// that unit's micro-kernels (a policy type UK):
//   UK::gemm(M, N, K, A, rs, ks, B, ldb, C, ldc, acc):
//       C[r*ldc + n] (= or +=) sum_k A[r*rs + k*ks] * B[k*ldb + n],  r < M, n < N
//     (A read with any strides, B and C row-major: the operand along n is the SIMD one), summed
//     over k in order, so a tile's result does not depend on where it sits;
//   UK::exp_tile(st, rows, m, lsum): st[j*kAttnBQ + i] = exp(st - m[i]) (0 where st is -inf),
//     lsum[i] = sum_j of those when lsum is not null;
//   optional, UK::transpose(rows, cols, src, lds, scale, dst, ldd):
//     dst[c*ldd + r] = scale * src[r*lds + c]; without it the transposes (q and dout into tiles,
//     the output and dq out of them) are the scalar loops below.
// Score tiles are key-major (st[j][i], queries i along the lanes), so the per-query running
// max / sum / logsumexp are vector operations over a row of kAttnBQ lanes. The loops here are
// O(tile) elementwise work; the O(tile x HD) products all go through UK::gemm.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/act_impl.h"
#include "ops/attention.h"

namespace fastnn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int QB = kAttnBQ;
// Causal diagonal blocks are cut into strips of this many keys (and queries): see the forward.
constexpr int kDiagStrip = 16;
static_assert(kAttnBQ == kAttnBK && kAttnBK % kDiagStrip == 0, "diagonal strips need square tiles");

// Sets the masked scores of st (jn keys x QB lanes, key block at j0, query block at i0 with iN
// valid queries) to -inf and adds a float mask: lanes past the last query, the causal triangle,
// and the user's mask of pair (b, h).
inline void mask_tile(const AttentionArgs& a, int64_t b, int64_t h, int64_t i0, int iN, int64_t j0, int jn,
                      float* st) {
  for (int j = 0; j < jn; ++j)
    for (int i = iN; i < QB; ++i) st[j * QB + i] = kNegInf;
  if (a.causal && j0 + jn - 1 > i0) {  // key j0 + j hidden from query i0 + i when j0 + j > i0 + i
    for (int j = 0; j < jn; ++j) {
      const int64_t first = j0 + j - i0;  // lanes i < first are hidden
      const int lim = static_cast<int>(std::min<int64_t>(first, iN));
      for (int i = 0; i < lim; ++i) st[j * QB + i] = kNegInf;
    }
  }
  if (a.mask_kind == AttnMask::None) return;
  const int64_t base = b * a.msb + h * a.msh + j0 * a.mss;
  if (a.msl == 0) {  // the same for every query (a key-padding mask): one value per key row
    for (int j = 0; j < jn; ++j) {
      const int64_t o = base + j * a.mss;
      if (a.mask_kind == AttnMask::Bool) {
        if (!static_cast<const uint8_t*>(a.mask)[o])
          for (int i = 0; i < iN; ++i) st[j * QB + i] = kNegInf;
      } else {
        const float mv = static_cast<const float*>(a.mask)[o];
        for (int i = 0; i < iN; ++i) st[j * QB + i] += mv;
      }
    }
    return;
  }
  for (int i = 0; i < iN; ++i) {  // general: query-major reads of the mask, a strided walk of st
    const int64_t o = base + (i0 + i) * a.msl;
    if (a.mask_kind == AttnMask::Bool) {
      const uint8_t* m = static_cast<const uint8_t*>(a.mask) + o;
      for (int j = 0; j < jn; ++j)
        if (!m[j * a.mss]) st[j * QB + i] = kNegInf;
    } else {
      const float* m = static_cast<const float*>(a.mask) + o;
      for (int j = 0; j < jn; ++j) st[j * QB + i] += m[j * a.mss];
    }
  }
}

// Keys a query block [i0, i0 + iN) can see: [0, S), cut at i0 + iN when causal.
inline int64_t key_end(const AttentionArgs& a, int64_t i0, int iN) {
  return a.causal ? std::min<int64_t>(a.S, i0 + iN) : a.S;
}

template <class UK, class = void>
struct HasTranspose : std::false_type {};
template <class UK>
struct HasTranspose<UK, std::void_t<decltype(&UK::transpose)>> : std::true_type {};

// qt (D x QB) = scale * q rows [0, iN) transposed, zero lanes past iN.
template <class UK>
inline void pack_qt(const float* q, int64_t D, int iN, float scale, float* qt, int64_t ldq) {
  if constexpr (HasTranspose<UK>::value) {
    UK::transpose(iN, D, q, D, scale, qt, ldq);
    for (int64_t d = 0; d < D; ++d)
      for (int i = iN; i < QB; ++i) qt[d * ldq + i] = 0.0f;
    return;
  }
  for (int64_t d = 0; d < D; ++d) {
    float* r = qt + d * ldq;
    for (int i = 0; i < iN; ++i) r[i] = scale * q[i * D + d];
    for (int i = iN; i < QB; ++i) r[i] = 0.0f;
  }
}

template <class UK>
void attention_forward_tiles(const AttentionArgs& a, float* out, float* lse, int64_t w0, int64_t w1) {
  const int64_t D = a.D, DV = a.DV, nqb = (a.L + QB - 1) / QB;
  std::vector<float> buf(static_cast<size_t>((D + DV + kAttnBK + 5) * QB));
  float* qt = buf.data();        // D x QB
  float* ot = qt + D * QB;       // DV x QB: the output tile, key-summed, transposed
  float* st = ot + DV * QB;      // kAttnBK x QB: scores, then probabilities
  float* m = st + kAttnBK * QB;  // running max per query
  float* l = m + QB;             // running sum per query
  float* mt = l + QB;            // this tile's max, then the shift used
  float* lsum = mt + QB;
  float* alpha = lsum + QB;
  for (int64_t w = w0; w < w1; ++w) {
    const int64_t bh = w / nqb, i0 = (w % nqb) * QB, b = bh / a.NH, h = bh % a.NH;
    const int iN = static_cast<int>(std::min<int64_t>(QB, a.L - i0));
    const float* kb = a.k + bh * a.S * D;
    const float* vb = a.v + bh * a.S * DV;
    pack_qt<UK>(a.q + (bh * a.L + i0) * D, D, iN, a.scale, qt, QB);
    std::fill(ot, ot + DV * QB, 0.0f);
    for (int i = 0; i < QB; ++i) m[i] = kNegInf, l[i] = 0.0f;
    const int64_t jend = key_end(a, i0, iN);
    for (int64_t j0 = 0; j0 < jend; j0 += kAttnBK) {
      const int jn = static_cast<int>(std::min<int64_t>(kAttnBK, jend - j0));
      // A causal diagonal block (keys [i0, i0 + 64) of queries [i0, i0 + 64)) in strips of SW:
      // key strip s is hidden from queries [0, s*SW), so those parts (3/8 of the block) are
      // neither computed nor read (mask_tile sets their scores to -inf; the products skip them).
      const bool diag = a.causal && j0 == i0 && jn == kAttnBK && iN == QB;
      if (diag) {
        for (int o = 0; o < kAttnBK; o += kDiagStrip)
          UK::gemm(kDiagStrip, QB - o, D, kb + (j0 + o) * D, D, 1, qt + o, QB, st + o * QB + o, QB, false);
      } else {
        UK::gemm(jn, QB, D, kb + j0 * D, D, 1, qt, QB, st, QB, false);  // st = K_blk (scale Q)^T
      }
      mask_tile(a, b, h, i0, iN, j0, jn, st);
      for (int i = 0; i < QB; ++i) mt[i] = m[i];
      for (int j = 0; j < jn; ++j)
        for (int i = 0; i < QB; ++i) mt[i] = std::max(mt[i], st[j * QB + i]);
      // alpha = exp(old max - new max) rescales what was summed so far: 1 where the max did not
      // change, 0 where nothing was visible yet (l and ot are 0 there). A query with nothing
      // visible keeps max -inf and is shifted by 0 (its probabilities are all 0).
      // (one row of UK::exp_tile: exp(0) is exactly 1, and an old max of -inf gives 0)
      for (int i = 0; i < QB; ++i) {
        alpha[i] = m[i];
        m[i] = mt[i];
        mt[i] = m[i] == kNegInf ? 0.0f : m[i];
      }
      UK::exp_tile(alpha, 1, mt, nullptr);
      bool rescale = false;
      for (int i = 0; i < QB; ++i) rescale |= alpha[i] != 1.0f;
      if (rescale) {
        for (int i = 0; i < QB; ++i) l[i] *= alpha[i];
        for (int64_t e = 0; e < DV; ++e)
          for (int i = 0; i < QB; ++i) ot[e * QB + i] *= alpha[i];
      }
      UK::exp_tile(st, jn, mt, lsum);
      for (int i = 0; i < QB; ++i) l[i] += lsum[i];
      if (diag) {  // query strip [o, o + SW) sees keys [0, o + SW)
        for (int o = 0; o < QB; o += kDiagStrip)
          UK::gemm(DV, kDiagStrip, o + kDiagStrip, vb + j0 * DV, 1, DV, st + o, QB, ot + o, QB, true);
      } else {
        UK::gemm(DV, QB, jn, vb + j0 * DV, 1, DV, st, QB, ot, QB, true);  // ot += V_blk^T P^T
      }
    }
    float* ob = out + (bh * a.L + i0) * DV;
    float* lb = lse + bh * a.L + i0;
    if constexpr (HasTranspose<UK>::value) {  // the same products, 1/l scaled along the lanes
      for (int i = 0; i < QB; ++i) alpha[i] = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
      for (int64_t e = 0; e < DV; ++e)
        for (int i = 0; i < QB; ++i) ot[e * QB + i] *= alpha[i];
      UK::transpose(DV, iN, ot, QB, 1.0f, ob, DV);
      for (int i = 0; i < iN; ++i) lb[i] = l[i] > 0.0f ? m[i] + std::log(l[i]) : kNegInf;
      continue;
    }
    for (int i = 0; i < iN; ++i) {
      const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
      for (int64_t e = 0; e < DV; ++e) ob[i * DV + e] = ot[e * QB + i] * inv;
      lb[i] = l[i] > 0.0f ? m[i] + std::log(l[i]) : kNegInf;
    }
  }
}

// Backward of the (b, h) pairs [p0, p1), key blocks outer: a key block's dk, dv are summed over
// every query block in a tile buffer (race-free: the pair is this thread's), dq over every key
// block in a transposed (D x L) buffer; all sums run in a fixed order.
template <class UK>
void attention_backward_tiles(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                              float* dq, float* dk, float* dv, int64_t p0, int64_t p1) {
  const int64_t D = a.D, DV = a.DV, L = a.L, S = a.S, Lp = (L + QB - 1) / QB * QB;
  constexpr int KB = kAttnBK;
  std::vector<float> buf(static_cast<size_t>((2 * D + DV + 2) * Lp + 2 * KB * QB + KB * (D + DV)));
  float* qt = buf.data();      // D x Lp: scale * q transposed (zero lanes past L)
  float* dot = qt + D * Lp;    // DV x Lp: dout transposed
  float* dqt = dot + DV * Lp;  // D x Lp: sum_j ds_ij k_j, transposed
  float* lsev = dqt + D * Lp;  // Lp: lse
  float* dv_i = lsev + Lp;     // Lp: D_i = dout_i . out_i
  float* st = dv_i + Lp;       // KB x QB: scores, then p
  float* dpt = st + KB * QB;   // KB x QB: dout . v, then ds
  float* dkb = dpt + KB * QB;  // KB x D
  float* dvb = dkb + KB * D;   // KB x DV
  for (int64_t bh = p0; bh < p1; ++bh) {
    const int64_t b = bh / a.NH, h = bh % a.NH;
    const float* qb = a.q + bh * L * D;
    const float* kb = a.k + bh * S * D;
    const float* vb = a.v + bh * S * DV;
    const float* gb = dout + bh * L * DV;
    const float* ob = out + bh * L * DV;
    for (int64_t i0 = 0; i0 < L; i0 += QB) {
      const int iN = static_cast<int>(std::min<int64_t>(QB, L - i0));
      pack_qt<UK>(qb + i0 * D, D, iN, a.scale, qt + i0, Lp);
      pack_qt<UK>(gb + i0 * DV, DV, iN, 1.0f, dot + i0, Lp);
    }
    for (int64_t i = 0; i < Lp; ++i) {
      if (i < L) {
        double s = 0.0;  // D_i in float64: it is subtracted from dout . v_j of similar size
        for (int64_t e = 0; e < DV; ++e) s += static_cast<double>(gb[i * DV + e]) * ob[i * DV + e];
        dv_i[i] = static_cast<float>(s);
        lsev[i] = lse[bh * L + i] == kNegInf ? 0.0f : lse[bh * L + i];  // all its scores are -inf
      } else {
        dv_i[i] = lsev[i] = 0.0f;
      }
    }
    std::fill(dqt, dqt + D * Lp, 0.0f);
    for (int64_t j0 = 0; j0 < S; j0 += KB) {
      const int jn = static_cast<int>(std::min<int64_t>(KB, S - j0));
      std::fill(dkb, dkb + KB * (D + DV), 0.0f);
      // causal: query blocks ending before key j0 see none of this block's keys
      const int64_t first = a.causal ? std::min(j0 / QB * QB, Lp) : 0;
      for (int64_t i0 = first; i0 < L; i0 += QB) {
        const int iN = static_cast<int>(std::min<int64_t>(QB, L - i0));
        // The causal diagonal block skips its hidden parts strip by strip, as in the forward:
        // not computed, not read.
        const bool diag = a.causal && i0 == j0 && jn == KB && iN == QB;
        constexpr int SW = kDiagStrip;
        if (diag) {
          for (int o = 0; o < KB; o += SW)
            UK::gemm(SW, QB - o, D, kb + (j0 + o) * D, D, 1, qt + i0 + o, Lp, st + o * QB + o, QB, false);
        } else {
          UK::gemm(jn, QB, D, kb + j0 * D, D, 1, qt + i0, Lp, st, QB, false);  // the forward's scores
        }
        mask_tile(a, b, h, i0, iN, j0, jn, st);
        UK::exp_tile(st, jn, lsev + i0, nullptr);  // p = exp(s - lse)
        if (diag) {
          for (int o = 0; o < KB; o += SW) {
            UK::gemm(SW, QB - o, DV, vb + (j0 + o) * DV, DV, 1, dot + i0 + o, Lp, dpt + o * QB + o, QB,
                     false);
            for (int j = o; j < o + SW; ++j)
              for (int i = 0; i < o; ++i) dpt[j * QB + i] = 0.0f;  // hidden: p = 0, ds = 0
          }
        } else {
          UK::gemm(jn, QB, DV, vb + j0 * DV, DV, 1, dot + i0, Lp, dpt, QB, false);  // dout_i . v_j
        }
        const float* di = dv_i + i0;
        for (int j = 0; j < jn; ++j)
          for (int i = 0; i < QB; ++i) dpt[j * QB + i] = st[j * QB + i] * (dpt[j * QB + i] - di[i]);
        if (diag) {  // key strip [o, o + SW) takes queries [o, 64); query strip [o, o + SW) keys [0, o + SW)
          for (int o = 0; o < KB; o += SW) {
            UK::gemm(SW, DV, QB - o, st + o * QB + o, QB, 1, gb + (i0 + o) * DV, DV, dvb + o * DV, DV, true);
            UK::gemm(SW, D, QB - o, dpt + o * QB + o, QB, 1, qb + (i0 + o) * D, D, dkb + o * D, D, true);
            UK::gemm(D, SW, o + SW, kb + j0 * D, 1, D, dpt + o, QB, dqt + i0 + o, Lp, true);
          }
        } else {
          UK::gemm(jn, DV, iN, st, QB, 1, gb + i0 * DV, DV, dvb, DV, true);     // dv_j += p^T dout
          UK::gemm(jn, D, iN, dpt, QB, 1, qb + i0 * D, D, dkb, D, true);        // dk_j += ds^T q
          UK::gemm(D, QB, jn, kb + j0 * D, 1, D, dpt, QB, dqt + i0, Lp, true);  // dq^T += k^T ds^T
        }
      }
      float* dkr = dk + (bh * S + j0) * D;
      float* dvr = dv + (bh * S + j0) * DV;
      for (int64_t x = 0; x < jn * D; ++x) dkr[x] = a.scale * dkb[x];
      std::memcpy(dvr, dvb, sizeof(float) * static_cast<size_t>(jn * DV));
    }
    float* dqr = dq + bh * L * D;
    if constexpr (HasTranspose<UK>::value) {
      UK::transpose(D, L, dqt, Lp, a.scale, dqr, D);
      continue;
    }
    for (int64_t i = 0; i < L; ++i)
      for (int64_t d = 0; d < D; ++d) dqr[i * D + d] = a.scale * dqt[d * Lp + i];
  }
}

// Portable micro-kernels: plain loops the compiler vectorises along n (the unit's width).
struct PortableKernels {
  static void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t rs, int64_t ks, const float* B,
                   int64_t ldb, float* C, int64_t ldc, bool acc) {
    constexpr int RB = 4, NB = 64;
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
      const int nn = static_cast<int>(std::min<int64_t>(NB, N - n0));
      for (int64_t r0 = 0; r0 < M; r0 += RB) {
        const int rr = static_cast<int>(std::min<int64_t>(RB, M - r0));
        float c[RB][NB];
        for (int r = 0; r < rr; ++r)
          for (int n = 0; n < nn; ++n) c[r][n] = acc ? C[(r0 + r) * ldc + n0 + n] : 0.0f;
        for (int64_t k = 0; k < K; ++k) {
          const float* bk = B + k * ldb + n0;
          for (int r = 0; r < rr; ++r) {
            const float av = A[(r0 + r) * rs + k * ks];
            for (int n = 0; n < nn; ++n) c[r][n] += av * bk[n];
          }
        }
        for (int r = 0; r < rr; ++r)
          for (int n = 0; n < nn; ++n) C[(r0 + r) * ldc + n0 + n] = c[r][n];
      }
    }
  }

  static void exp_tile(float* st, int rows, const float* m, float* lsum) {
    float s[QB] = {};
    for (int j = 0; j < rows; ++j)
      for (int i = 0; i < QB; ++i) {
        const float x = st[j * QB + i];
        const float p = x == kNegInf ? 0.0f : exp_f(x - m[i]);
        st[j * QB + i] = p;
        s[i] += p;
      }
    if (lsum)
      for (int i = 0; i < QB; ++i) lsum[i] = s[i];
  }
};

}  // namespace
}  // namespace fastnn
