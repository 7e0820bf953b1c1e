// Recurrent layers' time loop: the GEMMs (csrc/ops/gemm.h) over all steps and per step, the
// per-ISA gate kernels (csrc/cpu/rnn_impl.h) per batch row, and the bias sums. The rules (the
// front door) are rnn's meta functions, csrc/ops/rnn_meta.cpp.
#include "ops/rnn.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/dispatch.h"
#include "core/threads.h"
#include "ops/gemm.h"

namespace fastnn {
namespace {

// A second thread for the gates of one step pays off above this many gate values.
constexpr int64_t kGateValuesPerThread = 1 << 14;

// The backward that computes dx_t in each step's product (rnn_backward) from this batch size on:
// below it, per-step products of a few rows run far below the rate of one dx GEMM over all
// T*B rows (LSTM I=50 H=128 T=128, backward, against the other path in one process: B = 1
// 1.42x and B = 2 1.21x slower, B = 3..6 within +-3%, B = 8 4% and B = 16 11% faster).
constexpr int64_t kMergedBackwardMinBatch = 8;

// Uninitialised float scratch (every element is written before it is read).
struct Scratch {
  std::unique_ptr<float[]> p;
  explicit Scratch(int64_t n) : p(new float[static_cast<size_t>(std::max<int64_t>(n, 1))]) {}
  float* get() const { return p.get(); }
};

// out (M, N) = op(a) op(b) [+ beta c] [+ bias]; a is (M, K) with row stride lda, or (K, M) when
// ta; b is (K, N) with row stride ldb, or (N, K) when tb.
struct Mm {
  Isa isa;
  int nthreads;
  void operator()(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool ta, const float* b,
                  int64_t ldb, bool tb, float* out, int64_t ldc, float beta = 0.0f, const float* c = nullptr,
                  const float* bias = nullptr) const {
    GemmArgs g;
    g.b = b, g.ldb = ldb, g.trans_b = tb;
    run(g, M, N, K, a, lda, ta, out, ldc, beta, c, bias);
  }
  // The same with B (K, N) packed by gemm_pack_b for this ISA (see StepB).
  void packed(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* bp, float* out,
              int64_t ldc, float beta = 0.0f, const float* c = nullptr, const float* bias = nullptr) const {
    GemmArgs g;
    g.b = bp, g.b_packed = true;
    run(g, M, N, K, a, lda, false, out, ldc, beta, c, bias);
  }

 private:
  void run(GemmArgs& g, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool ta, float* out,
           int64_t ldc, float beta, const float* c, const float* bias) const {
    g.M = M, g.N = N, g.K = K;
    g.a = a, g.lda = lda, g.trans_a = ta;
    g.out = out, g.ldc = ldc;
    g.beta = beta, g.c = c;
    g.bias = bias;
    gemm(g, isa, nthreads);
  }
};

// A per-step GEMM's B operand, packed once per call as the micro-kernel reads it (panels of NR
// columns, each K x NR contiguous) when the sequence has more than two steps: W_hh^T (H, G*H)
// in the forward, W_hh (G*H, H) in the backward. Read in place, W_hh^T's rows lie a whole row
// of G*H floats apart: a page per row of a micro-panel, and at G*H = 1024 every row in the same
// L1 sets (LSTM I=128 H=256 T=128 B=16 forward+backward: 0.90x -> 1.0-1.1x torch side by side).
// A single step (a cell) reads it in place rather than pay a copy as large as its one product.
struct StepB {
  const float* b;
  int64_t ldb, K, N;
  bool trans;
  std::unique_ptr<float[]> packed;
  StepB(const float* b_, int64_t ldb_, bool trans_, int64_t K_, int64_t N_, int64_t steps, Isa isa)
      : b(b_), ldb(ldb_), K(K_), N(N_), trans(trans_) {
    if (steps > 2) {
      packed.reset(new float[static_cast<size_t>(gemm_packed_b_floats(K, N, isa))]);
      gemm_pack_b(b, ldb, trans, K, N, isa, packed.get());
    }
  }
  // out (M, N) = a (M, K) B [+ beta c] [+ bias]
  void mm(const Mm& m, int64_t M, const float* a, int64_t lda, float* out, int64_t ldc, float beta = 0.0f,
          const float* c = nullptr, const float* bias = nullptr) const {
    if (packed)
      m.packed(M, N, K, a, lda, packed.get(), out, ldc, beta, c, bias);
    else
      m(M, N, K, a, lda, false, b, ldb, trans, out, ldc, beta, c, bias);
  }
};

// f(b) for the rows of one step, split over threads when the step has enough gate values.
template <class F>
void over_rows(int64_t B, int64_t values_per_row, int nthreads, F&& f) {
  const int nt = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({static_cast<int64_t>(nthreads), B, B * values_per_row / kGateValuesPerThread})));
  parallel(nt, [&](int tid, int cnt) {
    long b0, b1;
    split_range(static_cast<long>(B), tid, cnt, &b0, &b1);
    for (long b = b0; b < b1; ++b) f(static_cast<int64_t>(b));
  });
}

