// Host-side entry points of the CUDA kernels (csrc/cuda/*.cu): plain C++ declarations, so the
// bindings compile without CUDA headers. Pointers are device pointers (host pointers under the
// emulator); `stream` is a cudaStream_t (0: the legacy default stream). Each call checks its
// launch and throws std::runtime_error naming the op on a CUDA error. The contracts are the
// CPU ops' (csrc/ops/*.h); what differs on the GPU is said next to each.
#pragma once
#include <cstdint>

namespace fastnn {

struct SgdArgs;
struct AdamArgs;
struct BatchNormArgs;
struct RnnShape;
struct AttentionArgs;
struct Conv2dShape;
struct GemmArgs;
struct Pool2dShape;

namespace cuda {

using Stream = void*;

// gemm as fastnn::GemmArgs (csrc/ops/gemm.h) states it, one product (the binding loops over a
// batch), row-major float32; bias_row and packed operands are the CPU's only (std::invalid_argument
// here). Each output element sums its K products in ascending k with fused multiply-adds.
void gemm(const GemmArgs& g, Stream stream);

// Elementwise activations (kind as fastnn::ActKind: 0 relu, 1 leaky_relu, 2 sigmoid, 3 tanh,
// 4 gelu, 5 gelu_tanh), forward y = act(x) and backward dx = dy * act'(xy), xy being x or y as
// in csrc/ops/act.h. Uses the CUDA math library (expf, tanhf, erfcf): a few ulp.
void act_forward(int kind, float alpha, const float* x, float* y, int64_t n, Stream stream);
void act_backward(int kind, float alpha, const float* dy, const float* xy, float* dx, int64_t n,
                  Stream stream);

// softmax / log_softmax over the middle axis of (outer, n, inner), and their backward, as in
// csrc/ops/softmax.h. inner == 1: one warp per row (shuffle reductions); else one thread per
// (outer, inner) column.
void softmax_forward(int64_t outer, int64_t n, int64_t inner, bool log, const float* x, float* y,
                     Stream stream);
void softmax_backward(int64_t outer, int64_t n, int64_t inner, bool log, const float* dy, const float* y,
                      float* dx, Stream stream);

// Layer norm of (m, n) rows as in csrc/ops/layernorm.h (row sums in float32 block reductions;
// dweight/dbias, when both are given, summed over rows in order by one thread per column).
void layer_norm_forward(int64_t m, int64_t n, const float* x, const float* weight, const float* bias,
                        float eps, float* y, float* mean, float* rstd, Stream stream);
void layer_norm_backward(int64_t m, int64_t n, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* weight, float* dx, float* dweight, float* dbias,
                         Stream stream);

// Embedding as in csrc/ops/embedding.h, indices already checked to lie in [0, v). The backward
// adds with atomicAdd: the order of the additions, and so the last bits, vary between runs.
void embedding_forward(int64_t t, int64_t d, const float* weight, const int64_t* idx, float* out,
                       Stream stream);
void embedding_backward(int64_t v, int64_t t, int64_t d, int64_t padding_idx, const float* dy,
                        const int64_t* idx, float* dweight, Stream stream);

// Pooling as in csrc/ops/pool2d.h on the shape struct that pool2d's meta functions checked;
// the indices of the max backward checked to lie in [0, H*W) by the binding.
void max_pool2d_forward(const Pool2dShape& g, const float* x, float* y, int64_t* idx, Stream stream);
void max_pool2d_backward(const Pool2dShape& g, const float* dy, const int64_t* idx, const float* relu_x,
                         float* dx, Stream stream);
void avg_pool2d_forward(const Pool2dShape& g, bool count_include_pad, const float* x, float* y,
                        Stream stream);
void avg_pool2d_backward(const Pool2dShape& g, bool count_include_pad, const float* dy, float* dx,
                         Stream stream);
void global_avg_pool2d_forward(int64_t planes, int64_t hw, const float* x, float* y, Stream stream);
void global_avg_pool2d_backward(int64_t planes, int64_t hw, const float* dy, float* dx, Stream stream);

// conv2d as in csrc/ops/conv2d.h (NCHW, weight (OC, C/G, KH, KW), padding top/bottom/left/
// right) on the shape struct that conv2d's meta functions checked. Implicit GEMMs with the
// im2col gather done while loading tiles; each output element summed by one thread in a fixed
// order (no atomics: the same result every run). act 0 = none, 1 = relu. backward_weight splits
// its B*OH*OW reduction when the weight is small: it then needs `workspace`, device memory of
// conv2d_backward_weight_workspace(s) floats (0: none, may be null). On the GPU only: sizes
// past 2^30 (a plane, a padded side, a stride, C/G*KH*KW) throw std::invalid_argument; a
// non-finite weight times a zero tap (padding, or a landing tap past dy's border in
// backward_data) gives NaN where the CPU may leave the tap out.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, int act,
                    float* y, Stream stream);
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx, Stream stream);
int64_t conv2d_backward_weight_workspace(const Conv2dShape& s);
void conv2d_backward_weight(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                            float* workspace, Stream stream);
// db[c] = sum of dy (n, oc, hw) over n and hw: a block per channel, fixed order.
void conv2d_backward_bias(int64_t n, int64_t oc, int64_t hw, const float* dy, float* db, Stream stream);

