// Recurrent layers on the GPU: tanh/relu RNN, LSTM (gates i, f, g, o) and GRU (r, z, n) over a
// whole sequence, forward and backward through time, with the contract of csrc/ops/rnn.h
// (PyTorch's weight layout and two biases, reverse direction, null states and gradients as
// zeros) and the CPU's workspace layout, so that either forward's ws feeds either backward.
//
// Forward: the input projection of all T steps is one gemm (T*B, I) x W_ih^T with the biases
// (RNN and LSTM: b_ih + b_hh summed first, as the CPU; it lands in y for the RNN and in the
// workspace's gate block for the LSTM; GRU: b_ih, into the scratch). Each step is one gemm
// h_{t-1} (B, H) x W_hh^T (added in place to the step's projection; GRU: with b_hh, into a
// scratch gh), then one fused gate kernel, one thread per unit of the B x H step, which
// activates, writes h_t into y, the step's workspace (LSTM: activated gates, c_t, tanh c_t;
// GRU: r, z, n, gh_n) and, at the last step, h_n (and c_n).
// Backward, steps last to first: the gate-derivative kernel (one thread per unit) writes the
// step's pre-activation gradients dG_t (GRU: dGi_t and dGh_t) and carries dc (LSTM, in dc0) or
// the direct part of dh (GRU, in dh0); one gemm dG_t W_hh then gives dh_{t-1} (dy_{t-1} or the
// carried dh added in its epilogue). After the loop dx = dG W_ih, dW_ih = dG^T X and
// dW_hh = dGh^T H_prev are gemms over all T*B rows (H_prev: y of the previous steps, then h0's
// rows added), and db_ih / db_hh are column sums of dG / dGh, one thread per column summing
// the rows in order in float64 (the CPU's order and precision). No atomics: every result is
// the same from run to run.
//
// Temporary memory: the caller's scratch of rnn_scratch_floats floats (the binding allocates
// it through fastnn.cuda's runtime, CuPy's pool on the call's stream), so nothing here
// allocates or synchronises. Every launch
// is on `stream`, in order. Sizes the gemm cannot tile (more than 65535 tiles of 64 rows) are
// refused before the first launch.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/kernels.h"
#include "ops/gemm.h"
#include "ops/rnn.h"

