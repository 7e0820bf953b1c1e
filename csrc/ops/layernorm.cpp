// Layer-norm front door: the per-ISA dispatch, the split of rows (forward, dx) and of columns
// (dweight, dbias) over threads. The binding has checked shapes and dtypes.
#include "ops/layernorm.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {
namespace {

constexpr int64_t kElemsPerThread = 1 << 15;  // below this a second thread costs more than it saves

// f(i0, i1) over [0, count) split in one contiguous range per thread; each item is computed
// whole by one thread, so the split changes no result.
template <class F>
void split(int64_t count, int64_t total_elems, int nthreads, F&& f) {
  const int nt = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>({nthreads, count, total_elems / kElemsPerThread})));
  parallel(nt, [&](int tid, int cnt) {
    long i0, i1;
    split_range(count, tid, cnt, &i0, &i1);
    if (i0 < i1) f(i0, i1);
  });
}

}  // namespace

void layer_norm_forward(const LayerNormArgs& a, const float* x, float* y, float* mean, float* rstd, Isa isa,
                        int nthreads) {
  if (a.m == 0) return;
  const LayerNormKernels& k = FASTNN_KERNEL_TABLE(layer_norm_kernels, isa);
  split(a.m, a.m * a.n, nthreads, [&](int64_t r0, int64_t r1) { k.forward(a, x, y, mean, rstd, r0, r1); });
}

void layer_norm_backward(const LayerNormArgs& a, const float* dy, const float* x, const float* mean,
                         const float* rstd, float* dx, float* dweight, float* dbias, Isa isa, int nthreads) {
  const LayerNormKernels& k = FASTNN_KERNEL_TABLE(layer_norm_kernels, isa);
  const bool params = a.weight && (dweight || dbias) && a.n > 0;
  if (!params) {
    if (a.m > 0)
      split(a.m, a.m * a.n, nthreads,
            [&](int64_t r0, int64_t r1) { k.backward(a, dy, x, mean, rstd, dx, nullptr, r0, r1); });
    return;
  }
  // Block column sums written by the dx pass, then added up per column in block order.
  const int64_t nblk = (a.m + kLnRowBlock - 1) / kLnRowBlock;
  const std::unique_ptr<float[]> part(
      new float[static_cast<size_t>(2 * nblk * a.n)]);  // each block writes its own
  float* const pp = part.get();
  if (a.m > 0) {
    split(nblk, a.m * a.n, nthreads, [&](int64_t b0, int64_t b1) {
      k.backward(a, dy, x, mean, rstd, dx, pp, b0 * kLnRowBlock, std::min(a.m, b1 * kLnRowBlock));
    });
  }
  std::vector<double> total(static_cast<size_t>(2 * a.n), 0.0);  // made here: nothing may throw below
  double* const sw = total.data();
  double* const sb = sw + a.n;
  split(a.n, 2 * nblk * a.n, nthreads, [&](int64_t c0, int64_t c1) {
    for (int64_t b = 0; b < nblk; ++b) {
      const float* pw = pp + 2 * b * a.n;
      const float* pb = pw + a.n;
      for (int64_t j = c0; j < c1; ++j) {
        sw[j] += pw[j];
        sb[j] += pb[j];
      }
    }
    for (int64_t j = c0; j < c1; ++j) {
      if (dweight) dweight[j] = static_cast<float>(sw[j]);
      if (dbias) dbias[j] = static_cast<float>(sb[j]);
    }
  });
}

}  // namespace fastnn
