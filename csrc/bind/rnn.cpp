// Binding of the whole-sequence recurrent kernels (rnn/lstm/gru_forward and _backward): the
// rules are rnn's meta functions (csrc/ops/rnn_meta.cpp, shared with the CUDA binding), applied
// with the GIL held; then the outputs are allocated and the kernel runs without the GIL. Every
// output is freshly allocated: nothing the kernel writes can alias an input.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/rnn.h"

namespace fastnn::bind {
namespace {

float* mptr(py::array& a) { return static_cast<float*>(a.mutable_data()); }

py::tuple forward(RnnCell base, const char* op, py::handle x_obj, py::handle h0_obj, py::handle c0_obj,
                  py::handle w_ih_obj, py::handle w_hh_obj, py::handle b_ih_obj, py::handle b_hh_obj,
                  const std::string& nonlinearity, bool reverse, py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg x(op, "x", x_obj), h0(op, "h0", h0_obj), c0(op, "c0", c0_obj), w_ih(op, "w_ih", w_ih_obj),
      w_hh(op, "w_hh", w_hh_obj), b_ih(op, "b_ih", b_ih_obj), b_hh(op, "b_hh", b_hh_obj);
  const RnnShape s = rnn_forward_meta(op, base, nonlinearity, reverse, x.ref, h0.ref, c0.ref, w_ih.ref,
                                      w_hh.ref, b_ih.ref, b_hh.ref);
  const bool lstm = s.cell == RnnCell::Lstm;
  py::array y = new_array<float>(op, {s.T, s.B, s.H}), h_n = new_array<float>(op, {s.B, s.H});
  py::array c_n = new_array<float>(op, {lstm ? s.B : 0, s.H});
  py::array ws = new_array<float>(op, {rnn_ws_size(s)});
  float *yp = mptr(y), *hnp = mptr(h_n), *cnp = lstm ? mptr(c_n) : nullptr, *wsp = mptr(ws);
  const int nt = get_num_threads();
  run_kernel(op, [&] {
    rnn_forward(s, x.ref.ptr<const float>(), h0.ref.ptr<const float>(), c0.ref.ptr<const float>(),
                w_ih.ref.ptr<const float>(), w_hh.ref.ptr<const float>(), b_ih.ref.ptr<const float>(),
                b_hh.ref.ptr<const float>(), yp, hnp, cnp, wsp, isa, nt);
  });
  if (lstm) return py::make_tuple(y, h_n, c_n, ws);
  return py::make_tuple(y, h_n, ws);
}

py::tuple backward(RnnCell base, const char* op, py::handle dy_obj, py::handle dh_n_obj, py::handle dc_n_obj,
                   py::handle x_obj, py::handle h0_obj, py::handle c0_obj, py::handle w_ih_obj,
                   py::handle w_hh_obj, py::handle y_obj, py::handle ws_obj, const std::string& nonlinearity,
                   bool reverse, py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg dy(op, "dy", dy_obj), dh_n(op, "dh_n", dh_n_obj), dc_n(op, "dc_n", dc_n_obj), x(op, "x", x_obj),
      h0(op, "h0", h0_obj), c0(op, "c0", c0_obj), w_ih(op, "w_ih", w_ih_obj), w_hh(op, "w_hh", w_hh_obj),
      y(op, "y", y_obj), ws(op, "ws", ws_obj);
  const RnnShape s = rnn_backward_meta(op, base, nonlinearity, reverse, dy.ref, dh_n.ref, dc_n.ref, x.ref,
                                       h0.ref, c0.ref, w_ih.ref, w_hh.ref, y.ref, ws.ref);
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * H;
  const bool lstm = s.cell == RnnCell::Lstm;
  py::array dx = new_array<float>(op, {T, B, I}), dh0 = new_array<float>(op, {B, H}),
            dc0 = new_array<float>(op, {lstm ? B : 0, H});
  py::array dw_ih = new_array<float>(op, {GH, I}), dw_hh = new_array<float>(op, {GH, H});
  py::array db_ih = new_array<float>(op, {GH}), db_hh = new_array<float>(op, {GH});
  float *dxp = mptr(dx), *dh0p = mptr(dh0), *dc0p = lstm ? mptr(dc0) : nullptr, *dwip = mptr(dw_ih);
  float *dwhp = mptr(dw_hh), *dbip = mptr(db_ih), *dbhp = mptr(db_hh);
  const int nt = get_num_threads();
  run_kernel(op, [&] {
    rnn_backward(s, dy.ref.ptr<const float>(), dh_n.ref.ptr<const float>(), dc_n.ref.ptr<const float>(),
                 x.ref.ptr<const float>(), h0.ref.ptr<const float>(), c0.ref.ptr<const float>(),
                 w_ih.ref.ptr<const float>(), w_hh.ref.ptr<const float>(), y.ref.ptr<const float>(),
                 ws.ref.ptr<const float>(), dxp, dh0p, dc0p, dwip, dwhp, dbip, dbhp, isa, nt);
  });
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