// Cross-entropy over rows (M, C) as in csrc/ops/softmax.h: per-row loss and weight (w_t; 0 for
// ignored rows) forward, dx from per-row scales backward; targets already checked.
void cross_entropy_forward(int64_t rows, int64_t C, const float* x, const int64_t* target,
                           const float* weight, int64_t ignore_index, float label_smoothing, float* loss,
                           float* row_weight, Stream stream);
void cross_entropy_backward(int64_t rows, int64_t C, const float* x, const int64_t* target,
                            const float* weight, int64_t ignore_index, float label_smoothing,
                            const float* scale, float* dx, Stream stream);

// Optimizer updates of one tensor of n elements in place, with the arguments and formulas of
// csrc/ops/optim.h (buf / vmax may be null when momentum / amsgrad is off).
void sgd_step(const SgdArgs& a, float* p, const float* g, float* buf, int64_t n, Stream stream);
void adam_step(const AdamArgs& a, float* p, const float* g, float* m, float* v, float* vmax, int64_t n,
               Stream stream);

// Batch norm of NCHW float32 as in csrc/ops/batchnorm.h (args.n, c, hw, training, momentum,
// eps; null weight / bias / running statistics as there, and the caller's checks: running
// statistics in eval, M = N*H*W != 1 in training). One block per channel; the statistics and
// the backward's sums are float64 (per-thread partial sums, then a fixed-tree block reduction:
// deterministic, and as accurate as the CPU's chunked sums or more).
void batch_norm2d_forward(const BatchNormArgs& a, const float* x, const float* weight, const float* bias,
                          float* running_mean, float* running_var, float* y, float* save_mean,
                          float* save_invstd, Stream stream);
void batch_norm2d_backward(const BatchNormArgs& a, const float* dy, const float* x, const float* weight,
                           const float* save_mean, const float* save_invstd, float* dx, float* dweight,
                           float* dbias, Stream stream);

// grad_norm as in csrc/ops/optim.h: the total norm of order p (2, 1, +inf or another p > 0) of
// `count` float32 arrays xs[i] of ns[i] elements (xs and ns are host arrays of device pointers
// and sizes). Array i's elements are reduced in float64 by grad_norm_partials(ns[i]) blocks (a
// number that depends on ns[i] alone) into consecutive slots of `partials` (device, the sum of
// grad_norm_partials over the arrays), one launch per array; one final block adds all slots in
// order and writes the norm to *out (device). Deterministic. Nothing is copied to the host:
// the caller reads *out back (the grad_norm entry of fastnn._cuda does, and so waits for the
// stream).
constexpr int64_t kGradNormChunk = 4096;      // elements per block below the cap
constexpr int64_t kGradNormMaxBlocks = 1024;  // blocks per array at most
inline int64_t grad_norm_partials(int64_t n) {
  const int64_t b = (n + kGradNormChunk - 1) / kGradNormChunk;
  return b < kGradNormMaxBlocks ? b : kGradNormMaxBlocks;
}
void grad_norm(int64_t count, const float* const* xs, const int64_t* ns, double p, double* partials,
               double* out, Stream stream);

// Recurrent layers (tanh/relu RNN, LSTM, GRU) over a whole sequence, forward and backward
// through time, as csrc/ops/rnn.h: the same arguments, null states and gradients as zeros, and
// the same workspace ws (rnn_ws_size floats and layout), so a forward's ws feeds either
// backward. On the GPU: gemm (above) for the projections and the per-step products,
// fused gate kernels, bias gradients as float64 column sums in row order (no atomics: the same
// result every run). scratch: caller-owned device memory of rnn_scratch_floats(s, backward)
// floats, used between the launches of one call (nothing is allocated here). Throws
// std::invalid_argument before any launch when T*B or G*H exceeds gemm's grid.
int64_t rnn_scratch_floats(const RnnShape& s, bool backward);
void rnn_forward(const RnnShape& s, const float* x, const float* h0, const float* c0, const float* w_ih,
                 const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* h_n, float* c_n,
                 float* ws, float* scratch, Stream stream);
void rnn_backward(const RnnShape& s, const float* dy, const float* dh_n, const float* dc_n, const float* x,
                  const float* h0, const float* c0, const float* w_ih, const float* w_hh, const float* y,
                  const float* ws, float* dx, float* dh0, float* dc0, float* dw_ih, float* dw_hh,
                  float* db_ih, float* db_hh, float* scratch, Stream stream);

// Scaled dot-product attention as in csrc/ops/attention.h (the same AttentionArgs; mask read
// through its element strides), flash style: a block per (b, h, query tile) with an online
// softmax forward; backward delta = rowsum(dout * out) into delta (B * NH * L floats of scratch),
// then dk, dv by key tiles and dq by query tiles, each element summed in a fixed order (no
// atomics: deterministic). HD and DV at most kAttnMaxHeadDim (std::invalid_argument beyond).
// Scores sum their HD products in ascending d with fmaf; expf / logf of the CUDA math library.
constexpr int kAttnMaxHeadDim = 128;
void attention_forward(const AttentionArgs& a, float* out, float* lse, Stream stream);
void attention_backward(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                        float* dq, float* dk, float* dv, float* delta, Stream stream);

}  // namespace cuda
}  // namespace fastnn
