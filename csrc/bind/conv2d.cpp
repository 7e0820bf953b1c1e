// Binding of conv2d: forward, backward_data, backward_weight, backward_bias. Shapes, dtypes,
// layouts and overlaps are checked here with the GIL held; fastnn.ops.conv2d_* normalise
// stride / padding / dilation to ints before calling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/conv2d.h"

namespace fastnn::bind {
namespace {

using Pair = std::array<int64_t, 2>;
using Quad = std::array<int64_t, 4>;

py::array f32_4d(const char* op, const char* name, const py::handle& obj) {
  py::array x = f32_array(op, name, obj);
  if (x.ndim() != 4) {
    value_fail(op, std::string("expected ") + name + " to be 4-D (NCHW), got shape " + shape_str(x));
  }
  return x;
}

// The shape struct from the input and weight sizes; every size rule is in Conv2dShape.
Conv2dShape make_shape(const std::vector<int64_t>& xs, const std::vector<int64_t>& ws, Pair stride, Quad pad,
                       Pair dil, int64_t groups) {
  const char* op = "conv2d";
  if (groups < 1) value_fail(op, "expected groups >= 1, got " + std::to_string(groups));
  if (xs[1] != ws[1] * groups) {
    value_fail(op, "expected weight of shape (out_channels, in_channels/groups, KH, KW) with in_channels " +
                       std::to_string(xs[1]) + " and groups " + std::to_string(groups) + ", got weight " +
                       shape_str(ws) + " for input " + shape_str(xs));
  }
  Conv2dShape s;
  s.B = xs[0];
  s.C = xs[1];
  s.H = xs[2];
  s.W = xs[3];
  s.OC = ws[0];
  s.KH = ws[2];
  s.KW = ws[3];
  s.SH = stride[0];
  s.SW = stride[1];
  s.PT = pad[0];
  s.PB = pad[1];
  s.PL = pad[2];
  s.PR = pad[3];
  s.DH = dil[0];
  s.DW = dil[1];
  s.G = groups;
  conv2d_check(s);  // std::invalid_argument -> ValueError naming conv2d
  return s;
}

std::vector<int64_t> y_shape(const Conv2dShape& s) { return {s.B, s.OC, s.OH(), s.OW()}; }

void require_dy(const py::array& dy, const Conv2dShape& s) {
  if (shape_of(dy) != y_shape(s)) {
    value_fail("conv2d", "expected grad_output of shape " + shape_str(y_shape(s)) + ", got " + shape_str(dy));
  }
}

const float* fptr(const py::array& a) { return static_cast<const float*>(a.data()); }
float* fptr_mut(py::array& a) { return static_cast<float*>(a.mutable_data()); }

py::array forward(py::handle x_obj, py::handle w_obj, py::handle bias_obj, Pair stride, Quad pad, Pair dil,
                  int64_t groups, py::handle activation, py::handle out_obj, py::handle isa_obj) {
  const char* op = "conv2d";
  const Isa isa = isa_arg(op, isa_obj);
  py::array x = f32_4d(op, "input", x_obj), w = f32_4d(op, "weight", w_obj);
  const Conv2dShape s = make_shape(shape_of(x), shape_of(w), stride, pad, dil, groups);
  std::optional<py::array> bias;
  if (!bias_obj.is_none()) {
    bias = f32_array(op, "bias", bias_obj);
    if (bias->ndim() != 1 || bias->shape(0) != s.OC) {
      value_fail(op, "expected bias of shape (" + std::to_string(s.OC) + ",), got " + shape_str(*bias));
    }
  }
  Activation act = Activation::None;
  if (!activation.is_none()) {
    const std::string name = py::str(activation);
    if (name == "relu")
      act = Activation::Relu;
    else if (name != "none")
      value_fail(op, "expected activation None, 'none' or 'relu', got '" + name + "'");
  }
  py::array y = bias ? out_or_new(op, out_obj, y_shape(s), {{"input", &x}, {"weight", &w}, {"bias", &*bias}})
                     : out_or_new(op, out_obj, y_shape(s), {{"input", &x}, {"weight", &w}});
  const int nt = get_num_threads();
  const float* bp = bias ? fptr(*bias) : nullptr;
  {
    py::gil_scoped_release release;
    conv2d_forward(s, fptr(x), fptr(w), bp, act, fptr_mut(y), isa, nt);
  }
  return y;
}

py::array backward_data(py::handle dy_obj, py::handle w_obj, std::vector<int64_t> input_shape, Pair stride,
                        Quad pad, Pair dil, int64_t groups, py::handle out_obj, py::handle isa_obj) {
  const char* op = "conv2d";
  const Isa isa = isa_arg(op, isa_obj);
  py::array dy = f32_4d(op, "grad_output", dy_obj), w = f32_4d(op, "weight", w_obj);
  if (input_shape.size() != 4) value_fail(op, "expected a 4-D input_shape, got " + shape_str(input_shape));
  const Conv2dShape s = make_shape(input_shape, shape_of(w), stride, pad, dil, groups);
  require_dy(dy, s);
  py::array dx = out_or_new(op, out_obj, input_shape, {{"grad_output", &dy}, {"weight", &w}});
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    conv2d_backward_data(s, fptr(dy), fptr(w), fptr_mut(dx), isa, nt);
  }
  return dx;
}

py::array backward_weight(py::handle dy_obj, py::handle x_obj, std::vector<int64_t> weight_shape, Pair stride,
                          Quad pad, Pair dil, int64_t groups, py::handle out_obj, py::handle isa_obj) {
  const char* op = "conv2d";
  const Isa isa = isa_arg(op, isa_obj);
  py::array dy = f32_4d(op, "grad_output", dy_obj), x = f32_4d(op, "input", x_obj);
  if (weight_shape.size() != 4) value_fail(op, "expected a 4-D weight_shape, got " + shape_str(weight_shape));
  const Conv2dShape s = make_shape(shape_of(x), weight_shape, stride, pad, dil, groups);
  require_dy(dy, s);
  py::array dw = out_or_new(op, out_obj, weight_shape, {{"grad_output", &dy}, {"input", &x}});
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    conv2d_backward_weight(s, fptr(dy), fptr(x), fptr_mut(dw), isa, nt);
  }
  return dw;
}

