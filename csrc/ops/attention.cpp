// Attention front door: the per-ISA dispatch and the split of work over threads. The binding has
// checked shapes, dtypes, the mask's broadcast and the causal/mask exclusion.
#include "ops/attention.h"

#include <algorithm>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {
namespace {

// f(i0, i1) over [0, count) in one contiguous range per thread (every item is computed whole by
// one thread, so the split changes no result).
template <class F>
void split(int64_t count, int nthreads, F&& f) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, count)));
  parallel(nt, [&](int tid, int cnt) {
    long i0, i1;
    split_range(count, tid, cnt, &i0, &i1);
    if (i0 < i1) f(i0, i1);
  });
}

}  // namespace

void attention_forward(const AttentionArgs& a, float* out, float* lse, Isa isa, int nthreads) {
  if (a.B * a.NH * a.L == 0) return;
  const AttentionKernels& k = FASTNN_KERNEL_TABLE(attention_kernels, isa);
  const int64_t items = a.B * a.NH * ((a.L + kAttnBQ - 1) / kAttnBQ);
  // tiny problems (a few thousand multiply-adds per item) stay on one thread
  const int nt = a.S * a.D * std::min<int64_t>(a.L, kAttnBQ) * items < (int64_t{1} << 16) ? 1 : nthreads;
  split(items, nt, [&](int64_t w0, int64_t w1) { k.forward(a, out, lse, w0, w1); });
}

void attention_backward(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                        float* dq, float* dk, float* dv, Isa isa, int nthreads) {
  const int64_t pairs = a.B * a.NH;
  if (pairs == 0) return;
  const AttentionKernels& k = FASTNN_KERNEL_TABLE(attention_kernels, isa);
  const int nt = a.S * a.D * a.L * pairs < (int64_t{1} << 16) ? 1 : nthreads;
  split(pairs, nt, [&](int64_t p0, int64_t p1) { k.backward(a, dout, out, lse, dq, dk, dv, p0, p1); });
}

}  // namespace fastnn
