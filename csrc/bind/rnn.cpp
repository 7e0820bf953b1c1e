// Binding of the whole-sequence recurrent kernels (rnn/lstm/gru_forward and _backward): checks
// with the GIL held (float32 C-contiguous arrays of consistent shapes, T > 0, H > 0), outputs
// allocated, then the kernel without the GIL. Every output is freshly allocated: nothing the
// kernel writes can alias an input.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/rnn.h"

namespace fastnn::bind {
namespace {

const char* cell_name(RnnCell c) { return c == RnnCell::Lstm ? "lstm" : c == RnnCell::Gru ? "gru" : "rnn"; }

// A float32 C-contiguous array of exactly `shape` (None allowed when optional: returns None).
py::object shaped(const char* op, const char* name, py::handle obj, const std::vector<int64_t>& shape,
                  bool optional, const char* what) {
  if (obj.is_none()) {
    if (optional) return py::none();
    type_fail(op,
              std::string("expected ") + name + " to be a numpy.ndarray of float32 " + what + ", got None");
  }
  py::array a = f32_array(op, name, obj);
  if (shape_of(a) != shape) {
    value_fail(op, std::string("expected ") + name + " of shape " + shape_str(shape) + " " + what + ", got " +
                       shape_str(a));
  }
  return std::move(a);
}

const float* cptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<const float*>(py::reinterpret_borrow<py::array>(o).data());
}
float* mptr(py::array& a) { return static_cast<float*>(a.mutable_data()); }

RnnCell cell_of(RnnCell base, const char* op, const std::string& nonlinearity) {
  if (base != RnnCell::RnnTanh) return base;
  if (nonlinearity == "tanh") return RnnCell::RnnTanh;
  if (nonlinearity == "relu") return RnnCell::RnnRelu;
  value_fail(op, "expected nonlinearity 'tanh' or 'relu', got '" + nonlinearity + "'");
}

// The shape from x (T, B, I) and w_hh (G*H, H), the weights and biases checked against it.
struct Inputs {
  RnnShape s;
  py::array x, w_ih, w_hh;
  py::object h0, c0;
};

Inputs inputs(const char* op, RnnCell cell, bool reverse, py::handle x_obj, py::handle h0_obj,
              py::handle c0_obj, py::handle w_ih_obj, py::handle w_hh_obj) {
  Inputs in;
  in.x = f32_array(op, "x", x_obj);
  if (in.x.ndim() != 3) value_fail(op, "expected x of 3 dimensions (T, B, I), got shape " + shape_str(in.x));
  in.w_hh = f32_array(op, "w_hh", w_hh_obj);
  in.s.cell = cell;
  in.s.reverse = reverse;
  const int64_t G = in.s.gates();
  const std::string gh = G == 1 ? "H" : std::to_string(G) + "*H";
  if (in.w_hh.ndim() != 2 || in.w_hh.shape(0) != G * in.w_hh.shape(1)) {
    value_fail(op, "expected w_hh of shape (" + gh + ", H), got " + shape_str(in.w_hh));
  }
  in.s.T = in.x.shape(0);
  in.s.B = in.x.shape(1);
  in.s.I = in.x.shape(2);
  in.s.H = in.w_hh.shape(1);
  try {
    rnn_check_shape(in.s, op);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  const int64_t B = in.s.B, H = in.s.H, I = in.s.I;
  in.w_ih = py::reinterpret_borrow<py::array>(
      shaped(op, "w_ih", w_ih_obj, {G * H, I}, false, ("(" + gh + ", I) with I = x.shape[2]").c_str()));
  in.h0 = shaped(op, "h0", h0_obj, {B, H}, true, "(B, H) or None");
  if (cell == RnnCell::Lstm)
    in.c0 = shaped(op, "c0", c0_obj, {B, H}, true, "(B, H) or None");
  else
    in.c0 = py::none();
  return in;
}

py::tuple forward(RnnCell base, const char* op, py::handle x_obj, py::handle h0_obj, py::handle c0_obj,
                  py::handle w_ih_obj, py::handle w_hh_obj, py::handle b_ih_obj, py::handle b_hh_obj,
                  const std::string& nonlinearity, bool reverse, py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  const RnnCell cell = cell_of(base, op, nonlinearity);
  const Inputs in = inputs(op, cell, reverse, x_obj, h0_obj, c0_obj, w_ih_obj, w_hh_obj);
  const RnnShape& s = in.s;
  const int64_t GH = s.gates() * s.H;
  const py::object b_ih = shaped(op, "b_ih", b_ih_obj, {GH}, true, "(G*H,) or None");
  const py::object b_hh = shaped(op, "b_hh", b_hh_obj, {GH}, true, "(G*H,) or None");
  py::array y = new_array<float>({s.T, s.B, s.H}), h_n = new_array<float>({s.B, s.H});
  py::array c_n = new_array<float>({cell == RnnCell::Lstm ? s.B : 0, s.H});
  py::array ws = new_array<float>({rnn_ws_size(s)});
  const float *xp = cptr(in.x), *h0p = cptr(in.h0), *c0p = cptr(in.c0), *wip = cptr(in.w_ih),
              *whp = cptr(in.w_hh);
  const float *bip = cptr(b_ih), *bhp = cptr(b_hh);
  float *yp = mptr(y), *hnp = mptr(h_n), *cnp = cell == RnnCell::Lstm ? mptr(c_n) : nullptr, *wsp = mptr(ws);
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    rnn_forward(s, xp, h0p, c0p, wip, whp, bip, bhp, yp, hnp, cnp, wsp, isa, nt);
  }
  if (cell == RnnCell::Lstm) return py::make_tuple(y, h_n, c_n, ws);
  return py::make_tuple(y, h_n, ws);
}

py::tuple backward(RnnCell base, const char* op, py::handle dy_obj, py::handle dh_n_obj, py::handle dc_n_obj,
                   py::handle x_obj, py::handle h0_obj, py::handle c0_obj, py::handle w_ih_obj,
                   py::handle w_hh_obj, py::handle y_obj, py::handle ws_obj, const std::string& nonlinearity,
                   bool reverse, py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  const RnnCell cell = cell_of(base, op, nonlinearity);
  const Inputs in = inputs(op, cell, reverse, x_obj, h0_obj, c0_obj, w_ih_obj, w_hh_obj);
  const RnnShape& s = in.s;
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * H;
  const bool lstm = cell == RnnCell::Lstm;
  const py::object dy = shaped(op, "dy", dy_obj, {T, B, H}, true, "(T, B, H) or None");
  const py::object dh_n = shaped(op, "dh_n", dh_n_obj, {B, H}, true, "(B, H) or None");
  const py::object dc_n = lstm ? shaped(op, "dc_n", dc_n_obj, {B, H}, true, "(B, H) or None") : py::none();
  // y is read as h_{t-1} of steps after the first, and by the RNN's activation gradient.
  const bool y_optional = T == 1 && cell != RnnCell::RnnTanh && cell != RnnCell::RnnRelu;
  const py::object y = shaped(op, "y", y_obj, {T, B, H}, y_optional, "(T, B, H) (the forward's output)");
  const py::object ws =
      shaped(op, "ws", ws_obj, {rnn_ws_size(s)}, false,
             (std::string("(the workspace of ") + cell_name(cell) + "_forward for these shapes)").c_str());
  py::array dx = new_array<float>({T, B, I}), dh0 = new_array<float>({B, H}),
            dc0 = new_array<float>({lstm ? B : 0, H});
  py::array dw_ih = new_array<float>({GH, I}), dw_hh = new_array<float>({GH, H});
  py::array db_ih = new_array<float>({GH}), db_hh = new_array<float>({GH});
  const float *dyp = cptr(dy), *dhnp = cptr(dh_n), *dcnp = cptr(dc_n), *xp = cptr(in.x), *h0p = cptr(in.h0);
  const float *c0p = cptr(in.c0), *wip = cptr(in.w_ih), *whp = cptr(in.w_hh), *yp = cptr(y), *wsp = cptr(ws);
  float *dxp = mptr(dx), *dh0p = mptr(dh0), *dc0p = lstm ? mptr(dc0) : nullptr, *dwip = mptr(dw_ih);
  float *dwhp = mptr(dw_hh), *dbip = mptr(db_ih), *dbhp = mptr(db_hh);
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    rnn_backward(s, dyp, dhnp, dcnp, xp, h0p, c0p, wip, whp, yp, wsp, dxp, dh0p, dc0p, dwip, dwhp, dbip, dbhp,
                 isa, nt);
  }
  if (lstm) return py::make_tuple(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh);
  return py::make_tuple(dx, dh0, dw_ih, dw_hh, db_ih, db_hh);
}

}  // namespace

