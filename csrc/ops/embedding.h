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
#include <vector>

#include "core/args.h"

namespace fastnn {

struct EmbeddingArgs {
  int64_t v = 0, d = 0, t = 0;  // rows of weight, embedding size, number of indices
  int64_t padding_idx = -1;     // backward only; < 0: none (the binding normalises torch's negatives)
};

// The rules of the entries on every device (csrc/ops/embedding_meta.cpp; ArgError naming op).
// Forward: weight float32 (V, D), indices int64 C-contiguous, padding_idx (has_padding) in
// [-V, V); the output shape is indices.shape + (D,). Backward: dy of indices.shape + (D,),
// num_embeddings >= 0 and V * D within memory, padding_idx normalised into a.padding_idx. Every
// index must lie in [0, V): the binding checks that where the indices are
// (embedding_check_indices on the host; the CUDA binding on the device), each with
// embedding_bad_index's words.
EmbeddingArgs embedding_forward_meta(const char* op, const ArrayRef& weight, const ArrayRef& indices,
                                     bool has_padding, int64_t padding_idx, Shape* out_shape);
EmbeddingArgs embedding_backward_meta(const char* op, const ArrayRef& dy, const ArrayRef& indices,
                                      int64_t num_embeddings, bool has_padding, int64_t padding_idx);
void embedding_check_indices(const char* op, const int64_t* idx, int64_t n, int64_t v);
[[noreturn]] void embedding_bad_index(const char* op, int64_t v, int64_t value, int64_t position);

void embedding_forward(const EmbeddingArgs& a, const float* weight, const int64_t* idx, float* out,
                       int nthreads);
void embedding_backward(const EmbeddingArgs& a, const float* dy, const int64_t* idx, float* dweight,
                        int nthreads);

// Portable row kernels (csrc/cpu/embedding.cpp): dst = src, dst = 0, dst += src over d floats.
void emb_copy_row_cpu(float* dst, const float* src, int64_t d);
void emb_zero_row_cpu(float* dst, int64_t d);
void emb_add_row_cpu(float* dst, const float* src, int64_t d);

}  // namespace fastnn
