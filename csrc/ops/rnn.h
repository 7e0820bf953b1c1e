// Whole-sequence recurrent layers, forward and backward through time: tanh/relu RNN, LSTM, GRU
// (PyTorch's weight layout, gate order and biases). G gates: 1 RNN, 4 LSTM (i, f, g, o), 3 GRU
// (r, z, n).
//
//   x (T, B, I), h0/c0 (B, H) or null (zeros), w_ih (G*H, I), w_hh (G*H, H), b_ih/b_hh (G*H,) or
//   null; y (T, B, H), h_n/c_n (B, H).                                  (outputs are overwritten)
//   RNN   h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
//   LSTM  [i f g o] = [sig sig tanh sig](x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
//         c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
//   GRU   gi = x_t W_ih^T + b_ih, gh = h_{t-1} W_hh^T + b_hh; r, z = sig(gi + gh) (their parts)
//         n = tanh(gi_n + r gh_n),  h_t = (1 - z) n + z h_{t-1}
//   reverse: the steps run t = T-1 .. 0 (h_{t-1} above is then the state after step t+1); y[t]
//   is still the output at input position t (a bidirectional layer's second direction).
//
// Algorithm (oneDNN's): the input projection of all T steps is one GEMM (T*B, I) x W_ih^T with
// the biases added; each step is one GEMM h_{t-1} (B, H) x W_hh^T, read from a (H, G*H) copy
// made once per call (the GEMM's small-M path reads it in place, unpacked), then the fused gate
// activations. The backward computes the pre-activation gradients dG_t step by step (one GEMM
// dG_t (B, G*H) x W_hh per step for dh_{t-1}), then dx = dG W_ih, dW_ih = dG^T X and
// dW_hh = dG^T H_prev as single GEMMs over all T*B rows. RNN and LSTM with T > 2 and B >= 8
// instead: the step's product is dG_t [W_hh | W_ih], which gives dh_{t-1} and dx_t together
// while dG_t is in cache, and dG_t is packed at once (gemm_pack_a) as columns of the A operand
// of [dW_ih | dW_hh] = dG^T [X | H_prev], summed over chunks of about one GEMM K block as each
// chunk completes. The bias gradients are column sums of dG in float64, added step by step in
// the backward's order while each step's rows are in cache.
//
// Workspace ws (float32, rnn_ws_size floats), written by the forward for the backward:
//   LSTM  [gates (T, B, 4H): activated i, f, g, o | c (T, B, H): c_t | tanh c (T, B, H)]
//   GRU   (T, B, 4H): r, z, n, and gh_n = (h_{t-1} W_hn^T + b_hn) per row
//   RNN   nothing (0 floats): the backward reads h_t from y.
// The backward reads y only as h_{t-1} of the other steps: with T == 1, y may be null.
//
// Parallel inside each GEMM (over output tiles) and inside the gates (over batch rows); every
// value is computed by the same instructions whatever the thread count, so results are
// bit-identical for every thread count. They may differ between ISAs in the last bits.
// B == 0: empty outputs, zero weight gradients. T == 0 and H == 0 are rejected by the meta
// functions below.
#pragma once
#include <cstdint>
#include <string>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

enum class RnnCell : int { RnnTanh = 0, RnnRelu = 1, Lstm = 2, Gru = 3 };

struct RnnShape {
  int64_t T = 0, B = 0, I = 0, H = 0;
  RnnCell cell = RnnCell::Lstm;
  bool reverse = false;
  int gates() const { return cell == RnnCell::Lstm ? 4 : cell == RnnCell::Gru ? 3 : 1; }
};

// Floats of the workspace for this shape (layout above).
int64_t rnn_ws_size(const RnnShape& s);

// Throws ArgError (ValueError) naming the op on T <= 0, H <= 0, negative or too large sizes.
void rnn_check_shape(const RnnShape& s, const char* op);

