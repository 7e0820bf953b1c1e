// Embedding front door: the thread splits and the counting sort of the backward; the row work
// is csrc/cpu/embedding.cpp's.
#include "ops/embedding.h"

#include <algorithm>
#include <vector>

#include "core/threads.h"

namespace fastnn {
namespace {

// A second thread pays off above ~64k floats copied or added (a parallel region costs a few us).
constexpr int64_t kElemsPerThread = 1 << 16;

int threads_for(int64_t work, int64_t items, int nthreads) {
  return static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({static_cast<int64_t>(nthreads), items, work / kElemsPerThread})));
}

}  // namespace

void embedding_forward(const EmbeddingArgs& a, const float* weight, const int64_t* idx, float* out,
                       int nthreads) {
  if (a.t == 0 || a.d == 0) return;
  parallel(threads_for(a.t * a.d, a.t, nthreads), [&](int tid, int cnt) {
    long t0, t1;
    split_range(static_cast<long>(a.t), tid, cnt, &t0, &t1);
    for (int64_t t = t0; t < t1; ++t) emb_copy_row_cpu(out + t * a.d, weight + idx[t] * a.d, a.d);
  });
}

void embedding_backward(const EmbeddingArgs& a, const float* dy, const int64_t* idx, float* dweight,
                        int nthreads) {
  if (a.v == 0 || a.d == 0) return;
  // first[v] .. first[v + 1]: the positions t with idx[t] == v, in increasing t.
  std::vector<int64_t> first(static_cast<size_t>(a.v) + 1, 0), order(static_cast<size_t>(a.t));
  for (int64_t t = 0; t < a.t; ++t) ++first[static_cast<size_t>(idx[t]) + 1];
  for (int64_t v = 0; v < a.v; ++v) first[v + 1] += first[v];
  {
    std::vector<int64_t> next(first.begin(), first.end() - 1);
    for (int64_t t = 0; t < a.t; ++t) order[static_cast<size_t>(next[static_cast<size_t>(idx[t])]++)] = t;
  }
  parallel(threads_for(a.v * a.d + a.t * a.d, a.v, nthreads), [&](int tid, int cnt) {
    long v0, v1;
    split_range(static_cast<long>(a.v), tid, cnt, &v0, &v1);
    for (int64_t v = v0; v < v1; ++v) {
      float* row = dweight + v * a.d;
      emb_zero_row_cpu(row, a.d);
      if (v == a.padding_idx) continue;
      for (int64_t k = first[v]; k < first[v + 1]; ++k) emb_add_row_cpu(row, dy + order[k] * a.d, a.d);
    }
  });
}

}  // namespace fastnn
