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
  while (lo < hi) {  // branch-free steps (conditional moves): the comparisons are coin flips
    const int64_t mid = (lo + hi) >> 1;
    const bool above = cum[mid] > x;
    hi = above ? mid : hi;
    lo = above ? lo : mid + 1;
  }
  return lo;
}

// One word's predictions (the contract's list, HS then NS): their rows and labels, drawn ahead
// of their training so that the rows can be fetched meanwhile (the draws are made in the
// contract's order all the same: they depend on the RNG alone, never on the weights).
struct W2vList {
  float** rows;
  float* labels;
  int64_t n = 0, hs = 0;  // predictions, of which HS (first)
};

// Draws c's predictions into list.
inline void w2v_prepare(const Word2VecArgs& a, const Word2VecSampler& sp, uint64_t total, int64_t c,
                        W2vList* list, uint64_t* rng) {
  const int64_t d = a.d;
  int64_t n = 0;
  if (a.hs) {
    const int64_t len = a.code_lengths[c];
    const int32_t* pt = a.points + c * a.l;
    const uint8_t* cd = a.codes + c * a.l;
    for (int64_t k = 0; k < len; ++k, ++n) {
      list->rows[n] = a.syn1 + static_cast<int64_t>(pt[k]) * d;
      list->labels[n] = cd[k] ? 0.0f : 1.0f;
    }
  }
  list->hs = n;
  if (a.negative > 0) {
    list->rows[n] = a.syn1neg + c * d;
    list->labels[n++] = 1.0f;
    for (int64_t k = 0; k < a.negative; ++k) {
      const int64_t t = w2v_negative(w2v_draw(rng), a.cum_table, a.v, total, sp);
      if (t == c) continue;
      list->rows[n] = a.syn1neg + t * d;
      list->labels[n++] = 0.0f;
    }
  }
  list->n = n;
}

// Asks for the cache lines of a row.
inline void w2v_prefetch_row(const float* row, int64_t d) {
#if defined(__GNUC__)
  for (int64_t e = 0; e < d; e += 16) __builtin_prefetch(row + e);
#else
  (void)row, (void)d;
#endif
}

// ... of the list's NS rows (a word's HS path is fetched by its centre's first pair).
inline void w2v_prefetch(const W2vList& list, int64_t d) {
  for (int64_t k = list.hs; k < list.n; ++k) w2v_prefetch_row(list.rows[k], d);
}

// A list's predictions from l1, in groups of up to kW2vGroup on distinct rows; the last group
// adds work (times scale) to outs[0, nouts).
template <class VO>
class W2vPredictor {
 public:
  W2vPredictor(const Word2VecArgs& a, Word2VecScratch* sc, float alpha, double* loss)
      : a_(a), work_(sc->work.data()), alpha_(alpha), loss_(loss) {}

  void run(const W2vList& list, const float* l1, float* const* outs, int nouts, float scale) {
    n_ = 0;
    first_ = true;
    l1_ = l1;
    for (int64_t k = 0; k < list.n; ++k) add(list.rows[k], list.labels[k]);
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
  float* work_;
  const float alpha_;
  double* loss_;
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
  W2vPredictor<VO> pred(a, sc, job.alpha, a.compute_loss ? &job_loss : nullptr);
  const uint64_t total = a.negative > 0 ? a.cum_table[a.v - 1] : 0;
  const int64_t d = a.d;
  float* const syn0 = a.syn0;
  float* const neu1 = sc->neu1.data();
  float** const outs = sc->outs.data();
  W2vList lists[2];
  for (int k = 0; k < 2; ++k) lists[k].rows = sc->rows[k].data(), lists[k].labels = sc->labels[k].data();
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
    // The centres in order, each drawing its window; for skip-gram each of its pairs (i, j), for
    // CBOW the centre with its window [j0, j1] (one without context is skipped). One step ahead:
    // the next step's predictions are drawn and their rows fetched while this one trains.
    int64_t i = -1, j = 0, j0 = 0, j1 = -1;
    auto next = [&](int64_t* ci, int64_t* cj, int64_t* cj0, int64_t* cj1) {
      for (;;) {
        if (a.sg && i >= 0) {
          while (++j <= j1) {
            if (j == i) continue;
            *ci = i, *cj = j;
            return true;
          }
        }
        if (++i >= m) return false;
        const int64_t b =
            a.shrink ? static_cast<int64_t>(w2v_draw(&rng) % static_cast<uint64_t>(a.window)) : 0;
        const int64_t win = a.window - b;
        j0 = std::max<int64_t>(0, i - win), j1 = std::min<int64_t>(m - 1, i + win);
        j = j0 - 1;
        if (!a.sg && j1 > j0) {  // i itself is in [j0, j1]: a context iff j1 > j0
          *ci = i, *cj0 = j0, *cj1 = j1;
          return true;
        }
      }
    };
    int cur = 0;
    int64_t ci = 0, cj = 0, cj0 = 0, cj1 = 0;
    bool have = next(&ci, &cj, &cj0, &cj1);
    if (have) w2v_prepare(a, sp, total, kept[ci], &lists[cur], &rng);
    while (have) {
      int64_t ni = 0, nj = 0, nj0 = 0, nj1 = 0;
      const bool more = next(&ni, &nj, &nj0, &nj1);
      if (more) {
        w2v_prepare(a, sp, total, kept[ni], &lists[cur ^ 1], &rng);
        w2v_prefetch(lists[cur ^ 1], d);
      }
      if (a.sg) {
        float* row = syn0 + static_cast<int64_t>(kept[cj]) * d;
        pred.run(lists[cur], row, &row, 1, 1.0f);
      } else {
        int nouts = 0;
        for (int64_t jj = cj0; jj <= cj1; ++jj) {
          if (jj == ci) continue;
          float* row = syn0 + static_cast<int64_t>(kept[jj]) * d;
          if (nouts == 0)
            VO::copy(neu1, row, d);
          else
            VO::add(neu1, row, d);
          outs[nouts++] = row;
        }
        const float inv = 1.0f / static_cast<float>(nouts);
        if (a.cbow_mean) VO::scale(neu1, inv, d);
        pred.run(lists[cur], neu1, outs, nouts, a.cbow_mean ? 1.0f : inv);
      }
      cur ^= 1;
      ci = ni, cj = nj, cj0 = nj0, cj1 = nj1;
      have = more;
    }
  }
  *loss += job_loss;
  return eff;
}

}  // namespace
}  // namespace fastnn
