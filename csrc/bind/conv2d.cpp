// Binding of conv2d: forward, backward_data, backward_weight, backward_bias. The rules are
// conv2d's meta functions (csrc/ops/conv2d_meta.cpp, shared with the CUDA binding), applied
// with the GIL held; fastnn.ops.conv2d_* normalise stride / padding / dilation to ints first.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
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

Conv2dParams params(Pair stride, Quad pad, Pair dil, int64_t groups) {
  Conv2dParams p;
  p.stride = stride, p.pad = pad, p.dilation = dil, p.groups = groups;
  return p;
}

py::array forward(py::handle x_obj, py::handle w_obj, py::handle bias_obj, Pair stride, Quad pad, Pair dil,
                  int64_t groups, py::handle activation, py::handle out_obj, py::handle isa_obj) {
  constexpr const char* op = "conv2d_forward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg x(op, "x", x_obj), w(op, "w", w_obj), bias(op, "bias", bias_obj);
  std::string act_name;
  if (!activation.is_none()) act_name = py::str(activation);
  Activation act;
  const Conv2dShape s = conv2d_forward_meta(op, x.ref, w.ref, bias.ref, params(stride, pad, dil, groups),
                                            activation.is_none() ? nullptr : &act_name, &act);
  py::array y = out_checked(op, out_obj, conv2d_y_shape(s), {&x.ref, &w.ref, &bias.ref});
  const int nt = get_num_threads();
  float* yp = static_cast<float*>(y.mutable_data());
  run_kernel(op, [&] {
    conv2d_forward(s, x.ref.ptr<const float>(), w.ref.ptr<const float>(), bias.ref.ptr<const float>(), act,
                   yp, isa, nt);
  });
  return y;
}

py::array backward_data(py::handle dy_obj, py::handle w_obj, const std::vector<int64_t>& input_shape_arg,
                        Pair stride, Quad pad, Pair dil, int64_t groups, py::handle out_obj,
                        py::handle isa_obj) {
  constexpr const char* op = "conv2d_backward_data";
  const Isa isa = isa_arg(op, isa_obj);
  const Shape input_shape(input_shape_arg.begin(), input_shape_arg.end());
  const NpArg dy(op, "dy", dy_obj), w(op, "w", w_obj);
  const Conv2dShape s =
      conv2d_backward_data_meta(op, dy.ref, w.ref, input_shape, params(stride, pad, dil, groups));
  py::array dx = out_checked(op, out_obj, input_shape, {&dy.ref, &w.ref});
  const int nt = get_num_threads();
  float* dxp = static_cast<float*>(dx.mutable_data());
  run_kernel(op, [&] {
    conv2d_backward_data(s, dy.ref.ptr<const float>(), w.ref.ptr<const float>(), dxp, isa, nt);
  });
  return dx;
}

py::array backward_weight(py::handle dy_obj, py::handle x_obj, const std::vector<int64_t>& weight_shape_arg,
                          Pair stride, Quad pad, Pair dil, int64_t groups, py::handle out_obj,
                          py::handle isa_obj) {
  constexpr const char* op = "conv2d_backward_weight";
  const Isa isa = isa_arg(op, isa_obj);
  const Shape weight_shape(weight_shape_arg.begin(), weight_shape_arg.end());
  const NpArg dy(op, "dy", dy_obj), x(op, "x", x_obj);
  const Conv2dShape s =
      conv2d_backward_weight_meta(op, dy.ref, x.ref, weight_shape, params(stride, pad, dil, groups));
  py::array dw = out_checked(op, out_obj, weight_shape, {&dy.ref, &x.ref});
  const int nt = get_num_threads();
  float* dwp = static_cast<float*>(dw.mutable_data());
  run_kernel(op, [&] {
    conv2d_backward_weight(s, dy.ref.ptr<const float>(), x.ref.ptr<const float>(), dwp, isa, nt);
  });
  return dw;
}

py::array backward_bias(py::handle dy_obj, py::handle out_obj) {
  constexpr const char* op = "conv2d_backward_bias";
  const NpArg dy(op, "dy", dy_obj);
  const Conv2dShape s = conv2d_backward_bias_meta(op, dy.ref);
  py::array db = out_checked(op, out_obj, {s.OC}, {&dy.ref});
  const int nt = get_num_threads();
  float* dbp = static_cast<float*>(db.mutable_data());
  run_kernel(op, [&] { conv2d_backward_bias(s, dy.ref.ptr<const float>(), dbp, nt); });
  return db;
}

}  // namespace

void bind_conv2d(py::module_& m) {
  const auto none = py::none();
  m.def("conv2d_forward", &forward, py::arg("x"), py::arg("w"), py::arg("bias") = none,
        py::arg("stride") = Pair{1, 1}, py::arg("padding") = Quad{0, 0, 0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("activation") = none,
        py::arg("out") = none, py::arg("isa") = none,
        "y = act(conv2d(x, w) + bias); padding is (top, bottom, left, right).");
  m.def("conv2d_backward_data", &backward_data, py::arg("dy"), py::arg("w"), py::arg("input_shape"),
        py::arg("stride") = Pair{1, 1}, py::arg("padding") = Quad{0, 0, 0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("out") = none, py::arg("isa") = none,
        "Gradient of conv2d with respect to its input.");
  m.def("conv2d_backward_weight", &backward_weight, py::arg("dy"), py::arg("x"), py::arg("weight_shape"),
        py::arg("stride") = Pair{1, 1}, py::arg("padding") = Quad{0, 0, 0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("out") = none, py::arg("isa") = none,
        "Gradient of conv2d with respect to its weight, summed over the batch.");
  m.def("conv2d_backward_bias", &backward_bias, py::arg("dy"), py::arg("out") = none,
        "Gradient of conv2d with respect to its bias: dy summed over batch and pixels.");
}

}  // namespace fastnn::bind
