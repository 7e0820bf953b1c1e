// softmax / cross-entropy front door: the per-ISA dispatch and the split of rows over threads.
// The binding has checked shapes, dtypes and targets.
#include "ops/softmax.h"

#include <algorithm>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {
namespace {

// Below this many elements per thread a second thread costs more than it saves.
constexpr int64_t kElemsPerThread = 1 << 15;

// f(r0, r1) over [0, rows) split in one range per thread (each row is whole in one thread, so
// the split changes no result).
template <class F>
void over_rows(int64_t rows, int64_t row_elems, int nthreads, F&& f) {
  const int64_t total = rows * std::max<int64_t>(row_elems, 1);
  const int nt =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({nthreads, rows, total / kElemsPerThread})));
  parallel(nt, [&](int tid, int cnt) {
    long r0, r1;
    split_range(rows, tid, cnt, &r0, &r1);
    if (r0 < r1) f(r0, r1);
  });
}

}  // namespace

void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y, Isa isa, int nthreads) {
  if (s.outer * s.n * s.inner == 0) return;
  const SoftmaxKernels& k = FASTNN_KERNEL_TABLE(softmax_kernels, isa);
  over_rows(s.outer, s.n * s.inner, nthreads,
            [&](int64_t o0, int64_t o1) { k.forward(s, log, x, y, o0, o1); });
}

void softmax_backward(const SoftmaxShape& s, bool log, const float* dy, const float* y, float* dx, Isa isa,
                      int nthreads) {
  if (s.outer * s.n * s.inner == 0) return;
  const SoftmaxKernels& k = FASTNN_KERNEL_TABLE(softmax_kernels, isa);
  over_rows(s.outer, s.n * s.inner, nthreads,
            [&](int64_t o0, int64_t o1) { k.backward(s, log, dy, y, dx, o0, o1); });
}

namespace {
CrossEntropyArgs with_weight_sum(const CrossEntropyArgs& a) {
  CrossEntropyArgs b = a;
  b.weight_sum = 0.0;
  if (a.weight) {
    for (int64_t c = 0; c < a.C; ++c) b.weight_sum += a.weight[c];  // in class order
  } else {
    b.weight_sum = static_cast<double>(a.C);
  }
  return b;
}
}  // namespace

void cross_entropy_forward(const CrossEntropyArgs& a, double* loss, double* weight, Isa isa, int nthreads) {
  if (a.N == 0) return;
  const CrossEntropyArgs b = with_weight_sum(a);
  const SoftmaxKernels& k = FASTNN_KERNEL_TABLE(softmax_kernels, isa);
  over_rows(a.N, a.C, nthreads, [&](int64_t r0, int64_t r1) { k.ce_forward(b, loss, weight, r0, r1); });
}

void cross_entropy_backward(const CrossEntropyArgs& a, const float* scale, float* dx, Isa isa, int nthreads) {
  if (a.N == 0) return;
  const CrossEntropyArgs b = with_weight_sum(a);
  const SoftmaxKernels& k = FASTNN_KERNEL_TABLE(softmax_kernels, isa);
  over_rows(a.N, a.C, nthreads, [&](int64_t r0, int64_t r1) { k.ce_backward(b, scale, dx, r0, r1); });
}

}  // namespace fastnn
