// gemm front door: size checks, the empty and K == 0 cases, the per-ISA dispatch, and the
// batch loop. The kernels behind it assume all of this has happened.
#include "ops/gemm.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {
namespace {

// Below this many flops per product, a second thread costs more than it saves.
constexpr double kFlopsPerThread = 2.0e6;

}  // namespace

namespace {

// K == 0 or alpha == 0: out = act(beta*C + bias + bias_row) without touching A or B.
void epilogue_only(const GemmArgs& g) {
  for (int64_t i = 0; i < g.M; ++i) {
    float* out = g.out + i * g.ldc;
    const float* c = g.c ? g.c + i * g.ldc : nullptr;
    for (int64_t j = 0; j < g.N; ++j) {
      float x = (g.beta != 0.0f && c) ? g.beta * c[j] : 0.0f;
      if (g.bias) x += g.bias[j];
      if (g.bias_row) x += g.bias_row[i];
      if (g.act == Activation::Relu) x = x < 0.0f ? 0.0f : x;
      out[j] = x;
    }
  }
}

void run_one(const GemmArgs& g, const GemmKernels& k, int nthreads) {
  if (g.M == 0 || g.N == 0) return;
  if (g.K == 0 || g.alpha == 0.0f) {
    epilogue_only(g);
    return;
  }
  k.run(g, nthreads);
}

int threads_for(const GemmArgs& g, int nthreads) {
  const double flops = 2.0 * g.M * g.N * g.K;
  const int useful = static_cast<int>(flops / kFlopsPerThread);
  return std::max(1, std::min(nthreads, useful));
}

}  // namespace

GemmTile gemm_tile(Isa isa) { return FASTNN_KERNEL_TABLE(gemm_kernels, isa).tile(); }

int64_t gemm_packed_b_floats(int64_t K, int64_t N, Isa isa) {
  const int64_t nr = FASTNN_KERNEL_TABLE(gemm_kernels, isa).nr;
  return (N + nr - 1) / nr * nr * K;
}

void gemm_pack_b(const float* b, int64_t ldb, bool trans_b, int64_t K, int64_t N, Isa isa, float* dst) {
  if (N <= 0 || K <= 0) return;
  FASTNN_KERNEL_TABLE(gemm_kernels, isa).pack_b(b, ldb, trans_b, K, N, dst);
}

int64_t gemm_packed_a_floats(int64_t M, int64_t K, Isa isa) {
  const int64_t mr = FASTNN_KERNEL_TABLE(gemm_kernels, isa).mr;
  return (M + mr - 1) / mr * mr * K;
}

void gemm_pack_a(const float* a, int64_t lda, bool trans_a, int64_t M, int64_t K, int64_t k0, int64_t k1,
                 Isa isa, float* dst) {
  if (M <= 0 || k1 <= k0) return;
  FASTNN_KERNEL_TABLE(gemm_kernels, isa).pack_a(a, lda, trans_a, M, K, k0, k1, dst);
}

void gemm(const GemmArgs& g, Isa isa, int nthreads) {
  gemm_check_sizes(g);
  run_one(g, FASTNN_KERNEL_TABLE(gemm_kernels, isa), threads_for(g, nthreads));
}

void gemm_batched(const GemmArgs& g, int64_t batch, const std::vector<int64_t>& a_off,
                  const std::vector<int64_t>& b_off, const std::vector<int64_t>& c_off, Isa isa,
                  int nthreads) {
  gemm_check_sizes(g);
  if (g.b_packed || g.a_packed)
    throw std::invalid_argument("fastnn.ops.gemm: a packed A or B is for single products");
  if (static_cast<int64_t>(a_off.size()) != batch || static_cast<int64_t>(b_off.size()) != batch ||
      (g.c && static_cast<int64_t>(c_off.size()) != batch)) {
    throw std::invalid_argument("fastnn.ops.gemm: batch offsets do not match the batch count");
  }
  const GemmKernels& k = FASTNN_KERNEL_TABLE(gemm_kernels, isa);
  auto item = [&](int64_t i, int nt) {
    GemmArgs gi = g;
    gi.a = g.a + a_off[i];
    gi.b = g.b + b_off[i];
    gi.c = g.c ? g.c + c_off[i] : nullptr;
    gi.out = g.out + i * g.M * g.ldc;
    run_one(gi, k, nt);
  };
  const int per_item = threads_for(g, nthreads);
  if (per_item >= nthreads || batch == 1) {
    for (int64_t i = 0; i < batch; ++i) item(i, per_item);  // big items: threads inside each
  } else {
    // Small items: one thread per item. Each item runs the same single-product code, so the
    // results match the threaded path bit for bit.
    const int nt = static_cast<int>(std::min<int64_t>(nthreads, batch));
    parallel_for(nt, [&](int tid, int n) {
      long b0, b1;
      split_range(batch, tid, n, &b0, &b1);
      for (long i = b0; i < b1; ++i) item(i, 1);
    });
  }
}

}  // namespace fastnn