namespace fastnn {
namespace cuda {
namespace {

// Elementwise over the B x H units of a step: small blocks, since a step often has only a few
// thousand units and more blocks spread them over more multiprocessors.
constexpr int THREADS = 128;
constexpr int64_t kGemmMaxRows = 65535LL * 64;  // gemm.cu's grid: 65535 row tiles of 64

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

__device__ __forceinline__ int64_t first_unit() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t unit_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// out[j] = (b_ih ? b_ih[j] : 0) + (b_hh ? b_hh[j] : 0): the RNN's and LSTM's one bias.
__global__ void __launch_bounds__(THREADS)
    bias_sum_kernel(int64_t n, const float* __restrict__ b_ih, const float* __restrict__ b_hh, float* out) {
  for (int64_t j = first_unit(); j < n; j += unit_stride())
    out[j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
}

// One step of B x H units; g (B, 4H): pre-activations in, activated gates out (in place).
__global__ void __launch_bounds__(THREADS)
    lstm_forward_kernel(int64_t B, int64_t H, float* g, const float* __restrict__ c_prev, float* c, float* tc,
                        float* h, float* h_n, float* c_n) {
  const int64_t n = B * H;
  for (int64_t u = first_unit(); u < n; u += unit_stride()) {
    const int64_t b = u / H, j = u - b * H;
    float* gr = g + b * 4 * H + j;
    const float i = sigmoid(gr[0]), f = sigmoid(gr[H]), z = tanhf(gr[2 * H]), o = sigmoid(gr[3 * H]);
    gr[0] = i;
    gr[H] = f;
    gr[2 * H] = z;
    gr[3 * H] = o;
    const float cj = c_prev ? f * c_prev[u] + i * z : i * z;
    const float t = tanhf(cj), hj = o * t;
    c[u] = cj;
    tc[u] = t;
    h[u] = hj;
    if (h_n) h_n[u] = hj;
    if (c_n) c_n[u] = cj;
  }
}

// gx (B, 3H) the input projection with b_ih; gh (B, 3H) h_{t-1} W_hh^T + b_hh, or null when
// h_{t-1} = 0 (then b_hh, or zeros). ws (B, 4H): r, z, n, gh_n.
__global__ void __launch_bounds__(THREADS)
    gru_forward_kernel(int64_t B, int64_t H, const float* __restrict__ gx, const float* __restrict__ gh,
                       const float* __restrict__ b_hh, const float* __restrict__ h_prev, float* ws, float* h,
                       float* h_n) {
  const int64_t n = B * H;
  for (int64_t u = first_unit(); u < n; u += unit_stride()) {
    const int64_t b = u / H, j = u - b * H;
    const float* xi = gx + b * 3 * H + j;
    float hr = 0.0f, hz = 0.0f, hn = 0.0f;
    if (gh) {
      const float* hh = gh + b * 3 * H + j;
      hr = hh[0], hz = hh[H], hn = hh[2 * H];
    } else if (b_hh) {
      hr = b_hh[j], hz = b_hh[H + j], hn = b_hh[2 * H + j];
    }
    const float r = sigmoid(xi[0] + hr), z = sigmoid(xi[H] + hz);
    const float nn = tanhf(xi[2 * H] + r * hn);
    float* w = ws + b * 4 * H + j;
    w[0] = r;
    w[H] = z;
    w[2 * H] = nn;
    w[3 * H] = hn;
    // (1 - z) n + z h as n + z (h - n), the CPU's form
    const float hj = h_prev ? nn + z * (h_prev[u] - nn) : nn - z * nn;
    h[u] = hj;
    if (h_n) h_n[u] = hj;
  }
}

// y (n) pre-activations in, act out (in place); relu keeps NaN, as the CPU.
__global__ void __launch_bounds__(THREADS) rnn_forward_kernel(int64_t n, bool relu, float* y, float* h_n) {
  for (int64_t u = first_unit(); u < n; u += unit_stride()) {
    const float v = y[u];
    const float a = relu ? (v < 0.0f ? 0.0f : v) : tanhf(v);
    y[u] = a;
    if (h_n) h_n[u] = a;
  }
}

// dh = dh_a + dh_b (either null: zeros), the full gradient of h_t; dc_in the carried gradient of
// c_t (null: zeros), dc_out that of c_{t-1} (may equal dc_in); dg (B, 4H).
__global__ void __launch_bounds__(THREADS)
    lstm_backward_kernel(int64_t B, int64_t H, const float* dh_a, const float* dh_b, const float* dc_in,
                         float* dc_out, const float* __restrict__ g, const float* __restrict__ c_prev,
                         const float* __restrict__ tc, float* dg) {
  const int64_t n = B * H;
  for (int64_t u = first_unit(); u < n; u += unit_stride()) {
    const int64_t b = u / H, j = u - b * H;
    const float d = (dh_a ? dh_a[u] : 0.0f) + (dh_b ? dh_b[u] : 0.0f);
    const float* gr = g + b * 4 * H + j;
    const float i = gr[0], f = gr[H], z = gr[2 * H], o = gr[3 * H], t = tc[u];
    const float dcj = (dc_in ? dc_in[u] : 0.0f) + d * o * (1.0f - t * t);
    const float cp = c_prev ? c_prev[u] : 0.0f;
    float* out = dg + b * 4 * H + j;
    out[0] = dcj * z * i * (1.0f - i);
    out[H] = dcj * cp * f * (1.0f - f);
    out[2 * H] = dcj * i * (1.0f - z * z);
    out[3 * H] = d * t * o * (1.0f - o);
    dc_out[u] = dcj * f;
  }
}

// dh_in the carried gradient of h_t (null: zeros) plus dy (null: zeros); dh_out (may equal
// dh_in) its direct part in dh_{t-1}, dh * z; dgi, dgh (B, 3H).
__global__ void __launch_bounds__(THREADS)
    gru_backward_kernel(int64_t B, int64_t H, const float* dh_in, const float* __restrict__ dy,
                        const float* __restrict__ ws, const float* __restrict__ h_prev, float* dgi,
                        float* dgh, float* dh_out) {
  const int64_t n = B * H;
  for (int64_t u = first_unit(); u < n; u += unit_stride()) {
    const int64_t b = u / H, j = u - b * H;
    const float d = (dh_in ? dh_in[u] : 0.0f) + (dy ? dy[u] : 0.0f);
    const float* w = ws + b * 4 * H + j;
    const float r = w[0], z = w[H], nn = w[2 * H], ghn = w[3 * H];
    const float hp = h_prev ? h_prev[u] : 0.0f;
    const float dan = d * (1.0f - z) * (1.0f - nn * nn);
    const float dar = dan * ghn * r * (1.0f - r);
    const float daz = d * (hp - nn) * z * (1.0f - z);
    float* oi = dgi + b * 3 * H + j;
    float* oh = dgh + b * 3 * H + j;
    oi[0] = dar;
    oi[H] = daz;
    oi[2 * H] = dan;
    oh[0] = dar;
    oh[H] = daz;
    oh[2 * H] = dan * r;
    dh_out[u] = d * z;
  }
}

// da = dh * act'(h) from the output h, dh = dh_a + dh_b (either null: zeros).
__global__ void __launch_bounds__(THREADS)
    rnn_backward_kernel(int64_t n, bool relu, const float* dh_a, const float* dh_b,
                        const float* __restrict__ h, float* da) {
  for (int64_t u = first_unit(); u < n; u += unit_stride()) {
    const float d = (dh_a ? dh_a[u] : 0.0f) + (dh_b ? dh_b[u] : 0.0f);
    const float hv = h[u];
    da[u] = relu ? (hv > 0.0f ? d : 0.0f) : d * (1.0f - hv * hv);
  }
}

// out[c] (and out2[c] when given) = the sum of a[r * cols + c] over rows r in order, in float64.
__global__ void __launch_bounds__(THREADS)
    column_sum_kernel(int64_t rows, int64_t cols, const float* __restrict__ a, float* out, float* out2) {
  const int64_t c = first_unit();
  if (c >= cols) return;
  double s = 0.0;
  for (int64_t r = 0; r < rows; ++r) s += a[r * cols + c];
  out[c] = static_cast<float>(s);
  if (out2) out2[c] = static_cast<float>(s);
}

// out (M, N) = op(a) op(b) [+ beta c] [+ bias]: a (M, K) with row stride lda, or (K, M) when ta;
// b (K, N) with row stride ldb, or (N, K) when tb.
struct Mm {
  Stream stream;
  void operator()(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, bool ta, const float* b,
                  int64_t ldb, bool tb, float* out, int64_t ldc, float beta = 0.0f, const float* c = nullptr,
                  const float* bias = nullptr) const {
    GemmArgs g;
    g.M = M, g.N = N, g.K = K;
    g.a = a, g.lda = lda, g.trans_a = ta;
    g.b = b, g.ldb = ldb, g.trans_b = tb;
    g.out = out, g.ldc = ldc;
    g.beta = beta, g.c = c, g.bias = bias;
    gemm(g, stream);
  }
};

// The elementwise launches: n units, one thread each (a grid-stride loop past the grid's cap).
struct Units {
  cudaStream_t stream;
  const char* op;
  template <class F, class... Args>
  void operator()(F* kernel, int64_t n, Args... args) const {
    if (n <= 0) return;
    FASTNN_LAUNCH(kernel, blocks_for(n, THREADS), THREADS, 0, stream)(args...);
    check_launch(op);
  }
};

// The time order: step s (in the order the forward runs) is position t(s).
struct Steps {
  int64_t T;
  bool reverse;
  int64_t t(int64_t s) const { return reverse ? T - 1 - s : s; }
};

void check_sizes(const RnnShape& s, const char* op) {
  if (s.T <= 0 || s.H <= 0 || s.B < 0 || s.I < 0)
    throw std::invalid_argument(std::string(op) + ": expected T > 0, H > 0, B >= 0 and I >= 0");
  const int64_t rows = std::max(s.T * s.B, static_cast<int64_t>(s.gates()) * s.H);
  if (rows > kGemmMaxRows)
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(rows) +
                                " GEMM rows (T*B or G*H) exceed the CUDA gemm's grid (at most " +
                                std::to_string(kGemmMaxRows) + ")");
}

// dx = dG W_ih, dW_ih = dG^T X, dW_hh = dGh^T H_prev (H_prev: h0 for the first step, y of the
// previous step for the others); dG and dGh (T*B, G*H) differ for GRU only.
void weight_grads(const RnnShape& s, const Mm& mm, const float* dG, const float* dGh, const float* x,
                  const float* h0, const float* y, const float* w_ih, float* dx, float* dw_ih, float* dw_hh) {
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * H, TB = T * B;
  mm(TB, I, GH, dG, GH, false, w_ih, I, false, dx, I);
  mm(GH, I, TB, dG, GH, true, x, I, false, dw_ih, I);
  // Steps after the first, in one product: forward order pairs dGh rows of t = 1..T-1 with y
  // rows 0..T-2; reverse pairs t = 0..T-2 with y rows 1..T-1. T == 1: K = 0, zeros (y unread).
  const float* dgh_rest = T > 1 && !s.reverse ? dGh + B * GH : dGh;
  const float* y_rest = T > 1 ? (s.reverse ? y + B * H : y) : nullptr;
  mm(GH, H, (T - 1) * B, dgh_rest, GH, true, y_rest, H, false, dw_hh, H);
  if (h0 && B > 0) {
    const int64_t t_first = s.reverse ? T - 1 : 0;
    mm(GH, H, B, dGh + t_first * B * GH, GH, true, h0, H, false, dw_hh, H, 1.0f, dw_hh);
  }
}

}  // namespace

int64_t rnn_scratch_floats(const RnnShape& s, bool backward) {
  const int64_t TB = s.T * s.B, GH = s.gates() * s.H;
  if (s.cell == RnnCell::Gru) return backward ? 2 * TB * GH : TB * GH + s.B * GH;
  return backward ? TB * GH + s.B * s.H : GH;
}

void rnn_forward(const RnnShape& s, const float* x, const float* h0, const float* c0, const float* w_ih,
                 const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* h_n, float* c_n,
                 float* ws, float* scratch, Stream stream) {
  check_sizes(s, "rnn_forward");
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * H, TB = T * B, BH = B * H;
  if (B == 0) return;
  const Mm mm{stream};
  const Units units{static_cast<cudaStream_t>(stream), "rnn_forward"};
  const Steps st{T, s.reverse};

  if (s.cell == RnnCell::Gru) {
    float* gx = scratch;
    float* gh = scratch + TB * GH;
    mm(TB, GH, I, x, I, false, w_ih, I, true, gx, GH, 0.0f, nullptr, b_ih);
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = st.t(step);
      const float* hp = step == 0 ? h0 : y + st.t(step - 1) * BH;
      if (hp) mm(B, GH, H, hp, H, false, w_hh, H, true, gh, GH, 0.0f, nullptr, b_hh);
      units(gru_forward_kernel, BH, B, H, static_cast<const float*>(gx + t * B * GH),
            static_cast<const float*>(hp ? gh : nullptr), b_hh, hp, ws + t * B * 4 * H, y + t * BH,
            step == T - 1 ? h_n : nullptr);
    }
    return;
  }