// The rules of lstm/gru/rnn_forward and _backward on every device (csrc/ops/rnn_meta.cpp;
// ArgError naming op): float32 C-contiguous arrays of the shapes above, the shape struct
// returned. `cell` is Lstm, Gru, or RnnTanh for the RNN, whose nonlinearity ("tanh" or
// "relu") then picks RnnTanh or RnnRelu (ignored for the others). An optional array left out
// (h0, c0, biases, dy, dh_n, dc_n; c0 and dc_n always for RNN and GRU) has present = false. The
// backward's y may be left out where it is not read (T == 1, LSTM and GRU), and ws where it has
// no elements (rnn_ws_size(s) == 0). The outputs are freshly allocated: y (T, B, H), h_n and
// c_n (B, H), ws (rnn_ws_size(s),); dx (T, B, I), dh0 and dc0 (B, H), dw_ih (G*H, I),
// dw_hh (G*H, H), db_ih and db_hh (G*H,).
RnnShape rnn_forward_meta(const char* op, RnnCell cell, const std::string& nonlinearity, bool reverse,
                          const ArrayRef& x, const ArrayRef& h0, const ArrayRef& c0, const ArrayRef& w_ih,
                          const ArrayRef& w_hh, const ArrayRef& b_ih, const ArrayRef& b_hh);
RnnShape rnn_backward_meta(const char* op, RnnCell cell, const std::string& nonlinearity, bool reverse,
                           const ArrayRef& dy, const ArrayRef& dh_n, const ArrayRef& dc_n, const ArrayRef& x,
                           const ArrayRef& h0, const ArrayRef& c0, const ArrayRef& w_ih, const ArrayRef& w_hh,
                           const ArrayRef& y, const ArrayRef& ws);

// c0/c_n: LSTM only (null otherwise).
void rnn_forward(const RnnShape& s, const float* x, const float* h0, const float* c0, const float* w_ih,
                 const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* h_n, float* c_n,
                 float* ws, Isa isa, int nthreads);

// dy (T, B, H), dh_n and dc_n (B, H) may be null (zeros). Outputs: dx (T, B, I), dh0 (B, H),
// dc0 (B, H; LSTM only, else null), dw_ih, dw_hh, db_ih, db_hh (equal for RNN and LSTM; for GRU
// db_hh's n part is the gradient of b_hn, inside r's product).
void rnn_backward(const RnnShape& s, const float* dy, const float* dh_n, const float* dc_n, const float* x,
                  const float* h0, const float* c0, const float* w_ih, const float* w_hh, const float* y,
                  const float* ws, float* dx, float* dh0, float* dc0, float* dw_ih, float* dw_hh,
                  float* db_ih, float* db_hh, Isa isa, int nthreads);

// The per-row gate kernels of one ISA (csrc/cpu/rnn_impl.h compiled into csrc/cpu/rnn.cpp,
// avx2/rnn.cpp, avx512/rnn.cpp). Each handles one batch row of H units; null state pointers
// are zeros.
struct RnnKernels {
  // gates (4H) pre-activations in, activated out (in place); c, tc, h (H) written.
  void (*lstm_forward)(int64_t H, float* gates, const float* c_prev, float* c, float* tc, float* h);
  // dh (H) the full gradient of h_t; dc (H) in: the carried gradient of c_t, out: that of c_{t-1};
  // dg (4H) the pre-activation gradient.
  void (*lstm_backward)(int64_t H, const float* dh, float* dc, const float* gates, const float* c_prev,
                        const float* tc, float* dg);
  // gi, gh (3H) the projections (biases included); ws (4H) r, z, n, gh_n written; h (H) written.
  void (*gru_forward)(int64_t H, const float* gi, const float* gh, const float* h_prev, float* ws, float* h);
  // dh (H) in: the carried gradient (dy added here when dy is not null), out: dh * z (the direct
  // part of dh_{t-1}); dgi, dgh (3H) written.
  void (*gru_backward)(int64_t H, float* dh, const float* dy, const float* ws, const float* h_prev,
                       float* dgi, float* dgh);
  // y (H) pre-activations in, act out (in place); relu or tanh.
  void (*rnn_forward)(int64_t H, bool relu, float* y);
  // da = dh * act'(h) from the output h.
  void (*rnn_backward)(int64_t H, bool relu, const float* dh, const float* h, float* da);
  // acc[j] += a[r*lda + j] for j0 <= j < j1, rows r = 0 .. rows - 1 in order, in float64 (a
  // step's share of a bias gradient).
  void (*add_column_sums)(const float* a, int64_t rows, int64_t lda, int64_t j0, int64_t j1, double* acc);
};

extern const RnnKernels rnn_kernels_default, rnn_kernels_avx2, rnn_kernels_avx512;

}  // namespace fastnn
