// word2vec's job loop (csrc/ops/word2vec.h: the draws, the windows, the predictions), written
// once and compiled into each ISA's unit (csrc/cpu/word2vec.cpp, avx2/word2vec.cpp,
// avx512/word2vec.cpp) with that unit's vector operations, a policy type VO:
//   VO::dot(a, b, d):          sum_e a[e] b[e], in a fixed order (the same for every call);
//   VO::grads(f, label, n, alpha, g, e):  for k < n: g[k] = alpha sigmoid(-f[k]) (label 1) or
//                              -alpha sigmoid(f[k]) (label 0), e[k] = exp(-|f[k]|) (the
//                              contract's sigmoid);
//   VO::update(l1, work, first, rows, g, n, d, outs, nouts, scale): for each element e:
//                              w = (first ? 0 : work[e]); for k < n in order: w += g[k] rows[k][e]
//                              (old value), rows[k][e] += g[k] l1[e]; then, with nouts = 0,
//                              work[e] = w, else w *= scale and outs[o][e] += w for o < nouts in
//                              order (l1[e] is read before any out is written, so an out may be
//                              l1 itself);
//   VO::copy / add / scale(y, x or s, d):  y = x, y += x, y *= s.
// Each element's arithmetic is the same whichever block of elements it falls in, so a group of
// predictions gives the bits of doing them one at a time (their rows are distinct).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/word2vec.h"