  // RNN and LSTM: both biases enter the input projection, summed first.
  const float* bias = nullptr;
  if (b_ih || b_hh) {
    units(bias_sum_kernel, GH, GH, b_ih, b_hh, scratch);
    bias = scratch;
  }
  if (s.cell == RnnCell::Lstm) {
    float* gates = ws;
    float* cs = ws + TB * GH;
    float* tcs = cs + TB * H;
    mm(TB, GH, I, x, I, false, w_ih, I, true, gates, GH, 0.0f, nullptr, bias);
    for (int64_t step = 0; step < T; ++step) {
      const int64_t t = st.t(step), p = step == 0 ? -1 : st.t(step - 1);
      const float* hp = p < 0 ? h0 : y + p * BH;
      const float* cp = p < 0 ? c0 : cs + p * BH;
      float* g_t = gates + t * B * GH;
      if (hp) mm(B, GH, H, hp, H, false, w_hh, H, true, g_t, GH, 1.0f, g_t);
      const bool last = step == T - 1;
      units(lstm_forward_kernel, BH, B, H, g_t, cp, cs + t * BH, tcs + t * BH, y + t * BH,
            last ? h_n : nullptr, last ? c_n : nullptr);
    }
    return;
  }

  // RNN: the projection goes straight into y, each step adds h_{t-1} W_hh^T and activates in place.
  const bool relu = s.cell == RnnCell::RnnRelu;
  mm(TB, H, I, x, I, false, w_ih, I, true, y, H, 0.0f, nullptr, bias);
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = st.t(step);
    const float* hp = step == 0 ? h0 : y + st.t(step - 1) * BH;
    float* y_t = y + t * BH;
    if (hp) mm(B, H, H, hp, H, false, w_hh, H, true, y_t, H, 1.0f, y_t);
    units(rnn_forward_kernel, BH, BH, relu, y_t, step == T - 1 ? h_n : nullptr);
  }
}