// acc[j] += sum over rows r of a[r*lda + j], rows in order (float64, the ISA's loop): a step's
// share of the bias gradients, added while its rows are still in cache. Split over columns, so
// the sums do not depend on the thread count.
void add_column_sums(const RnnKernels& k, const float* a, int64_t rows, int64_t cols, int64_t lda,
                     double* acc, int nthreads) {
  const int nt = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({static_cast<int64_t>(nthreads), (cols + 255) / 256, rows * cols / (1 << 14)})));
  parallel(nt, [&](int tid, int cnt) {
    long c0, c1;
    split_range(static_cast<long>((cols + 15) / 16), tid, cnt, &c0, &c1);
    const int64_t j0 = c0 * 16, j1 = std::min<int64_t>(cols, c1 * 16);
    if (j1 > j0) k.add_column_sums(a, rows, lda, j0, j1, acc);
  });
}

// dst = a + b over n floats, either of them null (zeros).
void add_or_zero(float* dst, const float* a, const float* b, int64_t n) {
  if (a && b) {
    for (int64_t i = 0; i < n; ++i) dst[i] = a[i] + b[i];
  } else if (a || b) {
    std::memcpy(dst, a ? a : b, static_cast<size_t>(n) * sizeof(float));
  } else {
    std::fill(dst, dst + n, 0.0f);
  }
}

// The time order: step s (0-based, in the order the forward runs) is position t(s); the state
// before step 0 is h0.
struct Steps {
  int64_t T;
  bool reverse;
  int64_t t(int64_t s) const { return reverse ? T - 1 - s : s; }
};

// Rows t0*B .. t1*B - 1 of Z = [X | H_prev] (T*B, I + H) into z: row block t holds x_t and the
// state before step t (h0, zeros without it, for the first step).
void x_hprev_rows(const RnnShape& s, const float* x, const float* h0, const float* y, int64_t t0, int64_t t1,
                  float* z) {
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, IH = I + H;
  for (int64_t t = t0; t < t1; ++t) {
    const bool first = s.reverse ? t == T - 1 : t == 0;
    const float* hp = first ? h0 : y + (s.reverse ? t + 1 : t - 1) * B * H;
    for (int64_t b = 0; b < B; ++b) {
      float* row = z + ((t - t0) * B + b) * IH;
      std::memcpy(row, x + (t * B + b) * I, static_cast<size_t>(I) * sizeof(float));
      if (hp)
        std::memcpy(row + I, hp + b * H, static_cast<size_t>(H) * sizeof(float));
      else
        std::fill(row + I, row + IH, 0.0f);
    }
  }
}

Scratch x_hprev(const RnnShape& s, const float* x, const float* h0, const float* y) {
  Scratch z(s.T * s.B * (s.I + s.H));
  x_hprev_rows(s, x, h0, y, 0, s.T, z.get());
  return z;
}

