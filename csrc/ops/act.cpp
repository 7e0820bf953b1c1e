// Activations front door: the per-ISA dispatch and the split of the elements over threads.
// The binding has checked shapes and dtypes; n == 0 does nothing.
#include "ops/act.h"

#include <algorithm>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {
namespace {

// Below this many elements per thread a second thread costs more than it saves (a parallel
// region is a few microseconds; relu streams ~5 floats per ns).
constexpr int64_t kElemsPerThread = 1 << 16;
// Thread ranges start on multiples of this (64 floats = 4 cache lines): no two threads write
// one cache line, and the vector loops see the same alignment whatever the split.
constexpr int64_t kGrain = 64;

// Runs f(begin, end) over [0, n) split in kGrain-aligned ranges, one per thread.
template <class F>
void split(int64_t n, int nthreads, F&& f) {
  const int64_t grains = (n + kGrain - 1) / kGrain;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, n / kElemsPerThread)));
  parallel(nt, [&](int tid, int cnt) {
    long g0, g1;
    split_range(grains, tid, cnt, &g0, &g1);
    const int64_t b = g0 * kGrain, e = std::min<int64_t>(n, g1 * kGrain);
    if (b < e) f(b, e);
  });
}

}  // namespace

void act_forward(const ActArgs& a, const float* x, float* y, Isa isa, int nthreads) {
  if (a.n <= 0) return;
  const ActKernels& k = FASTNN_KERNEL_TABLE(act_kernels, isa);
  split(a.n, nthreads, [&](int64_t b, int64_t e) { k.forward(a, x + b, y + b, e - b); });
}

void act_backward(const ActArgs& a, const float* dy, const float* xy, float* dx, Isa isa, int nthreads) {
  if (a.n <= 0) return;
  const ActKernels& k = FASTNN_KERNEL_TABLE(act_kernels, isa);
  split(a.n, nthreads, [&](int64_t b, int64_t e) { k.backward(a, dy + b, xy + b, dx + b, e - b); });
}

}  // namespace fastnn
