// The recurrent layers' rules on every device: the workspace size, the size limits and the meta
// functions of csrc/ops/rnn.h, called by the CPU binding (csrc/bind/rnn.cpp) and the CUDA one
// (csrc/cuda/module.cpp) before either allocates or launches anything.
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "ops/rnn.h"

namespace fastnn {
namespace {

const char* cell_name(RnnCell c) { return c == RnnCell::Lstm ? "lstm" : c == RnnCell::Gru ? "gru" : "rnn"; }

RnnCell cell_of(const char* op, RnnCell cell, const std::string& nonlinearity) {
  if (cell != RnnCell::RnnTanh && cell != RnnCell::RnnRelu) return cell;
  if (nonlinearity == "tanh") return RnnCell::RnnTanh;
  if (nonlinearity == "relu") return RnnCell::RnnRelu;
  arg_value_fail(op, "expected nonlinearity 'tanh' or 'relu', got '" + nonlinearity + "'");
}

// A float32 C-contiguous array of exactly `shape` (`what` describes it), or left out where
// optional.
void check_shaped(const char* op, const ArrayRef& a, const Shape& shape, bool optional,
                  const std::string& what) {
  if (!a.present) {
    if (optional) return;
    arg_type_fail(
        op, std::string("expected ") + a.name + " to be a " + a.kind + " of float32 " + what + ", got None");
  }
  check_f32(op, a);
  if (a.shape != shape) {
    arg_value_fail(op, std::string("expected ") + a.name + " of shape " + shape_str(shape) + " " + what +
                           ", got " + shape_str(a.shape));
  }
}

// The shape from x (T, B, I) and w_hh (G*H, H), then w_ih and the initial states against it.
RnnShape inputs(const char* op, RnnCell cell, bool reverse, const ArrayRef& x, const ArrayRef& h0,
                const ArrayRef& c0, const ArrayRef& w_ih, const ArrayRef& w_hh) {
  check_f32(op, x);
  if (x.ndim() != 3)
    arg_value_fail(op, "expected x of 3 dimensions (T, B, I), got shape " + shape_str(x.shape));
  check_f32(op, w_hh);
  RnnShape s;
  s.cell = cell;
  s.reverse = reverse;
  const int64_t G = s.gates();
  const std::string gh = G == 1 ? "H" : std::to_string(G) + "*H";
  if (w_hh.ndim() != 2 || w_hh.shape[0] != G * w_hh.shape[1]) {
    arg_value_fail(op, "expected w_hh of shape (" + gh + ", H), got " + shape_str(w_hh.shape));
  }
  s.T = x.shape[0], s.B = x.shape[1], s.I = x.shape[2], s.H = w_hh.shape[1];
  rnn_check_shape(s, op);
  check_shaped(op, w_ih, {G * s.H, s.I}, false, "(" + gh + ", I) with I = x.shape[2]");
  check_shaped(op, h0, {s.B, s.H}, true, "(B, H) or None");
  if (cell == RnnCell::Lstm) check_shaped(op, c0, {s.B, s.H}, true, "(B, H) or None");
  return s;
}

}  // namespace

int64_t rnn_ws_size(const RnnShape& s) {
  const int64_t TB = s.T * s.B;
  switch (s.cell) {
    case RnnCell::Lstm:
      return TB * 6 * s.H;
    case RnnCell::Gru:
      return TB * 4 * s.H;
    default:
      return 0;
  }
}

void rnn_check_shape(const RnnShape& s, const char* op) {
  auto fail = [op](const std::string& what) { arg_value_fail(op, what); };
  if (s.T <= 0) fail("expected a sequence length T > 0, got T=" + std::to_string(s.T));
  if (s.H <= 0) fail("expected a hidden size H > 0, got H=" + std::to_string(s.H));
  if (s.B < 0 || s.I < 0) fail("sizes must be non-negative");
  // Every GEMM operand must fit the GEMM's 32-bit tile arithmetic: the largest are
  // (T*B, G*H), (T*B, I), (G*H, I), (G*H, H) and the LSTM workspace rows (T*B, 6H).
  const int64_t lim = std::numeric_limits<int32_t>::max();
  const int64_t TB = s.T * s.B, W = 6 * s.H;
  if (s.T > lim || s.B > lim || s.I > lim || s.H > lim / 6 ||
      (TB > 0 && (TB > lim / W || TB > lim / std::max<int64_t>(s.I, 1))) || W * std::max(s.I, s.H) > lim) {
    fail("expected every matrix to have at most 2^31-1 elements, got T=" + std::to_string(s.T) +
         " B=" + std::to_string(s.B) + " I=" + std::to_string(s.I) + " H=" + std::to_string(s.H));
  }
}

RnnShape rnn_forward_meta(const char* op, RnnCell cell, const std::string& nonlinearity, bool reverse,
                          const ArrayRef& x, const ArrayRef& h0, const ArrayRef& c0, const ArrayRef& w_ih,
                          const ArrayRef& w_hh, const ArrayRef& b_ih, const ArrayRef& b_hh) {
  const RnnShape s = inputs(op, cell_of(op, cell, nonlinearity), reverse, x, h0, c0, w_ih, w_hh);
  const int64_t GH = s.gates() * s.H;
  check_shaped(op, b_ih, {GH}, true, "(G*H,) or None");
  check_shaped(op, b_hh, {GH}, true, "(G*H,) or None");
  return s;
}

RnnShape rnn_backward_meta(const char* op, RnnCell cell, const std::string& nonlinearity, bool reverse,
                           const ArrayRef& dy, const ArrayRef& dh_n, const ArrayRef& dc_n, const ArrayRef& x,
                           const ArrayRef& h0, const ArrayRef& c0, const ArrayRef& w_ih, const ArrayRef& w_hh,
                           const ArrayRef& y, const ArrayRef& ws) {
  const RnnShape s = inputs(op, cell_of(op, cell, nonlinearity), reverse, x, h0, c0, w_ih, w_hh);
  const int64_t T = s.T, B = s.B, H = s.H;
  check_shaped(op, dy, {T, B, H}, true, "(T, B, H) or None");
  check_shaped(op, dh_n, {B, H}, true, "(B, H) or None");
  if (s.cell == RnnCell::Lstm) check_shaped(op, dc_n, {B, H}, true, "(B, H) or None");
  // y is read as h_{t-1} of steps after the first, and by the RNN's activation gradient.
  const bool rnn = s.cell == RnnCell::RnnTanh || s.cell == RnnCell::RnnRelu;
  check_shaped(op, y, {T, B, H}, T == 1 && !rnn, "(T, B, H) (the forward's output)");
  const int64_t n = rnn_ws_size(s);
  check_shaped(op, ws, {n}, n == 0,
               std::string("(the workspace of ") + cell_name(s.cell) + "_forward for these shapes)");
  return s;
}

}  // namespace fastnn