py::array backward_bias(py::handle dy_obj, py::handle out_obj) {
  const char* op = "conv2d";
  py::array dy = f32_4d(op, "grad_output", dy_obj);
  Conv2dShape s;  // only B, OC and the output plane matter: a 1x1 "convolution" of dy's plane
  s.B = dy.shape(0);
  s.C = s.OC = dy.shape(1);
  s.H = dy.shape(2);
  s.W = dy.shape(3);
  py::array db = out_or_new(op, out_obj, {s.OC}, {{"grad_output", &dy}});
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    conv2d_backward_bias(s, fptr(dy), fptr_mut(db), nt);
  }
  return db;
}

}  // namespace

void bind_conv2d(py::module_& m) {
  const auto none = py::none();
  m.def("conv2d_forward", &forward, py::arg("input"), py::arg("weight"), py::arg("bias") = none,
        py::arg("stride") = Pair{1, 1}, py::arg("padding") = Quad{0, 0, 0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("activation") = none,
        py::arg("out") = none, py::arg("isa") = none,
        "y = act(conv2d(input, weight) + bias); padding is (top, bottom, left, right).");
  m.def("conv2d_backward_data", &backward_data, py::arg("grad_output"), py::arg("weight"),
        py::arg("input_shape"), py::arg("stride") = Pair{1, 1}, py::arg("padding") = Quad{0, 0, 0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("out") = none, py::arg("isa") = none,
        "Gradient of conv2d with respect to its input.");
  m.def("conv2d_backward_weight", &backward_weight, py::arg("grad_output"), py::arg("input"),
        py::arg("weight_shape"), py::arg("stride") = Pair{1, 1}, py::arg("padding") = Quad{0, 0, 0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("out") = none, py::arg("isa") = none,
        "Gradient of conv2d with respect to its weight, summed over the batch.");
  m.def("conv2d_backward_bias", &backward_bias, py::arg("grad_output"), py::arg("out") = none,
        "Gradient of conv2d with respect to its bias: grad_output summed over batch and pixels.");
}

}  // namespace fastnn::bind
