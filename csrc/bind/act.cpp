// Binding of the activations: one _core function per op and direction (relu_forward,
// relu_backward, ...); the rules are act's meta functions (csrc/ops/act_meta.cpp, shared with
// the CUDA binding), applied with the GIL held, then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "bind/py_args.h"
#include "core/cpu.h"
#include "core/threads.h"
#include "ops/act.h"

namespace fastnn::bind {
namespace {

py::array forward(const char* op, ActKind kind, float alpha, py::handle x_obj, py::handle out_obj,
                  py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg x(op, "x", x_obj);
  const ActArgs a = act_forward_meta(op, kind, alpha, x.ref);
  py::array out = out_checked(op, out_obj, x.ref.shape, {&x.ref}, /*in_place=*/true);
  float* yp = static_cast<float*>(out.mutable_data());
  const int nthreads = get_num_threads();
  run_kernel(op, [&] { act_forward(a, x.ref.ptr<const float>(), yp, isa, nthreads); });
  return out;
}

py::array backward(const char* op, const char* xy_name, ActKind kind, float alpha, py::handle dy_obj,
                   py::handle xy_obj, py::handle out_obj, py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg dy(op, "dy", dy_obj), xy(op, xy_name, xy_obj);
  const ActArgs a = act_backward_meta(op, kind, alpha, dy.ref, xy.ref);
  py::array out = out_checked(op, out_obj, dy.ref.shape, {&dy.ref, &xy.ref}, /*in_place=*/true);
  float* dx = static_cast<float*>(out.mutable_data());
  const int nthreads = get_num_threads();
  run_kernel(
      op, [&] { act_backward(a, dy.ref.ptr<const float>(), xy.ref.ptr<const float>(), dx, isa, nthreads); });
  return out;
}

}  // namespace

void bind_act(py::module_& m) {
  for (const PlainAct& p : kPlainActs) {
    m.def(
        p.fwd,
        [p](py::handle x, py::handle out, py::handle isa) {
          return forward(p.fwd, p.kind, 0.0f, x, out, isa);
        },
        py::arg("x"), py::arg("out") = py::none(), py::arg("isa") = py::none(),
        "Elementwise activation; see fastnn.ops.");
    m.def(
        p.bwd,
        [p](py::handle dy, py::handle xy, py::handle out, py::handle isa) {
          return backward(p.bwd, p.xy, p.kind, 0.0f, dy, xy, out, isa);
        },
        py::arg("dy"), py::arg(p.xy), py::arg("out") = py::none(), py::arg("isa") = py::none(),
        "Gradient of the activation; see fastnn.ops.");
  }
  m.def(
      "leaky_relu_forward",
      [](py::handle x, py::handle slope, py::handle out, py::handle isa) {
        const char* op = "leaky_relu_forward";
        return forward(op, ActKind::LeakyRelu, slope_arg(op, slope), x, out, isa);
      },
      py::arg("x"), py::arg("negative_slope") = 0.01, py::arg("out") = py::none(),
      py::arg("isa") = py::none(), "y = x > 0 ? x : negative_slope * x.");
  m.def(
      "leaky_relu_backward",
      [](py::handle dy, py::handle x, py::handle slope, py::handle out, py::handle isa) {
        const char* op = "leaky_relu_backward";
        return backward(op, "x", ActKind::LeakyRelu, slope_arg(op, slope), dy, x, out, isa);
      },
      py::arg("dy"), py::arg("x"), py::arg("negative_slope") = 0.01, py::arg("out") = py::none(),
      py::arg("isa") = py::none(), "dx = dy * (x > 0 ? 1 : negative_slope).");
  m.def(
      "gelu_forward",
      [](py::handle x, py::handle approximate, py::handle out, py::handle isa) {
        const char* op = "gelu_forward";
        return forward(op, gelu_kind_arg(op, approximate), 0.0f, x, out, isa);
      },
      py::arg("x"), py::arg("approximate") = "none", py::arg("out") = py::none(), py::arg("isa") = py::none(),
      "GELU, exact (erf) or approximate='tanh'.");
  m.def(
      "gelu_backward",
      [](py::handle dy, py::handle x, py::handle approximate, py::handle out, py::handle isa) {
        const char* op = "gelu_backward";
        return backward(op, "x", gelu_kind_arg(op, approximate), 0.0f, dy, x, out, isa);
      },
      py::arg("dy"), py::arg("x"), py::arg("approximate") = "none", py::arg("out") = py::none(),
      py::arg("isa") = py::none(), "Gradient of GELU with respect to x.");
}

}  // namespace fastnn::bind
