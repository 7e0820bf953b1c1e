// Embedding's row kernels, portable C++: plain loops the compiler vectorises (memory-bound).
#include <cstring>

#include "ops/embedding.h"

namespace fastnn {

void emb_copy_row_cpu(float* dst, const float* src, int64_t d) {
  std::memcpy(dst, src, static_cast<size_t>(d) * sizeof(float));
}

void emb_zero_row_cpu(float* dst, int64_t d) { std::memset(dst, 0, static_cast<size_t>(d) * sizeof(float)); }

void emb_add_row_cpu(float* __restrict dst, const float* __restrict src, int64_t d) {
  for (int64_t i = 0; i < d; ++i) dst[i] += src[i];
}

}  // namespace fastnn