// out (rows, I + H) -> a (rows, I), b (rows, H)
void split_columns(const float* out, int64_t rows, int64_t I, int64_t H, float* a, float* b) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(a + r * I, out + r * (I + H), static_cast<size_t>(I) * sizeof(float));
    std::memcpy(b + r * H, out + r * (I + H) + I, static_cast<size_t>(H) * sizeof(float));
  }
}

// The GEMMs after the backward's time loop, shared by every cell: dx = dG W_ih,
// dW_ih = dG^T X, dW_hh = dGh^T H_prev (H_prev: h0 for the first step, y of the previous
// step for the others). dG and dGh are (T*B, G*H); they differ for GRU only.
void weight_grads(const RnnShape& s, const Mm& mm, const float* dG, const float* dGh, const float* x,
                  const float* h0, const float* y, const float* w_ih, float* dx, float* dw_ih, float* dw_hh) {
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * H, TB = T * B;
  mm(TB, I, GH, dG, GH, false, w_ih, I, false, dx, I);
  if (dG == dGh && T > 1) {
    // One product for both: [dW_ih | dW_hh] = dG^T [X | H_prev], so dG^T (the large operand,
    // transposed while packed) is packed once, and the product is wider (I + H columns).
    const int64_t IH = I + H;
    Scratch out(GH * IH);
    const Scratch z = x_hprev(s, x, h0, y);
    mm(GH, IH, TB, dG, GH, true, z.get(), IH, false, out.get(), IH);
    split_columns(out.get(), GH, I, H, dw_ih, dw_hh);
    return;
  }
  mm(GH, I, TB, dG, GH, true, x, I, false, dw_ih, I);
  // Steps after the first, all in one product: forward order pairs dG rows of t = 1..T-1 with
  // y rows 0..T-2; reverse pairs t = 0..T-2 with y rows 1..T-1. With T == 1 this is K = 0 and
  // writes zeros (y is not read).
  const float* dgh_rest = s.reverse ? dGh : dGh + B * GH;
  const float* y_rest = T > 1 ? (s.reverse ? y + B * H : y) : nullptr;
  mm(GH, H, (T - 1) * B, dgh_rest, GH, true, y_rest, H, false, dw_hh, H);
  if (h0) {
    const int64_t t_first = s.reverse ? T - 1 : 0;
    mm(GH, H, B, dGh + t_first * B * GH, GH, true, h0, H, false, dw_hh, H, 1.0f, dw_hh);
  }
}

}  // namespace

