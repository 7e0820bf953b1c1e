// Embedding lookup and its dense gradient. weight is (V, D) float32, idx holds T int64 indices
// in [0, V) (any shape, flattened; the binding checks the range):
//
//   forward:   out[t, :] = weight[idx[t], :]                          (out (T, D), overwritten)
//   backward:  dweight = 0;  dweight[idx[t], :] += dy[t, :] for t = 0, 1, ..., T-1;
//              dweight[padding_idx, :] = 0 when padding_idx >= 0      (dweight (V, D), overwritten)
//
// The forward is parallel over rows t. The backward sorts the positions t by index (a stable
// counting sort: each row's positions stay in increasing t) and splits the rows of dweight
// over threads; each row is the sum of its dy rows added in increasing t, so results are
// independent of the thread count (and equal to numpy.add.at's order).
#pragma once
#include <cstdint>

namespace fastnn {

struct EmbeddingArgs {
  int64_t v = 0, d = 0, t = 0;  // rows of weight, embedding size, number of indices
  int64_t padding_idx = -1;     // backward only; < 0: none (the binding normalises torch's negatives)
};

void embedding_forward(const EmbeddingArgs& a, const float* weight, const int64_t* idx, float* out,
                       int nthreads);
void embedding_backward(const EmbeddingArgs& a, const float* dy, const int64_t* idx, float* dweight,
                        int nthreads);

// Portable row kernels (csrc/cpu/embedding.cpp): dst = src, dst = 0, dst += src over d floats.
void emb_copy_row_cpu(float* dst, const float* src, int64_t d);
void emb_zero_row_cpu(float* dst, int64_t d);
void emb_add_row_cpu(float* dst, const float* src, int64_t d);

}  // namespace fastnn
