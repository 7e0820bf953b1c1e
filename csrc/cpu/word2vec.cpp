// word2vec compiled for portable C++ (baseline x86-64 after auto-vectorisation): the job loop of
// csrc/cpu/word2vec_impl.h with plain loops; the dot in 8 partial sums (SSE after
// vectorisation), the sigmoid from std::exp.
#include <cmath>
#include <cstring>

#include "cpu/word2vec_impl.h"

namespace fastnn {
namespace {

struct PortableOps {
  static float dot(const float* __restrict a, const float* __restrict b, int64_t d) {
    float s[8] = {};
    int64_t i = 0;
    for (; i + 8 <= d; i += 8)
      for (int l = 0; l < 8; ++l) s[l] += a[i + l] * b[i + l];
    for (int l = 0; i < d; ++i, ++l) s[l] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  }

  static void grads(const float* f, const float* label, int n, float alpha, float* g, float* e) {
    for (int k = 0; k < n; ++k) {
      const float ek = std::exp(-std::fabs(f[k]));
      const float q = 1.0f / (1.0f + ek), p = ek * q;  // sigmoid(|f|), sigmoid(-|f|)
      const bool pos = f[k] >= 0.0f;
      g[k] = label[k] != 0.0f ? alpha * (pos ? p : q) : -alpha * (pos ? q : p);
      e[k] = ek;
    }
  }

  static void update(const float* l1, float* work, bool first, float* const* rows, const float* g, int n,
                     int64_t d, float* const* outs, int nouts, float scale) {
    if (first) std::memset(work, 0, static_cast<size_t>(d) * sizeof(float));
    for (int k = 0; k < n; ++k) {
      float* __restrict r = rows[k];
      const float gk = g[k];
      for (int64_t e = 0; e < d; ++e) {
        const float old = r[e];
        work[e] += gk * old;
        r[e] = old + gk * l1[e];
      }
    }
    if (nouts == 0) return;
    if (scale != 1.0f)
      for (int64_t e = 0; e < d; ++e) work[e] *= scale;
    for (int o = 0; o < nouts; ++o) {
      float* __restrict y = outs[o];
      for (int64_t e = 0; e < d; ++e) y[e] += work[e];
    }
  }

  static void copy(float* y, const float* x, int64_t d) {
    std::memcpy(y, x, static_cast<size_t>(d) * sizeof(float));
  }
  static void add(float* __restrict y, const float* __restrict x, int64_t d) {
    for (int64_t e = 0; e < d; ++e) y[e] += x[e];
  }
  static void scale(float* y, float s, int64_t d) {
    for (int64_t e = 0; e < d; ++e) y[e] *= s;
  }
};

}  // namespace

const Word2VecKernels word2vec_kernels_default{word2vec_train_job_impl<PortableOps>};

}  // namespace fastnn
