// Scaled dot-product attention on the GPU, flash style (the contract of csrc/ops/attention.h:
// q (B, NH, L, HD), k (B, NH, S, HD), v (B, NH, S, DV); s_ij = (scale q_i) . k_j + mask_ij,
// out_i = softmax_j(s_ij) v_j and lse_i = log sum_j exp(s_ij); a query whose keys are all masked
// gets out 0, lse -inf and zero gradients). Nothing of size L x S is ever stored.
//
// Every kernel runs 4 warps (128 threads); tiles are 32 keys x 32 queries (16 in the dq pass).
// Scores: a warp owns rows (queries, or keys in the dk/dv pass), lane l the l-th column of the
// tile, and each score is a dot product summed over d in ascending order from shared memory
// (the same fmaf sequence in all three kernels, so the backward's p is the forward's bit for
// bit). Row statistics are warp butterflies (__shfl_xor_sync); the products with v, dout, k
// and q give each lane the output elements e = lane + 32 c, c < NC, in registers (NC, a
// template: 1, 2 or 4, covers the head dims; HD and DV are at most kAttnMaxHeadDim = 128, which
// keeps every kernel's dynamic shared memory under 48 KiB without the opt-in).
//   forward: one block per (b, h, 32-query tile); key tiles stream through shared memory (keys,
//     then values, in one buffer), online softmax (running max and sum per query, earlier sums
//     rescaled by exp(old max - new max)); out and lse written once. Causal blocks stop at the
//     tile of their last query, and the heaviest blocks are scheduled first.
//   backward: delta_i = dout_i . out_i first (a warp per row, summed in double as the CPU does);
//     then dk, dv: one block per (b, h, 32-key tile) looping over the query tiles that can see
//     it (q and dout in 32-wide column chunks), p_ij = exp(s_ij - lse_i) recomputed,
//     dv_j += p_ij dout_i, ds_ij = p_ij (dout_i . v_j - delta_i), dk_j += ds_ij q_i; and dq: one
//     block per (b, h, 16-query tile) looping over key tiles, dq_i += ds_ij k_j.
// Deterministic: no atomics; every output element is summed by one thread in a fixed order.
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"
#include "ops/attention.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int WARPS = 4, THREADS = WARPS * 32;
constexpr int BK = 32;           // keys per tile (a lane each in the score products)
constexpr int BQ = 32;           // queries per tile, forward and dk/dv
constexpr int RQ = BQ / WARPS;   // rows per warp: queries (forward), keys (dk/dv, BK / WARPS)
constexpr int BQD = 16;          // queries per tile in the dq pass
constexpr int RD = BQD / WARPS;  // its queries per warp
constexpr int CLD = 33;          // row stride of a 32-wide column chunk (conflict-free columns)
static_assert(BK == 32 && BQ == 32, "a lane per key / query of a tile");

// Row stride of the key/value tile buffer: odd, so that lane j reading row j is conflict-free.
__host__ __device__ inline int tile_ld(int hd, int dv) { return (hd > dv ? hd : dv) | 1; }

// min(rest, tile): the rows or columns of a tile that exist.
__host__ __device__ inline int span(int64_t rest, int tile) {
  return rest < tile ? static_cast<int>(rest) : tile;
}

// dst[r * ld + c] = scale * src[r * n + c] for rows r < rows, zero for rows [rows, R).
__device__ __forceinline__ void load_rows(float* dst, int ld, const float* __restrict__ src, int n, int rows,
                                          int R, float scale) {
  for (int e = threadIdx.x; e < R * n; e += THREADS) {
    const int r = e / n, c = e % n;
    dst[r * ld + c] = r < rows ? scale * src[e] : 0.0f;
  }
}

// dst[r * CLD + c] = scale * src[r * n + c0 + c]: columns [c0, c0 + 32) of BQ rows, zero past
// the rows or columns that exist.
__device__ __forceinline__ void load_chunk(float* dst, const float* __restrict__ src, int n, int rows, int c0,
                                           float scale) {
  for (int e = threadIdx.x; e < BQ * 32; e += THREADS) {
    const int r = e / 32, c = e % 32;
    dst[r * CLD + c] = r < rows && c0 + c < n ? scale * src[static_cast<int64_t>(r) * n + c0 + c] : 0.0f;
  }
}