void rnn_forward(const RnnShape& s, const float* x, const float* h0, const float* c0, const float* w_ih,
                 const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* h_n, float* c_n,
                 float* ws, Isa isa, int nthreads) {
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, G = s.gates(), GH = G * H, TB = T * B;
  if (B == 0) return;
  const RnnKernels& k = FASTNN_KERNEL_TABLE(rnn_kernels, isa);
  const Mm mm{isa, nthreads};
  const Steps st{T, s.reverse};
  const StepB whh_t(w_hh, H, true, H, GH, T, isa);  // W_hh^T (H, G*H)
  const int64_t t_last = st.t(T - 1);

  if (s.cell == RnnCell::Gru) {
    Scratch gx(TB * GH), gh(B * GH);
    mm(TB, GH, I, x, I, false, w_ih, I, true, gx.get(), GH, 0.0f, nullptr, b_ih);
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = st.t(step);
      const float* hp = step == 0 ? h0 : y + st.t(step - 1) * B * H;
      if (hp) {
        whh_t.mm(mm, B, hp, H, gh.get(), GH, 0.0f, nullptr, b_hh);
      } else {  // h_{t-1} = 0: gh is the bias
        for (int64_t b = 0; b < B; ++b) {
          float* row = gh.get() + b * GH;
          if (b_hh)
            std::memcpy(row, b_hh, static_cast<size_t>(GH) * sizeof(float));
          else
            std::fill(row, row + GH, 0.0f);
        }
      }
      const float* gx_t = gx.get() + t * B * GH;
      float* ws_t = ws + t * B * 4 * H;
      float* y_t = y + t * B * H;
      over_rows(B, 4 * H, nthreads, [&](int64_t b) {
        k.gru_forward(H, gx_t + b * GH, gh.get() + b * GH, hp ? hp + b * H : nullptr, ws_t + b * 4 * H,
                      y_t + b * H);
      });
    }
    std::memcpy(h_n, y + t_last * B * H, static_cast<size_t>(B * H) * sizeof(float));
    return;
  }

  // RNN and LSTM: both biases enter the input projection.
  std::vector<float> bias;
  if (b_ih || b_hh) {
    bias.resize(static_cast<size_t>(GH));
    for (int64_t j = 0; j < GH; ++j) bias[j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
  }
  const float* bp = bias.empty() ? nullptr : bias.data();
  if (s.cell == RnnCell::Lstm) {
    float* gates = ws;
    float* cs = ws + TB * GH;
    float* tcs = cs + TB * H;
    mm(TB, GH, I, x, I, false, w_ih, I, true, gates, GH, 0.0f, nullptr, bp);
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = st.t(step), p = step == 0 ? -1 : st.t(step - 1);
      const float* hp = p < 0 ? h0 : y + p * B * H;
      const float* cp = p < 0 ? c0 : cs + p * B * H;
      float* g_t = gates + t * B * GH;
      if (hp) whh_t.mm(mm, B, hp, H, g_t, GH, 1.0f, g_t);
      float* c_t = cs + t * B * H;
      float* tc_t = tcs + t * B * H;
      float* y_t = y + t * B * H;
      over_rows(B, GH, nthreads, [&](int64_t b) {
        k.lstm_forward(H, g_t + b * GH, cp ? cp + b * H : nullptr, c_t + b * H, tc_t + b * H, y_t + b * H);
      });
    }
    std::memcpy(h_n, y + t_last * B * H, static_cast<size_t>(B * H) * sizeof(float));
    std::memcpy(c_n, cs + t_last * B * H, static_cast<size_t>(B * H) * sizeof(float));
    return;
  }

  // RNN: the projection goes straight into y, each step adds h_{t-1} W_hh^T and activates in place.
  const bool relu = s.cell == RnnCell::RnnRelu;
  mm(TB, H, I, x, I, false, w_ih, I, true, y, H, 0.0f, nullptr, bp);
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = st.t(step);
    const float* hp = step == 0 ? h0 : y + st.t(step - 1) * B * H;
    float* y_t = y + t * B * H;
    if (hp) whh_t.mm(mm, B, hp, H, y_t, H, 1.0f, y_t);
    over_rows(B, H, nthreads, [&](int64_t b) { k.rnn_forward(H, relu, y_t + b * H); });
  }
  std::memcpy(h_n, y + t_last * B * H, static_cast<size_t>(B * H) * sizeof(float));
}

