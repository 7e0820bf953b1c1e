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

namespace {

// The backward for a table much larger than the batch (v > 2 t + 1024): the positions sorted by
// row (stable: increasing t within a row, the counting sort's order, so the sums are the same
// bits), O(t) working memory where the counting sort's is O(v) (8 bytes a row: a 2^32-row table
// asked for 32 GiB on top of its gradient). Rows are zeroed over all of v, then each run of
// equal rows summed by the thread whose range the run starts in.
void embedding_backward_sorted(const EmbeddingArgs& a, const float* dy, const int64_t* idx, float* dweight,
                               int nthreads) {
  std::vector<int64_t> order(static_cast<size_t>(a.t));
  for (int64_t t = 0; t < a.t; ++t) order[static_cast<size_t>(t)] = t;
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return idx[x] < idx[y]; });
  parallel(threads_for(a.v * a.d, a.v, nthreads), [&](int tid, int cnt) {
    long v0, v1;
    split_range(static_cast<long>(a.v), tid, cnt, &v0, &v1);
    for (int64_t v = v0; v < v1; ++v) emb_zero_row_cpu(dweight + v * a.d, a.d);
  });
  parallel(threads_for(a.t * a.d, a.t, nthreads), [&](int tid, int cnt) {
    long k0, k1;
    split_range(static_cast<long>(a.t), tid, cnt, &k0, &k1);
    auto row_of = [&](int64_t k) { return idx[order[static_cast<size_t>(k)]]; };
    int64_t k = k0;
    while (k > 0 && k < k1 && row_of(k) == row_of(k - 1)) ++k;  // the run began before: its thread's
    while (k < k1) {
      const int64_t v = row_of(k);
      float* row = dweight + v * a.d;
      for (; k < a.t && row_of(k) == v; ++k)  // the run to its end, past k1 if it goes on
        if (v != a.padding_idx) emb_add_row_cpu(row, dy + order[static_cast<size_t>(k)] * a.d, a.d);
    }
  });
}

}  // namespace

void embedding_backward(const EmbeddingArgs& a, const float* dy, const int64_t* idx, float* dweight,
                        int nthreads) {
  if (a.v == 0 || a.d == 0) return;
  if (a.v > 2 * a.t + 1024) return embedding_backward_sorted(a, dy, idx, dweight, nthreads);
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
