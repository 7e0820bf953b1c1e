// Layer-norm front door: the per-ISA dispatch, the split of rows (forward, dx) and of columns
// (dweight, dbias) over threads. The binding has checked shapes and dtypes.
#include "ops/layernorm.h"

#include <algorithm>

#include "core/threads.h"

namespace fastnn {
namespace {

struct Kernels {
  decltype(&layer_norm_forward_default) fwd;
  decltype(&layer_norm_backward_default) bwd;
  decltype(&layer_norm_backward_params_default) params;
};

Kernels kernels_for(Isa isa) {
  switch (isa) {
#ifdef FASTNN_HAVE_AVX512
    case Isa::Avx512:
      return {layer_norm_forward_avx512, layer_norm_backward_avx512, layer_norm_backward_params_avx512};
#endif
#ifdef FASTNN_HAVE_AVX2
    case Isa::Avx2:
      return {layer_norm_forward_avx2, layer_norm_backward_avx2, layer_norm_backward_params_avx2};
#endif
    default:
      return {layer_norm_forward_default, layer_norm_backward_default, layer_norm_backward_params_default};
  }
}

constexpr int64_t kElemsPerThread = 1 << 15;  // below this a second thread costs more than it saves

// f(i0, i1) over [0, count) split in one contiguous range per thread; each item is computed
// whole by one thread, so the split changes no result.
template <class F>
void split(int64_t count, int64_t total_elems, int nthreads, F&& f) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({nthreads, count, total_elems / kElemsPerThread})));
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
  const auto k = kernels_for(isa);
  split(a.m, a.m * a.n, nthreads, [&](int64_t r0, int64_t r1) { k.fwd(a, x, y, mean, rstd, r0, r1); });
}

void layer_norm_backward(const LayerNormArgs& a, const float* dy, const float* x, const float* mean,
                         const float* rstd, float* dx, float* dweight, float* dbias, Isa isa, int nthreads) {
  const auto k = kernels_for(isa);
  if (a.m > 0) split(a.m, a.m * a.n, nthreads, [&](int64_t r0, int64_t r1) { k.bwd(a, dy, x, mean, rstd, dx, r0, r1); });
  if (a.weight && (dweight || dbias) && a.n > 0) {
    split(a.n, a.m * a.n, nthreads,
          [&](int64_t c0, int64_t c1) { k.params(a, dy, x, mean, rstd, dweight, dbias, c0, c1); });
  }
}

}  // namespace fastnn