namespace fastnn {
namespace {

// The negative sample for the draw r: the smallest t with cum[t] > (r * total) >> 32, searched
// within r's bucket when there are buckets.
inline int64_t w2v_negative(uint32_t r, const uint32_t* cum, int64_t v, uint64_t total,
                            const Word2VecSampler& sp) {
  const uint32_t x = static_cast<uint32_t>((static_cast<uint64_t>(r) * total) >> 32);
  int64_t lo = 0, hi = v - 1;
  if (sp.bucket) {
    const uint32_t b = r >> (32 - sp.bucket_bits);
    lo = sp.bucket[b];
    hi = sp.bucket[b + 1];
  }
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (cum[mid] > x)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

// The predictions of one word c from l1 (the contract's list, HS then NS), in groups of up to
// kW2vGroup on distinct rows; the last group adds work (times scale) to outs[0, nouts).
template <class VO>
class W2vPredictor {
 public:
  W2vPredictor(const Word2VecArgs& a, const Word2VecSampler& sp, Word2VecScratch* sc, float alpha,
               double* loss)
      : a_(a),
        sp_(sp),
        work_(sc->work.data()),
        alpha_(alpha),
        loss_(loss),
        total_(a.negative > 0 ? a.cum_table[a.v - 1] : 0) {}

  void run(int64_t c, const float* l1, float* const* outs, int nouts, float scale, uint64_t* rng) {
    n_ = 0;
    first_ = true;
    l1_ = l1;
    const int64_t d = a_.d;
    if (a_.hs) {
      const int64_t len = a_.code_lengths[c];
      const int32_t* pt = a_.points + c * a_.l;
      const uint8_t* cd = a_.codes + c * a_.l;
      for (int64_t k = 0; k < len; ++k) add(a_.syn1 + static_cast<int64_t>(pt[k]) * d, cd[k] ? 0.0f : 1.0f);
    }
    if (a_.negative > 0) {
      add(a_.syn1neg + c * d, 1.0f);
      for (int64_t k = 0; k < a_.negative; ++k) {
        const int64_t t = w2v_negative(w2v_draw(rng), a_.cum_table, a_.v, total_, sp_);
        if (t != c) add(a_.syn1neg + t * d, 0.0f);
      }
    }
    if (n_ > 0) flush(outs, nouts, scale);
  }

 private:
  void add(float* row, float label) {
    bool repeat = n_ == kW2vGroup;
    for (int k = 0; k < n_ && !repeat; ++k) repeat = rows_[k] == row;
    if (repeat) flush(nullptr, 0, 1.0f);
    rows_[n_] = row;
    label_[n_] = label;
    ++n_;
  }

  void flush(float* const* outs, int nouts, float scale) {
    const int64_t d = a_.d;
    float f[kW2vGroup] = {}, g[kW2vGroup], e[kW2vGroup];  // VO::grads may read all kW2vGroup lanes
    for (int k = 0; k < n_; ++k) f[k] = VO::dot(l1_, rows_[k], d);
    VO::grads(f, label_, n_, alpha_, g, e);
    if (loss_) {
      for (int k = 0; k < n_; ++k) {  // softplus(x) = max(x, 0) + log1p(exp(-|x|))
        const double x = label_[k] != 0.0f ? -static_cast<double>(f[k]) : static_cast<double>(f[k]);
        *loss_ += std::max(x, 0.0) + std::log1p(static_cast<double>(e[k]));
      }
    }
    VO::update(l1_, work_, first_, rows_, g, n_, d, outs, nouts, scale);
    first_ = false;
    n_ = 0;
  }

  const Word2VecArgs& a_;
  const Word2VecSampler& sp_;
  float* work_;
  const float alpha_;
  double* loss_;
  const uint64_t total_;
  const float* l1_ = nullptr;
  float* rows_[kW2vGroup];
  float label_[kW2vGroup] = {};
  int n_ = 0;
  bool first_ = true;
};

template <class VO>
int64_t word2vec_train_job_impl(const Word2VecArgs& a, const Word2VecSampler& sp, const Word2VecJob& job,
                                Word2VecScratch* sc, double* loss) {
  uint64_t rng = job.rng;
  double job_loss = 0.0;
  W2vPredictor<VO> pred(a, sp, sc, job.alpha, a.compute_loss ? &job_loss : nullptr);
  const int64_t d = a.d;
  float* const syn0 = a.syn0;
  float* const neu1 = sc->neu1.data();
  float** const outs = sc->outs.data();
  int64_t eff = 0, start = 0;
  for (int64_t p = 0; p < job.pieces; ++p) {
    const int32_t* w = job.words + start;
    const int64_t len = job.ends[p] - start;
    start = job.ends[p];
    const int32_t* kept = w;
    int64_t m = len;
    if (a.sample_int) {
      int32_t* k = sc->kept.data();
      m = 0;
      for (int64_t t = 0; t < len; ++t) {
        const uint32_t r = w2v_draw(&rng);
        const uint32_t si = a.sample_int[w[t]];
        if (si == 0xFFFFFFFFu || r < si) k[m++] = w[t];
      }
      kept = k;
    }
    eff += m;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t b = a.shrink ? static_cast<int64_t>(w2v_draw(&rng) % static_cast<uint64_t>(a.window)) : 0;
      const int64_t win = a.window - b;
      const int64_t j0 = std::max<int64_t>(0, i - win), j1 = std::min<int64_t>(m - 1, i + win);
      const int64_t c = kept[i];
      if (a.sg) {
        for (int64_t j = j0; j <= j1; ++j) {
          if (j == i) continue;
          float* row = syn0 + static_cast<int64_t>(kept[j]) * d;
          pred.run(c, row, &row, 1, 1.0f, &rng);
        }
        continue;
      }
      const int64_t cnt = j1 - j0;  // i itself is within [j0, j1]
      if (cnt == 0) continue;
      int nouts = 0;
      for (int64_t j = j0; j <= j1; ++j) {
        if (j == i) continue;
        float* row = syn0 + static_cast<int64_t>(kept[j]) * d;
        if (nouts == 0)
          VO::copy(neu1, row, d);
        else
          VO::add(neu1, row, d);
        outs[nouts++] = row;
      }
      const float inv = 1.0f / static_cast<float>(cnt);
      if (a.cbow_mean) VO::scale(neu1, inv, d);
      pred.run(c, neu1, outs, nouts, a.cbow_mean ? 1.0f : inv, &rng);
    }
  }
  *loss += job_loss;
  return eff;
}

}  // namespace
}  // namespace fastnn