// The score of query i and key j after masking: -inf outside the tile (!inside), above the
// causal diagonal or where a bool mask is false; plus a float mask's value.
__device__ __forceinline__ float masked(const AttentionArgs& a, int64_t b, int64_t h, int64_t i, int64_t j,
                                        bool inside, float s) {
  const bool ok = inside && !(a.causal && j > i);
  const int64_t o = b * a.msb + h * a.msh + i * a.msl + j * a.mss;
  float add = 0.0f;
  bool keep = ok;
  if (ok && a.mask_kind == AttnMask::Bool) keep = static_cast<const unsigned char*>(a.mask)[o] != 0;
  if (ok && a.mask_kind == AttnMask::Float) add = static_cast<const float*>(a.mask)[o];
  return keep ? s + add : -INFINITY;
}

template <int NC>
__global__ void __launch_bounds__(THREADS)
    attention_forward_kernel(const AttentionArgs a, unsigned nqt, float* out, float* lse) {
  FASTNN_DYNAMIC_SHARED(float, smem);
  const int HD = static_cast<int>(a.D), DV = static_cast<int>(a.DV), ld = tile_ld(HD, DV);
  float* qs = smem;          // BQ x HD: scale * q
  float* kv = qs + BQ * HD;  // BK x ld: the key tile, then the value tile
  float* ps = kv + BK * ld;  // BQ x BK: this key tile's exp(s - running max)
  const int lane = threadIdx.x % 32, row0 = threadIdx.x / 32 * RQ;
  // 32-bit divisions (the grid is 32-bit); the last tiles (most keys when causal) first
  const unsigned nh = static_cast<unsigned>(a.NH), pair = blockIdx.x / nqt;
  const int64_t bh = pair, b = pair / nh, h = pair % nh,
                i0 = static_cast<int64_t>(nqt - 1 - blockIdx.x % nqt) * BQ;
  const int iN = span(a.L - i0, BQ);
  const float* kb = a.k + bh * a.S * HD;
  const float* vb = a.v + bh * a.S * DV;
  load_rows(qs, HD, a.q + (bh * a.L + i0) * HD, HD, iN, BQ, a.scale);
  float m[RQ], l[RQ], o[RQ][NC];
#pragma unroll
  for (int r = 0; r < RQ; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c) o[r][c] = 0.0f;
  }
  const int64_t jend = a.causal && i0 + iN < a.S ? i0 + iN : a.S;
  for (int64_t j0 = 0; j0 < jend; j0 += BK) {
    const int jn = span(jend - j0, BK);
    __syncthreads();  // every warp is done with the previous value tile (and qs is written)
    load_rows(kv, ld, kb + j0 * HD, HD, jn, BK, 1.0f);
    __syncthreads();
    float s[RQ];
#pragma unroll
    for (int r = 0; r < RQ; ++r) s[r] = 0.0f;
    const float* kr = kv + lane * ld;
    for (int d = 0; d < HD; ++d) {
      const float kd = kr[d];
#pragma unroll
      for (int r = 0; r < RQ; ++r) s[r] = fmaf(qs[(row0 + r) * HD + d], kd, s[r]);
    }
#pragma unroll
    for (int r = 0; r < RQ; ++r) {
      const float x = masked(a, b, h, i0 + row0 + r, j0 + lane, lane < jn && row0 + r < iN, s[r]);
      const float mnew = fmaxf(m[r], warp_max(x));
      // Nothing visible yet: shift by 0 (p = 0). alpha rescales the sums so far: exactly 1 when
      // the max did not move, 0 when the old max was -inf (those sums are 0).
      const float shift = mnew == -INFINITY ? 0.0f : mnew;
      const float alpha = expf(m[r] - shift);
      const float p = expf(x - shift);
      l[r] = l[r] * alpha + warp_sum(p);
      m[r] = mnew;
#pragma unroll
      for (int c = 0; c < NC; ++c) o[r][c] *= alpha;
      ps[(row0 + r) * BK + lane] = p;
    }
    __syncthreads();  // every warp is done with the key tile
    load_rows(kv, ld, vb + j0 * DV, DV, jn, BK, 1.0f);
    __syncthreads();
    for (int jj = 0; jj < jn; ++jj) {
      float pr[RQ];
#pragma unroll
      for (int r = 0; r < RQ; ++r) pr[r] = ps[(row0 + r) * BK + jj];
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const int e = c * 32 + lane;
        const float vv = e < DV ? kv[jj * ld + e] : 0.0f;
#pragma unroll
        for (int r = 0; r < RQ; ++r) o[r][c] = fmaf(pr[r], vv, o[r][c]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RQ; ++r) {
    if (row0 + r >= iN) break;
    const int64_t i = bh * a.L + i0 + row0 + r;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c)
      if (c * 32 + lane < DV) out[i * DV + c * 32 + lane] = o[r][c] * inv;
    if (lane == 0) lse[i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// delta_i = dout_i . out_i, a warp per row, in double (it is subtracted from dout_i . v_j of
// about its size).
constexpr int DELTA_THREADS = 256, DELTA_ROWS = DELTA_THREADS / 32;
__global__ void __launch_bounds__(DELTA_THREADS)
    attention_delta_kernel(int64_t rows, int DV, const float* __restrict__ dout,
                           const float* __restrict__ out, float* delta) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * DELTA_ROWS + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp leaves together
  double s = 0.0;
  for (int e = lane; e < DV; e += 32) s += static_cast<double>(dout[row * DV + e]) * out[row * DV + e];
  for (int w = 16; w > 0; w >>= 1) s += __shfl_xor_sync(kFullMask, s, w);
  if (lane == 0) delta[row] = static_cast<float>(s);
}

// dk, dv of one key tile: warp rows are keys, lanes queries of the current query tile.
template <int NC>
__global__ void __launch_bounds__(THREADS)
    attention_dkdv_kernel(const AttentionArgs a, unsigned nkt, const float* __restrict__ dout,
                          const float* __restrict__ lse, const float* __restrict__ delta, float* dk,
                          float* dv) {
  FASTNN_DYNAMIC_SHARED(float, smem);
  const int HD = static_cast<int>(a.D), DV = static_cast<int>(a.DV);
  float* ks = smem;           // BK x HD
  float* vs = ks + BK * HD;   // BK x DV
  float* cb = vs + BK * DV;   // BQ x CLD: a column chunk of q (scaled or not) or of dout
  float* pt = cb + BQ * CLD;  // BK x BQ: p transposed
  float* dt = pt + BK * BQ;   // BK x BQ: ds transposed
  const int lane = threadIdx.x % 32, row0 = threadIdx.x / 32 * RQ;
  const unsigned nh = static_cast<unsigned>(a.NH), pair = blockIdx.x / nkt;
  const int64_t bh = pair, b = pair / nh, h = pair % nh, j0 = static_cast<int64_t>(blockIdx.x % nkt) * BK;
  const int jn = span(a.S - j0, BK);
  load_rows(ks, HD, a.k + (bh * a.S + j0) * HD, HD, jn, BK, 1.0f);
  load_rows(vs, DV, a.v + (bh * a.S + j0) * DV, DV, jn, BK, 1.0f);
  float gk[RQ][NC], gv[RQ][NC];
#pragma unroll
  for (int r = 0; r < RQ; ++r)
#pragma unroll
    for (int c = 0; c < NC; ++c) gk[r][c] = gv[r][c] = 0.0f;
  // causal: queries before the tile holding key j0 see none of these keys
  for (int64_t i0 = a.causal ? j0 / BQ * BQ : 0; i0 < a.L; i0 += BQ) {
    const int iN = span(a.L - i0, BQ);
    const int64_t i = i0 + lane;
    const float* qb = a.q + (bh * a.L + i0) * HD;
    const float* gb = dout + (bh * a.L + i0) * DV;
    float shift = 0.0f, di = 0.0f;  // a fully masked query (lse -inf): all its scores are -inf
    if (lane < iN) {
      const float li = lse[bh * a.L + i];
      shift = li == -INFINITY ? 0.0f : li;
      di = delta[bh * a.L + i];
    }
    float s[RQ], dp[RQ], p[RQ];
#pragma unroll
    for (int r = 0; r < RQ; ++r) s[r] = dp[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c) {  // s_ij = (scale q_i) . k_j, over chunks of 32 dims
      if (c * 32 >= HD) break;
      __syncthreads();  // cb (and pt, dt) are no longer read
      load_chunk(cb, qb, HD, iN, c * 32, a.scale);
      __syncthreads();
      const int w = span(HD - c * 32, 32);
      for (int dd = 0; dd < w; ++dd) {
        const float qv = cb[lane * CLD + dd];
#pragma unroll
        for (int r = 0; r < RQ; ++r) s[r] = fmaf(qv, ks[(row0 + r) * HD + c * 32 + dd], s[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < RQ; ++r) {
      const float x = masked(a, b, h, i, j0 + row0 + r, lane < iN && row0 + r < jn, s[r]);
      p[r] = expf(x - shift);
      pt[(row0 + r) * BQ + lane] = p[r];
    }
#pragma unroll
    for (int c = 0; c < NC; ++c) {  // dp_ij = dout_i . v_j, and dv_j += p_ij dout_i, chunk by chunk
      if (c * 32 >= DV) break;
      __syncthreads();
      load_chunk(cb, gb, DV, iN, c * 32, 1.0f);
      __syncthreads();
      const int w = span(DV - c * 32, 32);
      for (int dd = 0; dd < w; ++dd) {
        const float g = cb[lane * CLD + dd];
#pragma unroll
        for (int r = 0; r < RQ; ++r) dp[r] = fmaf(g, vs[(row0 + r) * DV + c * 32 + dd], dp[r]);
      }
      for (int ii = 0; ii < iN; ++ii) {
        const float g = cb[ii * CLD + lane];
#pragma unroll
        for (int r = 0; r < RQ; ++r) gv[r][c] = fmaf(pt[(row0 + r) * BQ + ii], g, gv[r][c]);
      }
    }
#pragma unroll
    for (int r = 0; r < RQ; ++r) dt[(row0 + r) * BQ + lane] = p[r] * (dp[r] - di);
#pragma unroll
    for (int c = 0; c < NC; ++c) {  // dk_j += ds_ij q_i (scale applied at the end)
      if (c * 32 >= HD) break;
      __syncthreads();
      load_chunk(cb, qb, HD, iN, c * 32, 1.0f);
      __syncthreads();
      for (int ii = 0; ii < iN; ++ii) {
        const float qv = cb[ii * CLD + lane];
#pragma unroll
        for (int r = 0; r < RQ; ++r) gk[r][c] = fmaf(dt[(row0 + r) * BQ + ii], qv, gk[r][c]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RQ; ++r) {
    if (row0 + r >= jn) break;
    const int64_t j = bh * a.S + j0 + row0 + r;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int e = c * 32 + lane;
      if (e < HD) dk[j * HD + e] = a.scale * gk[r][c];
      if (e < DV) dv[j * DV + e] = gv[r][c];
    }
  }
}

// dq of one query tile: warp rows are queries, lanes keys of the current key tile.
template <int NC>
__global__ void __launch_bounds__(THREADS)
    attention_dq_kernel(const AttentionArgs a, unsigned nqt, const float* __restrict__ dout,
                        const float* __restrict__ lse, const float* __restrict__ delta, float* dq) {
  FASTNN_DYNAMIC_SHARED(float, smem);
  const int HD = static_cast<int>(a.D), DV = static_cast<int>(a.DV), ld = tile_ld(HD, DV);
  float* qs = smem;           // BQD x HD: scale * q
  float* gs = qs + BQD * HD;  // BQD x DV: dout
  float* kv = gs + BQD * DV;  // BK x ld: the value tile, then the key tile
  float* ds = kv + BK * ld;   // BQD x BK
  const int lane = threadIdx.x % 32, row0 = threadIdx.x / 32 * RD;
  const unsigned nh = static_cast<unsigned>(a.NH), pair = blockIdx.x / nqt;
  const int64_t bh = pair, b = pair / nh, h = pair % nh,
                i0 = static_cast<int64_t>(nqt - 1 - blockIdx.x % nqt) * BQD;
  const int iN = span(a.L - i0, BQD);
  load_rows(qs, HD, a.q + (bh * a.L + i0) * HD, HD, iN, BQD, a.scale);
  load_rows(gs, DV, dout + (bh * a.L + i0) * DV, DV, iN, BQD, 1.0f);
  float shift[RD], di[RD], acc[RD][NC];
#pragma unroll
  for (int r = 0; r < RD; ++r) {
    shift[r] = di[r] = 0.0f;
    if (row0 + r < iN) {
      const float li = lse[bh * a.L + i0 + row0 + r];
      shift[r] = li == -INFINITY ? 0.0f : li;
      di[r] = delta[bh * a.L + i0 + row0 + r];
    }
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[r][c] = 0.0f;
  }
  const float* kb = a.k + bh * a.S * HD;
  const float* vb = a.v + bh * a.S * DV;
  const int64_t jend = a.causal && i0 + iN < a.S ? i0 + iN : a.S;
  for (int64_t j0 = 0; j0 < jend; j0 += BK) {
    const int jn = span(jend - j0, BK);
    float dp[RD], s[RD];
#pragma unroll
    for (int r = 0; r < RD; ++r) dp[r] = s[r] = 0.0f;
    __syncthreads();  // the previous key tile is read (and qs, gs are written)
    load_rows(kv, ld, vb + j0 * DV, DV, jn, BK, 1.0f);
    __syncthreads();
    const float* kr = kv + lane * ld;
    for (int e = 0; e < DV; ++e) {
      const float vv = kr[e];
#pragma unroll
      for (int r = 0; r < RD; ++r) dp[r] = fmaf(gs[(row0 + r) * DV + e], vv, dp[r]);
    }
    __syncthreads();
    load_rows(kv, ld, kb + j0 * HD, HD, jn, BK, 1.0f);
    __syncthreads();
    for (int d = 0; d < HD; ++d) {
      const float kd = kr[d];
#pragma unroll
      for (int r = 0; r < RD; ++r) s[r] = fmaf(qs[(row0 + r) * HD + d], kd, s[r]);
    }
#pragma unroll
    for (int r = 0; r < RD; ++r) {
      const float x = masked(a, b, h, i0 + row0 + r, j0 + lane, lane < jn && row0 + r < iN, s[r]);
      const float p = expf(x - shift[r]);
      ds[(row0 + r) * BK + lane] = p * (dp[r] - di[r]);
    }
    __syncwarp();  // a warp's rows of ds are its own
    for (int jj = 0; jj < jn; ++jj) {
      float dr[RD];
#pragma unroll
      for (int r = 0; r < RD; ++r) dr[r] = ds[(row0 + r) * BK + jj];
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const int e = c * 32 + lane;
        const float kk = e < HD ? kv[jj * ld + e] : 0.0f;
#pragma unroll
        for (int r = 0; r < RD; ++r) acc[r][c] = fmaf(dr[r], kk, acc[r][c]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RD; ++r) {
    if (row0 + r >= iN) break;
    const int64_t i = bh * a.L + i0 + row0 + r;
#pragma unroll
    for (int c = 0; c < NC; ++c)
      if (c * 32 + lane < HD) dq[i * HD + c * 32 + lane] = a.scale * acc[r][c];
  }
}

int chunks(int64_t n) { return n <= 32 ? 1 : n <= 64 ? 2 : 4; }

unsigned grid_of(const char* op, int64_t blocks) {
  if (blocks > 2147483647)
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(blocks) +
                                " tiles exceed the CUDA grid (at most 2^31 - 1)");
  return static_cast<unsigned>(blocks);
}

void check_dims(const char* op, const AttentionArgs& a) {
  if (a.D < 1 || a.DV < 1 || a.D > kAttnMaxHeadDim || a.DV > kAttnMaxHeadDim)
    throw std::invalid_argument(std::string(op) + ": the CUDA kernels take head dims from 1 to " +
                                std::to_string(kAttnMaxHeadDim) + ", got HD " + std::to_string(a.D) +
                                " and DV " + std::to_string(a.DV));
}

template <int NC>
void forward_nc(const AttentionArgs& a, float* out, float* lse, cudaStream_t s) {
  const int64_t nqt = (a.L + BQ - 1) / BQ;
  const size_t smem =
      sizeof(float) * (BQ * a.D + BK * tile_ld(static_cast<int>(a.D), static_cast<int>(a.DV)) + BQ * BK);
  auto* k = &attention_forward_kernel<NC>;
  FASTNN_LAUNCH(k, grid_of("scaled_dot_product_attention_forward", a.B * a.NH * nqt), THREADS, smem, s)(
      a, static_cast<unsigned>(nqt), out, lse);
}

template <int NC>
void dkdv_nc(const AttentionArgs& a, const float* dout, const float* lse, const float* delta, float* dk,
             float* dv, cudaStream_t s) {
  const int64_t nkt = (a.S + BK - 1) / BK;
  const size_t smem = sizeof(float) * (BK * (a.D + a.DV) + BQ * CLD + 2 * BK * BQ);
  auto* k = &attention_dkdv_kernel<NC>;
  FASTNN_LAUNCH(k, grid_of("scaled_dot_product_attention_backward", a.B * a.NH * nkt), THREADS, smem, s)(
      a, static_cast<unsigned>(nkt), dout, lse, delta, dk, dv);
}

template <int NC>
void dq_nc(const AttentionArgs& a, const float* dout, const float* lse, const float* delta, float* dq,
           cudaStream_t s) {
  const int64_t nqt = (a.L + BQD - 1) / BQD;
  const size_t smem =
      sizeof(float) *
      (BQD * (a.D + a.DV) + BK * tile_ld(static_cast<int>(a.D), static_cast<int>(a.DV)) + BQD * BK);
  auto* k = &attention_dq_kernel<NC>;
  FASTNN_LAUNCH(k, grid_of("scaled_dot_product_attention_backward", a.B * a.NH * nqt), THREADS, smem, s)(
      a, static_cast<unsigned>(nqt), dout, lse, delta, dq);
}

}  // namespace

void attention_forward(const AttentionArgs& a, float* out, float* lse, Stream stream) {
  const char* op = "scaled_dot_product_attention_forward";
  check_dims(op, a);
  if (a.B * a.NH * a.L == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (chunks(a.DV)) {
    case 1:
      forward_nc<1>(a, out, lse, s);
      break;
    case 2:
      forward_nc<2>(a, out, lse, s);
      break;
    default:
      forward_nc<4>(a, out, lse, s);
      break;
  }
  check_launch(op);
}

void attention_backward(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                        float* dq, float* dk, float* dv, float* delta, Stream stream) {
  const char* op = "scaled_dot_product_attention_backward";
  check_dims(op, a);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t rows = a.B * a.NH * a.L;
  if (rows > 0) {
    FASTNN_LAUNCH(attention_delta_kernel, grid_of(op, (rows + DELTA_ROWS - 1) / DELTA_ROWS), DELTA_THREADS, 0,
                  s)(rows, static_cast<int>(a.DV), dout, out, delta);
    check_launch(op);
  }
  if (a.B * a.NH * a.S > 0) {  // no queries: the kernel writes zeros
    switch (chunks(a.D > a.DV ? a.D : a.DV)) {
      case 1:
        dkdv_nc<1>(a, dout, lse, delta, dk, dv, s);
        break;
      case 2:
        dkdv_nc<2>(a, dout, lse, delta, dk, dv, s);
        break;
      default:
        dkdv_nc<4>(a, dout, lse, delta, dk, dv, s);
        break;
    }
    check_launch(op);
  }
  if (rows > 0) {  // no keys: the kernel writes zeros
    switch (chunks(a.D)) {
      case 1:
        dq_nc<1>(a, dout, lse, delta, dq, s);
        break;
      case 2:
        dq_nc<2>(a, dout, lse, delta, dq, s);
        break;
      default:
        dq_nc<4>(a, dout, lse, delta, dq, s);
        break;
    }
    check_launch(op);
  }
}

}  // namespace cuda
}  // namespace fastnn
