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

namespace cuda {

using Stream = void*;

// out = act(alpha * op(A) op(B) + beta * C + bias[col]), row-major float32; op transposes when
// asked (A stored (K, M) / B stored (N, K)). c may equal out; bias may be null; act 0 = none,
// 1 = relu. Each output element sums its K products in ascending k with fused multiply-adds.
struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  const float* a = nullptr;
  const float* b = nullptr;
  const float* c = nullptr;
  float* out = nullptr;
  int64_t lda = 0, ldb = 0, ldc = 0;
  bool trans_a = false, trans_b = false;
  float alpha = 1.0f, beta = 0.0f;
  const float* bias = nullptr;
  int act = 0;
};
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
void softmax_backward(int64_t outer, int64_t n, int64_t inner, bool log, const float* dy,
                      const float* y, float* dx, Stream stream);

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

// Pooling as in csrc/ops/pool2d.h; the geometry comes checked from pool2d_shape (the host's
// fastnn._core.pool2d_geometry), indices of the max backward checked to lie in [0, H*W).
struct PoolGeom {
  int64_t N = 0, C = 0, H = 0, W = 0, KH = 1, KW = 1, SH = 1, SW = 1, PH = 0, PW = 0, DH = 1, DW = 1;
  int64_t OH = 0, OW = 0;
};
void max_pool2d_forward(const PoolGeom& g, const float* x, float* y, int64_t* idx, Stream stream);
void max_pool2d_backward(const PoolGeom& g, const float* dy, const int64_t* idx, const float* relu_x, float* dx,
                         Stream stream);
void avg_pool2d_forward(const PoolGeom& g, bool count_include_pad, const float* x, float* y, Stream stream);
void avg_pool2d_backward(const PoolGeom& g, bool count_include_pad, const float* dy, float* dx, Stream stream);
void global_avg_pool2d_forward(int64_t planes, int64_t hw, const float* x, float* y, Stream stream);
void global_avg_pool2d_backward(int64_t planes, int64_t hw, const float* dy, float* dx, Stream stream);

// Cross-entropy over rows (M, C) as in csrc/ops/softmax.h: per-row loss and weight (w_t; 0 for
// ignored rows) forward, dx from per-row scales backward; targets already checked.
void cross_entropy_forward(int64_t rows, int64_t C, const float* x, const int64_t* target, const float* weight,
                           int64_t ignore_index, float label_smoothing, float* loss, float* row_weight,
                           Stream stream);
void cross_entropy_backward(int64_t rows, int64_t C, const float* x, const int64_t* target, const float* weight,
                            int64_t ignore_index, float label_smoothing, const float* scale, float* dx,
                            Stream stream);

// Optimizer updates of one tensor of n elements in place, with the arguments and formulas of
// csrc/ops/optim.h (buf / vmax may be null when momentum / amsgrad is off).
void sgd_step(const SgdArgs& a, float* p, const float* g, float* buf, int64_t n, Stream stream);
void adam_step(const AdamArgs& a, float* p, const float* g, float* m, float* v, float* vmax, int64_t n,
               Stream stream);

}  // namespace cuda
}  // namespace fastnn
