// Binding of the activations: one _core function per op and direction (relu_forward,
// relu_backward, ...), argument checks with the GIL held, then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/cpu.h"
#include "core/threads.h"
#include "ops/act.h"

namespace fastnn::bind {
namespace {

float alpha_arg(const char* op, py::handle obj) {
  if (!py::isinstance<py::float_>(obj) && !py::isinstance<py::int_>(obj)) {
    type_fail(op, "expected negative_slope to be a float, got " +
                      std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return obj.cast<float>();
}

ActKind gelu_kind(const char* op, py::handle approximate) {
  if (py::isinstance<py::str>(approximate)) {
    const std::string a = approximate.cast<std::string>();
    if (a == "none") return ActKind::Gelu;
    if (a == "tanh") return ActKind::GeluTanh;
    value_fail(op, "expected approximate to be 'none' or 'tanh', got '" + a + "'");
  }
  type_fail(op, "expected approximate to be 'none' or 'tanh', got " +
                    std::string(py::str(py::type::of(approximate).attr("__name__"))));
}

py::array forward(const char* op, ActKind kind, float alpha, py::handle x_obj, py::handle out_obj,
                  py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  py::array x = f32_array(op, "x", x_obj);
  py::array out = out_or_new(op, out_obj, shape_of(x), {{"x", &x}}, /*in_place=*/true);
  ActArgs a;
  a.kind = kind;
  a.alpha = alpha;
  a.n = static_cast<int64_t>(x.size());
  const float* xp = static_cast<const float*>(x.data());
  float* yp = static_cast<float*>(out.mutable_data());
  const int nthreads = get_num_threads();
  {
    py::gil_scoped_release release;
    act_forward(a, xp, yp, isa, nthreads);
  }
  return out;
}

py::array backward(const char* op, const char* xy_name, ActKind kind, float alpha, py::handle dy_obj,
                   py::handle xy_obj, py::handle out_obj, py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  py::array dy = f32_array(op, "dy", dy_obj);
  py::array xy = f32_array(op, xy_name, xy_obj);
  if (shape_of(dy) != shape_of(xy)) {
    value_fail(op, std::string("expected dy and ") + xy_name + " of the same shape, got dy " + shape_str(dy) +
                       " and " + xy_name + " " + shape_str(xy));
  }
  py::array out = out_or_new(op, out_obj, shape_of(dy), {{"dy", &dy}, {xy_name, &xy}}, /*in_place=*/true);
  ActArgs a;
  a.kind = kind;
  a.alpha = alpha;
  a.n = static_cast<int64_t>(dy.size());
  const float* g = static_cast<const float*>(dy.data());
  const float* v = static_cast<const float*>(xy.data());
  float* dx = static_cast<float*>(out.mutable_data());
  const int nthreads = get_num_threads();
  {
    py::gil_scoped_release release;
    act_backward(a, g, v, dx, isa, nthreads);
  }
  return out;
}

// The ops without parameters: name, kind, and what the backward reads (x or the output y).
struct Plain {
  const char* fwd;
  const char* bwd;
  ActKind kind;
  const char* xy;
};
constexpr Plain kPlain[] = {
    {"relu_forward", "relu_backward", ActKind::Relu, "x"},
    {"sigmoid_forward", "sigmoid_backward", ActKind::Sigmoid, "y"},
    {"tanh_forward", "tanh_backward", ActKind::Tanh, "y"},
};

}  // namespace

void bind_act(py::module_& m) {
  for (const Plain& p : kPlain) {
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
        return forward(op, ActKind::LeakyRelu, alpha_arg(op, slope), x, out, isa);
      },
      py::arg("x"), py::arg("negative_slope") = 0.01, py::arg("out") = py::none(),
      py::arg("isa") = py::none(), "y = x > 0 ? x : negative_slope * x.");
  m.def(
      "leaky_relu_backward",
      [](py::handle dy, py::handle x, py::handle slope, py::handle out, py::handle isa) {
        const char* op = "leaky_relu_backward";
        return backward(op, "x", ActKind::LeakyRelu, alpha_arg(op, slope), dy, x, out, isa);
      },
      py::arg("dy"), py::arg("x"), py::arg("negative_slope") = 0.01, py::arg("out") = py::none(),
      py::arg("isa") = py::none(), "dx = dy * (x > 0 ? 1 : negative_slope).");
  m.def(
      "gelu_forward",
      [](py::handle x, py::handle approximate, py::handle out, py::handle isa) {
        const char* op = "gelu_forward";
        return forward(op, gelu_kind(op, approximate), 0.0f, x, out, isa);
      },
      py::arg("x"), py::arg("approximate") = "none", py::arg("out") = py::none(), py::arg("isa") = py::none(),
      "GELU, exact (erf) or approximate='tanh'.");
  m.def(
      "gelu_backward",
      [](py::handle dy, py::handle x, py::handle approximate, py::handle out, py::handle isa) {
        const char* op = "gelu_backward";
        return backward(op, "x", gelu_kind(op, approximate), 0.0f, dy, x, out, isa);
      },
      py::arg("dy"), py::arg("x"), py::arg("approximate") = "none", py::arg("out") = py::none(),
      py::arg("isa") = py::none(), "Gradient of GELU with respect to x.");
}

}  // namespace fastnn::bind