namespace {

// What every path of rnn_backward reads and writes (rnn_backward's arguments).
struct BackwardArgs {
  const RnnShape& s;
  const float *dy, *dh_n, *dc_n, *x, *h0, *c0, *w_ih, *w_hh, *y, *ws;
  float *dx, *dh0, *dc0, *dw_ih, *dw_hh, *db_ih, *db_hh;
  Isa isa;
  int nthreads;
};

// GRU: step by step, dh_{t-1} from both gate gradients' products, the weight gradients as GEMMs
// over all steps.
void gru_backward_steps(const BackwardArgs& a, const RnnKernels& k, const Mm& mm, const Steps& st,
                        const StepB& whh) {
  const RnnShape& s = a.s;
  const int64_t T = s.T, B = s.B, H = s.H, GH = s.gates() * H, TB = T * B;
  float* const dh0 = a.dh0;
  Scratch dgi(TB * GH), dgh(TB * GH);
  std::vector<double> dbi(static_cast<size_t>(GH), 0.0), dbh(static_cast<size_t>(GH), 0.0);  // step by step
  // dh: the gradient of h_t carried into step t (without dy[t], added by the gate kernel)
  add_or_zero(dh0, a.dh_n, nullptr, B * H);
  for (int64_t step = T - 1; step >= 0; --step) {
    const int64_t t = st.t(step);
    if (step < T - 1) {  // dh += dGh_{t+1} W_hh (the step the backward has just done)
      const int64_t tn = st.t(step + 1);
      whh.mm(mm, B, dgh.get() + tn * B * GH, GH, dh0, H, 1.0f, dh0);
    }
    const float* hp = step == 0 ? a.h0 : a.y + st.t(step - 1) * B * H;
    const float* dy_t = a.dy ? a.dy + t * B * H : nullptr;
    const float* ws_t = a.ws + t * B * 4 * H;
    float* dgi_t = dgi.get() + t * B * GH;
    float* dgh_t = dgh.get() + t * B * GH;
    over_rows(B, 4 * H, a.nthreads, [&](int64_t b) {
      k.gru_backward(H, dh0 + b * H, dy_t ? dy_t + b * H : nullptr, ws_t + b * 4 * H,
                     hp ? hp + b * H : nullptr, dgi_t + b * GH, dgh_t + b * GH);
    });
    add_column_sums(k, dgi_t, B, GH, GH, dbi.data(), a.nthreads);
    add_column_sums(k, dgh_t, B, GH, GH, dbh.data(), a.nthreads);
  }
  whh.mm(mm, B, dgh.get() + st.t(0) * B * GH, GH, dh0, H, 1.0f, dh0);
  weight_grads(s, mm, dgi.get(), dgh.get(), a.x, a.h0, a.y, a.w_ih, a.dx, a.dw_ih, a.dw_hh);
  for (int64_t j = 0; j < GH; ++j) {
    a.db_ih[j] = static_cast<float>(dbi[j]);
    a.db_hh[j] = static_cast<float>(dbh[j]);
  }
}

// The LSTM's and the plain RNN's gate gradients, one step at a time, and the bias gradient
// they add up (float64, step by step).
struct GateGrads {
  const BackwardArgs& a;
  const RnnKernels& k;
  const Steps& st;
  std::vector<double> db;
  bool lstm, relu;
  const float *gates, *cs, *tcs;

  GateGrads(const BackwardArgs& args, const RnnKernels& kernels, const Steps& steps)
      : a(args),
        k(kernels),
        st(steps),
        db(static_cast<size_t>(args.s.gates() * args.s.H), 0.0),
        lstm(args.s.cell == RnnCell::Lstm),
        relu(args.s.cell == RnnCell::RnnRelu),
        gates(args.ws),
        cs(args.ws + args.s.T * args.s.B * args.s.gates() * args.s.H),
        tcs(cs + args.s.T * args.s.B * args.s.H) {
    if (lstm) add_or_zero(a.dc0, a.dc_n, nullptr, a.s.B * a.s.H);  // dc: the carried gradient of c
  }

  // dG_t for one step's rows (row stride ldg) from h_t's gradient dh, and the step's share of
  // the bias gradient.
  void step(int64_t step, int64_t t, const float* dh, float* dg_t, int64_t ldg) {
    const int64_t B = a.s.B, H = a.s.H, GH = a.s.gates() * H;
    if (lstm) {
      const float* cp = step == 0 ? a.c0 : cs + st.t(step - 1) * B * H;
      const float* g_t = gates + t * B * GH;
      const float* tc_t = tcs + t * B * H;
      over_rows(B, GH, a.nthreads, [&](int64_t b) {
        k.lstm_backward(H, dh + b * H, a.dc0 + b * H, g_t + b * GH, cp ? cp + b * H : nullptr, tc_t + b * H,
                        dg_t + b * ldg);
      });
    } else {
      const float* y_t = a.y + t * B * H;
      over_rows(B, H, a.nthreads,
                [&](int64_t b) { k.rnn_backward(H, relu, dh + b * H, y_t + b * H, dg_t + b * ldg); });
    }
    add_column_sums(k, dg_t, B, GH, ldg, db.data(), a.nthreads);
  }

