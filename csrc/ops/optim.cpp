// Optimizer front door: the float32 constants of an update (rounded from the double arguments
// as torch rounds its Python scalars), the per-ISA dispatch, and the split of the work over
// threads. The binding has checked the lists, shapes and dtypes.
#include "ops/optim.h"

#include <algorithm>
#include <cmath>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {
namespace {

// Below this many elements per thread a second thread costs more than it saves (a parallel
// region costs a few microseconds; an update streams a few floats per ns).
constexpr int64_t kElemsPerThread = 1 << 15;
// Thread ranges start on multiples of this within the concatenated elements, so two threads
// rarely write one cache line.
constexpr int64_t kGrain = 64;

// f(tensor, begin, end) over the elements of every tensor, as one range split over threads.
template <class F>
void over_elements(const std::vector<OptimTensor>& ts, int nthreads, F&& f) {
  int64_t total = 0;
  for (const OptimTensor& t : ts) total += t.n;
  if (total == 0) return;
  const int64_t grains = (total + kGrain - 1) / kGrain;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, total / kElemsPerThread)));
  parallel(nt, [&](int tid, int cnt) {
    long g0, g1;
    split_range(grains, tid, cnt, &g0, &g1);
    const int64_t e0 = g0 * kGrain, e1 = std::min<int64_t>(total, g1 * kGrain);
    int64_t base = 0;
    for (const OptimTensor& t : ts) {
      if (base >= e1) break;
      const int64_t b = std::max(e0, base), e = std::min(e1, base + t.n);
      if (b < e) f(t, b - base, e - base);
      base += t.n;
    }
  });
}

}  // namespace

void sgd_step(const SgdArgs& a, const std::vector<OptimTensor>& ts, Isa isa, int nthreads) {
  const SgdConsts k = sgd_consts(a);
  const OptimKernels& kern = FASTNN_KERNEL_TABLE(optim_kernels, isa);
  over_elements(ts, nthreads, [&](const OptimTensor& t, int64_t b, int64_t e) { kern.sgd(k, t, b, e); });
}

void adam_step(const AdamArgs& a, const std::vector<OptimTensor>& ts, Isa isa, int nthreads) {
  const AdamConsts k = adam_consts(a);
  const OptimKernels& kern = FASTNN_KERNEL_TABLE(optim_kernels, isa);
  over_elements(ts, nthreads, [&](const OptimTensor& t, int64_t b, int64_t e) { kern.adam(k, t, b, e); });
}

double grad_norm(const std::vector<const float*>& xs, const std::vector<int64_t>& ns, double p, Isa isa,
                 int nthreads) {
  const NormKind kind = p == 2.0        ? NormKind::L2
                        : p == 1.0      ? NormKind::L1
                        : std::isinf(p) ? NormKind::Inf
                                        : NormKind::P;
  // Block j of array i is global block first[i] + j; threads take contiguous runs of blocks and
  // write each block's sum to its own slot, added up in order below.
  std::vector<int64_t> first(xs.size() + 1, 0);
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    first[i + 1] = first[i] + (ns[i] + kNormBlock - 1) / kNormBlock;
    total += ns[i];
  }
  const int64_t blocks = first.back();
  std::vector<double> part(static_cast<size_t>(blocks), 0.0);
  const OptimKernels& kern = FASTNN_KERNEL_TABLE(optim_kernels, isa);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, total / kElemsPerThread)));
  parallel(nt, [&](int tid, int cnt) {
    long b0, b1;
    split_range(blocks, tid, cnt, &b0, &b1);
    size_t i = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), static_cast<int64_t>(b0)) -
                                   first.begin()) -
               1;
    for (int64_t blk = b0; blk < b1; ++blk) {
      while (blk >= first[i + 1]) ++i;
      const int64_t off = (blk - first[i]) * kNormBlock;
      part[static_cast<size_t>(blk)] =
          kern.norm_block(kind, p, xs[i] + off, std::min(kNormBlock, ns[i] - off));
    }
  });
  double acc = 0;
  if (kind == NormKind::Inf) {
    for (double v : part) acc = (v > acc || v != v) ? v : acc;
    return acc;
  }
  for (double v : part) acc += v;
  if (kind == NormKind::L2) return std::sqrt(acc);
  if (kind == NormKind::L1) return acc;
  return std::pow(acc, 1.0 / p);
}

}  // namespace fastnn