void bind_rnn(py::module_& m) {
  using py::arg;
  const py::none none;
  m.def(
      "lstm_forward",
      [](py::handle x, py::handle h0, py::handle c0, py::handle w_ih, py::handle w_hh, py::handle b_ih,
         py::handle b_hh, bool reverse, py::handle isa) {
        return forward(RnnCell::Lstm, "lstm_forward", x, h0, c0, w_ih, w_hh, b_ih, b_hh, "", reverse, isa);
      },
      arg("x"), arg("h0"), arg("c0"), arg("w_ih"), arg("w_hh"), arg("b_ih") = none, arg("b_hh") = none,
      arg("reverse") = false, arg("isa") = none, "(y, h_n, c_n, ws); see fastnn.ops.lstm_forward.");
  m.def(
      "lstm_backward",
      [](py::handle dy, py::handle dh_n, py::handle dc_n, py::handle x, py::handle h0, py::handle c0,
         py::handle w_ih, py::handle w_hh, py::handle y, py::handle ws, bool reverse, py::handle isa) {
        return backward(RnnCell::Lstm, "lstm_backward", dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y, ws, "",
                        reverse, isa);
      },
      arg("dy"), arg("dh_n"), arg("dc_n"), arg("x"), arg("h0"), arg("c0"), arg("w_ih"), arg("w_hh"), arg("y"),
      arg("ws"), arg("reverse") = false, arg("isa") = none,
      "(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh); see fastnn.ops.lstm_backward.");
  m.def(
      "gru_forward",
      [](py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh, py::handle b_ih, py::handle b_hh,
         bool reverse, py::handle isa) {
        return forward(RnnCell::Gru, "gru_forward", x, h0, py::none(), w_ih, w_hh, b_ih, b_hh, "", reverse,
                       isa);
      },
      arg("x"), arg("h0"), arg("w_ih"), arg("w_hh"), arg("b_ih") = none, arg("b_hh") = none,
      arg("reverse") = false, arg("isa") = none, "(y, h_n, ws); see fastnn.ops.gru_forward.");
  m.def(
      "gru_backward",
      [](py::handle dy, py::handle dh_n, py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh,
         py::handle y, py::handle ws, bool reverse, py::handle isa) {
        return backward(RnnCell::Gru, "gru_backward", dy, dh_n, py::none(), x, h0, py::none(), w_ih, w_hh, y,
                        ws, "", reverse, isa);
      },
      arg("dy"), arg("dh_n"), arg("x"), arg("h0"), arg("w_ih"), arg("w_hh"), arg("y"), arg("ws"),
      arg("reverse") = false, arg("isa") = none,
      "(dx, dh0, dw_ih, dw_hh, db_ih, db_hh); see fastnn.ops.gru_backward.");
  m.def(
      "rnn_forward",
      [](py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh, py::handle b_ih, py::handle b_hh,
         const std::string& nonlinearity, bool reverse, py::handle isa) {
        return forward(RnnCell::RnnTanh, "rnn_forward", x, h0, py::none(), w_ih, w_hh, b_ih, b_hh,
                       nonlinearity, reverse, isa);
      },
      arg("x"), arg("h0"), arg("w_ih"), arg("w_hh"), arg("b_ih") = none, arg("b_hh") = none,
      arg("nonlinearity") = "tanh", arg("reverse") = false, arg("isa") = none,
      "(y, h_n, ws); see fastnn.ops.rnn_forward.");
  m.def(
      "rnn_backward",
      [](py::handle dy, py::handle dh_n, py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh,
         py::handle y, py::handle ws, const std::string& nonlinearity, bool reverse, py::handle isa) {
        return backward(RnnCell::RnnTanh, "rnn_backward", dy, dh_n, py::none(), x, h0, py::none(), w_ih, w_hh,
                        y, ws, nonlinearity, reverse, isa);
      },
      arg("dy"), arg("dh_n"), arg("x"), arg("h0"), arg("w_ih"), arg("w_hh"), arg("y"), arg("ws"),
      arg("nonlinearity") = "tanh", arg("reverse") = false, arg("isa") = none,
      "(dx, dh0, dw_ih, dw_hh, db_ih, db_hh); see fastnn.ops.rnn_backward.");
}

}  // namespace fastnn::bind
