// Fused scaled dot-product attention (torch.nn.functional.scaled_dot_product_attention, no
// dropout), forward and backward, flash-attention style: O(sequence) extra memory.
//
//   q (B, NH, L, HD), k (B, NH, S, HD), v (B, NH, S, DV), float32 C-contiguous; per (b, h):
//   s_ij = scale * q_i . k_j + mask_ij  (float mask added; bool mask false or causal j > i: -inf)
//   p_ij = softmax_j(s_ij),  out_i = sum_j p_ij v_j,  lse_i = log sum_j exp(s_ij)  (out, lse =)
//   A query row whose keys are all masked (-inf) gets out_i = 0 and lse_i = -inf (never NaN),
//   and zero gradients.
//   backward (p recomputed from q, k, lse; D_i = dout_i . out_i):
//     dv_j = sum_i p_ij dout_i,  ds_ij = p_ij (dout_i . v_j - D_i),
//     dq_i = scale sum_j ds_ij k_j,  dk_j = scale sum_i ds_ij q_i              (dq, dk, dv =)
// Tiles: kAttnBQ queries (the SIMD lanes: score tiles are stored key-major, S^T, so softmax
// statistics are vectors over queries) x kAttnBK keys; the products are register-blocked
// micro-kernels over one tile. Online softmax (running max and sum per query); causal key blocks
// beyond a query block's last query are never visited.
// Masks are read through element strides (0 where a dim broadcasts), never materialised.
// Parallel: forward over (b, h, query block); backward over (b, h), one thread per pair
// (dk/dv accumulate race-free in that thread's key-block buffers). Each output element is
// computed by one fixed sequence of operations: results do not depend on the thread count.
// Scratch per thread: forward (HD + DV + kAttnBK) x kAttnBQ floats; backward
// (2 HD + DV + 2) x L floats plus tiles.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

constexpr int kAttnBQ = 64;  // queries per tile (4 AVX-512 vectors)
constexpr int kAttnBK = 64;  // keys per tile

enum class AttnMask : int { None = 0, Bool = 1, Float = 2 };

struct AttentionArgs {
  int64_t B = 0, NH = 0, L = 0, S = 0, D = 0, DV = 0;
  const float* q = nullptr;  // (B, NH, L, D)
  const float* k = nullptr;  // (B, NH, S, D)
  const float* v = nullptr;  // (B, NH, S, DV)
  AttnMask mask_kind = AttnMask::None;
  const void* mask = nullptr;                  // bool (uint8) or float32, element (b, h, i, j) at
  int64_t msb = 0, msh = 0, msl = 0, mss = 0;  // b*msb + h*msh + i*msl + j*mss
  bool causal = false;                         // top-left aligned: query i sees keys j <= i
  float scale = 1.0f;
};

// The rules of scaled_dot_product_attention_forward / _backward on every device
// (csrc/ops/attention_meta.cpp; ArgError naming the op): q, k, v float32 C-contiguous of 3
// (N, L, HD) or 4 (B, NH, L, HD) dims with matching sizes and head dims of at least 1; scale
// finite (none: 1 / sqrt(HD)); attn_mask left out (present = false), or bool or float32 of any
// strides, broadcastable to (..., L, S), and not with causal (as in torch). The backward also
// checks dout and out (..., L, DV) and lse (..., L). The result holds the sizes, the mask's
// element strides and every pointer (the ArrayRefs' data: host or device), ready for either
// device's kernels. The outputs: attention_out_shape (out, dout's shape), attention_lse_shape
// (lse), and q's, k's and v's shapes (dq, dk, dv).
AttentionArgs attention_forward_meta(const ArrayRef& q, const ArrayRef& k, const ArrayRef& v,
                                     const ArrayRef& mask, bool causal, std::optional<double> scale);
AttentionArgs attention_backward_meta(const ArrayRef& dout, const ArrayRef& q, const ArrayRef& k,
                                      const ArrayRef& v, const ArrayRef& out, const ArrayRef& lse,
                                      const ArrayRef& mask, bool causal, std::optional<double> scale);
Shape attention_out_shape(const ArrayRef& q, const AttentionArgs& a);  // (..., L, DV)
Shape attention_lse_shape(const ArrayRef& q, const AttentionArgs& a);  // (..., L)

// out (B, NH, L, DV), lse (B, NH, L).
void attention_forward(const AttentionArgs& a, float* out, float* lse, Isa isa, int nthreads);
// dq like q, dk like k, dv like v, from dout and the forward's out and lse.
void attention_backward(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                        float* dq, float* dk, float* dv, Isa isa, int nthreads);

// The per-ISA kernels (csrc/cpu/attention_impl.h's framework with each unit's micro-kernels):
// forward over work items [w0, w1) of (b, h, query block), backward over (b, h) pairs [p0, p1).
struct AttentionKernels {
  void (*forward)(const AttentionArgs& a, float* out, float* lse, int64_t w0, int64_t w1);
  void (*backward)(const AttentionArgs& a, const float* dout, const float* out, const float* lse, float* dq,
                   float* dk, float* dv, int64_t p0, int64_t p1);
};
extern const AttentionKernels attention_kernels_default, attention_kernels_avx2, attention_kernels_avx512;

}  // namespace fastnn