void rnn_backward(const RnnShape& s, const float* dy, const float* dh_n, const float* dc_n, const float* x,
                  const float* h0, const float* c0, const float* w_ih, const float* w_hh, const float* y,
                  const float* ws, float* dx, float* dh0, float* dc0, float* dw_ih, float* dw_hh,
                  float* db_ih, float* db_hh, float* scratch, Stream stream) {
  check_sizes(s, "rnn_backward");
  const int64_t T = s.T, B = s.B, H = s.H, GH = s.gates() * H, TB = T * B, BH = B * H;
  const Mm mm{stream};
  const cudaStream_t cs_ = static_cast<cudaStream_t>(stream);
  const Units units{cs_, "rnn_backward"};
  const Steps st{T, s.reverse};
  // The backward visits the forward's steps last to first.
  const int64_t t_first = st.t(0);
  const unsigned col_blocks = blocks_for(GH, THREADS, 2147483647u);

  if (s.cell == RnnCell::Gru) {
    float* dgi = scratch;
    float* dgh = scratch + TB * GH;
    for (int64_t step = T - 1; step >= 0 && B > 0; --step) {
      const int64_t t = st.t(step);
      if (step < T - 1)  // dh += dGh_{t+1} W_hh (the step the backward has just done)
        mm(B, H, GH, dgh + st.t(step + 1) * B * GH, GH, false, w_hh, H, false, dh0, H, 1.0f, dh0);
      const float* hp = step == 0 ? h0 : y + st.t(step - 1) * BH;
      units(gru_backward_kernel, BH, B, H, step == T - 1 ? dh_n : static_cast<const float*>(dh0),
            dy ? dy + t * BH : nullptr, ws + t * B * 4 * H, hp, dgi + t * B * GH, dgh + t * B * GH, dh0);
    }
    mm(B, H, GH, dgh + t_first * B * GH, GH, false, w_hh, H, false, dh0, H, 1.0f, dh0);
    weight_grads(s, mm, dgi, dgh, x, h0, y, w_ih, dx, dw_ih, dw_hh);
    FASTNN_LAUNCH(column_sum_kernel, col_blocks, THREADS, 0, cs_)(TB, GH, dgi, db_ih, nullptr);
    check_launch("rnn_backward");
    FASTNN_LAUNCH(column_sum_kernel, col_blocks, THREADS, 0, cs_)(TB, GH, dgh, db_hh, nullptr);
    check_launch("rnn_backward");
    return;
  }

  float* dg = scratch;
  float* dh = scratch + TB * GH;
  const bool lstm = s.cell == RnnCell::Lstm, relu = s.cell == RnnCell::RnnRelu;
  const float* gates = ws;
  const float* cs = ws + TB * GH;
  const float* tcs = cs + TB * H;
  for (int64_t step = T - 1; step >= 0 && B > 0; --step) {
    const int64_t t = st.t(step);
    const float* dy_t = dy ? dy + t * BH : nullptr;
    const float *dh_a = dy_t, *dh_b = dh_n;  // the last step: dy[t] + dh_n
    if (step < T - 1) {                      // dh = dy[t] + dG_{t+1} W_hh
      mm(B, H, GH, dg + st.t(step + 1) * B * GH, GH, false, w_hh, H, false, dh, H, dy_t ? 1.0f : 0.0f, dy_t);
      dh_a = dh, dh_b = nullptr;
    }
    float* dg_t = dg + t * B * GH;
    if (lstm) {
      const float* cp = step == 0 ? c0 : cs + st.t(step - 1) * BH;
      units(lstm_backward_kernel, BH, B, H, dh_a, dh_b, step == T - 1 ? dc_n : static_cast<const float*>(dc0),
            dc0, gates + t * B * GH, cp, tcs + t * BH, dg_t);
    } else {
      units(rnn_backward_kernel, BH, BH, relu, dh_a, dh_b, y + t * BH, dg_t);
    }
  }
  mm(B, H, GH, dg + t_first * B * GH, GH, false, w_hh, H, false, dh0, H);
  weight_grads(s, mm, dg, dg, x, h0, y, w_ih, dx, dw_ih, dw_hh);
  FASTNN_LAUNCH(column_sum_kernel, col_blocks, THREADS, 0, cs_)(TB, GH, dg, db_ih, db_hh);
  check_launch("rnn_backward");
}

}  // namespace cuda
}  // namespace fastnn