  void write_bias_grads() const {
    for (size_t j = 0; j < db.size(); ++j) a.db_ih[j] = a.db_hh[j] = static_cast<float>(db[j]);
  }
};

// Longer sequences: per step, one product gives both dh_{t-1} and dx_t,
//   [dh_{t-1} | dx_t] = dG_t [W_hh | W_ih]   ([W_hh | W_ih] packed once),
// while dG_t is in cache, and dG_t is laid out at once as the packed A operand of the
// weight-gradient product dG^T [X | H_prev]: the whole dG is never read back to be
// transposed or packed (LSTM I=128 H=256 T=128 B=16: bench/README.md).
void backward_merged(const BackwardArgs& a, GateGrads& gg, const Mm& mm, const Steps& st) {
  const RnnShape& s = a.s;
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * H, HI = H + I;
  const Isa isa = a.isa;
  const Scratch wcat(GH * HI);  // kept for the call: StepB holds on to it
  for (int64_t r = 0; r < GH; ++r) {
    std::memcpy(wcat.get() + r * HI, a.w_hh + r * H, static_cast<size_t>(H) * sizeof(float));
    std::memcpy(wcat.get() + r * HI + H, a.w_ih + r * I, static_cast<size_t>(I) * sizeof(float));
  }
  const StepB wc(wcat.get(), HI, false, GH, HI, T, isa);
  // One step's dG rows a cache line further apart than G*H floats: at G*H = 1024 the rows
  // would be 4 KiB apart, all in the same L1 sets, and the packing reads 16 of them at once.
  const int64_t ldg = GH + 16;
  // The weight gradients [dW_ih | dW_hh] = dG^T [X | H_prev] are summed over chunks of S steps
  // (about one K block of the GEMM): each chunk's dG^T is packed step by step into a buffer
  // that stays in cache, and its product is added as soon as the chunk is complete.
  const int64_t S = std::max<int64_t>(1, std::min<int64_t>(T, gemm_tile(isa).kc / B));
  Scratch dgt(gemm_packed_a_floats(GH, S * B, isa)), z(S * B * HI), dw(GH * HI);
  Scratch dg_cur(B * ldg), dg_prev(B * ldg), dh(B * H), dhx(B * HI);
  // [dh_{t-1} | dx_t] of the step just done (position tn) from its dG, into dh and dx.
  auto back_product = [&](int64_t tn, const float* dg_tn, const float* dy_add, float* dh_out) {
    wc.mm(mm, B, dg_tn, ldg, dhx.get(), HI);
    for (int64_t b = 0; b < B; ++b) {
      const float* row = dhx.get() + b * HI;
      float* d = dh_out + b * H;
      if (dy_add) {
        const float* add = dy_add + b * H;
        for (int64_t j = 0; j < H; ++j) d[j] = row[j] + add[j];
      } else {
        std::memcpy(d, row, static_cast<size_t>(H) * sizeof(float));
      }
      std::memcpy(a.dx + (tn * B + b) * I, row + H, static_cast<size_t>(I) * sizeof(float));
    }
  };
  int64_t chunk_end = T - 1;  // the chunk runs from this step down to chunk_end - S + 1 (or 0)
  for (int64_t step = T - 1; step >= 0; --step) {
    const int64_t t = st.t(step);
    const float* dy_t = a.dy ? a.dy + t * B * H : nullptr;
    if (step == T - 1)
      add_or_zero(dh.get(), dy_t, a.dh_n, B * H);
    else
      back_product(st.t(step + 1), dg_prev.get(), dy_t, dh.get());
    gg.step(step, t, dh.get(), dg_cur.get(), ldg);
    // The chunk's positions are p0 .. p0 + n - 1; dG_t is its columns (t - p0)*B ..
    const int64_t chunk_start = std::max<int64_t>(0, chunk_end - S + 1), n = chunk_end - chunk_start + 1;
    const int64_t p0 = std::min(st.t(chunk_start), st.t(chunk_end));
    gemm_pack_a(dg_cur.get(), ldg, true, GH, n * B, (t - p0) * B, (t - p0 + 1) * B, isa, dgt.get());
    if (step == chunk_start) {
      x_hprev_rows(s, a.x, a.h0, a.y, p0, p0 + n, z.get());
      GemmArgs g;
      g.M = GH, g.N = HI, g.K = n * B;
      g.a = dgt.get(), g.a_packed = true;
      g.b = z.get(), g.ldb = HI;
      g.out = dw.get(), g.ldc = HI;
      if (chunk_end < T - 1) g.c = dw.get(), g.beta = 1.0f;
      gemm(g, isa, a.nthreads);
      chunk_end = chunk_start - 1;
    }
    std::swap(dg_cur.p, dg_prev.p);
  }
  back_product(st.t(0), dg_prev.get(), nullptr, a.dh0);
  split_columns(dw.get(), GH, I, H, a.dw_ih, a.dw_hh);
  gg.write_bias_grads();
}

// Short sequences and small batches: all of dG first, then the weight gradients as GEMMs over
// all steps.
void backward_stepwise(const BackwardArgs& a, GateGrads& gg, const Mm& mm, const Steps& st,
                       const StepB& whh) {
  const RnnShape& s = a.s;
  const int64_t T = s.T, B = s.B, H = s.H, GH = s.gates() * H;
  Scratch dg(T * B * GH), dh(B * H);
  for (int64_t step = T - 1; step >= 0; --step) {
    const int64_t t = st.t(step);
    const float* dy_t = a.dy ? a.dy + t * B * H : nullptr;
    if (step == T - 1) {
      add_or_zero(dh.get(), dy_t, a.dh_n, B * H);
    } else {  // dh = dy[t] + dG_{t+1} W_hh
      const int64_t tn = st.t(step + 1);
      whh.mm(mm, B, dg.get() + tn * B * GH, GH, dh.get(), H, dy_t ? 1.0f : 0.0f, dy_t);
    }
    gg.step(step, t, dh.get(), dg.get() + t * B * GH, GH);
  }
  whh.mm(mm, B, dg.get() + st.t(0) * B * GH, GH, a.dh0, H);
  weight_grads(s, mm, dg.get(), dg.get(), a.x, a.h0, a.y, a.w_ih, a.dx, a.dw_ih, a.dw_hh);
  gg.write_bias_grads();
}

}  // namespace

