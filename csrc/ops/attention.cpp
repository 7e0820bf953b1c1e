// Attention front door: the per-ISA dispatch and the split of work over threads. The binding has
// checked shapes, dtypes, the mask's broadcast and the causal/mask exclusion.
#include "ops/attention.h"

#include <algorithm>

#include "core/threads.h"

namespace fastnn {
namespace {

struct Kernels {
  decltype(&attention_forward_default) fwd;
  decltype(&attention_backward_default) bwd;
};

Kernels kernels_for(Isa isa) {
  switch (isa) {
#ifdef FASTNN_HAVE_AVX512
    case Isa::Avx512:
      return {attention_forward_avx512, attention_backward_avx512};
#endif
#ifdef FASTNN_HAVE_AVX2
    case Isa::Avx2:
      return {attention_forward_avx2, attention_backward_avx2};
#endif
    default:
      return {attention_forward_default, attention_backward_default};
  }
}

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
  const auto k = kernels_for(isa);
  const int64_t items = a.B * a.NH * ((a.L + kAttnBQ - 1) / kAttnBQ);
  // tiny problems (a few thousand multiply-adds per item) stay on one thread
  const int nt = a.S * a.D * std::min<int64_t>(a.L, kAttnBQ) * items < (int64_t{1} << 16) ? 1 : nthreads;
  split(items, nt, [&](int64_t w0, int64_t w1) { k.fwd(a, out, lse, w0, w1); });
}

void attention_backward(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                        float* dq, float* dk, float* dv, Isa isa, int nthreads) {
  const int64_t pairs = a.B * a.NH;
  if (pairs == 0) return;
  const auto k = kernels_for(isa);
  const int nt = a.S * a.D * a.L * pairs < (int64_t{1} << 16) ? 1 : nthreads;
  split(pairs, nt, [&](int64_t p0, int64_t p1) { k.bwd(a, dout, out, lse, dq, dk, dv, p0, p1); });
}

}  // namespace fastnn