void rnn_backward(const RnnShape& s, const float* dy, const float* dh_n, const float* dc_n, const float* x,
                  const float* h0, const float* c0, const float* w_ih, const float* w_hh, const float* y,
                  const float* ws, float* dx, float* dh0, float* dc0, float* dw_ih, float* dw_hh,
                  float* db_ih, float* db_hh, Isa isa, int nthreads) {
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * H;
  if (B == 0) {  // no rows: zero weight gradients (the GEMMs' K = 0 case would give the same)
    std::fill(dw_ih, dw_ih + GH * I, 0.0f);
    std::fill(dw_hh, dw_hh + GH * H, 0.0f);
    std::fill(db_ih, db_ih + GH, 0.0f);
    std::fill(db_hh, db_hh + GH, 0.0f);
    return;
  }
  const BackwardArgs a{s,  dy, dh_n, dc_n, x,     h0,    c0,    w_ih,  w_hh, y,
                       ws, dx, dh0,  dc0,  dw_ih, dw_hh, db_ih, db_hh, isa,  nthreads};
  const RnnKernels& k = FASTNN_KERNEL_TABLE(rnn_kernels, isa);
  const Mm mm{isa, nthreads};
  const Steps st{T, s.reverse};                    // the backward visits the forward's steps last to first
  const StepB whh(w_hh, H, false, GH, H, T, isa);  // W_hh (G*H, H): dh_{t-1} = dG_t W_hh
  if (s.cell == RnnCell::Gru) return gru_backward_steps(a, k, mm, st, whh);
  GateGrads gg(a, k, st);
  if (T > 2 && B >= kMergedBackwardMinBatch) return backward_merged(a, gg, mm, st);
  backward_stepwise(a, gg, mm, st, whh);
}

}  // namespace fastnn
