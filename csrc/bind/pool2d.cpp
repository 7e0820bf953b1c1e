// Binding of pool2d: the options read by bind/py_args.h, the rules pool2d's meta functions
// (csrc/ops/pool2d_meta.cpp, shared with the CUDA binding), output allocation (GIL held), then
// the kernel without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <type_traits>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "bind/py_args.h"
#include "core/cpu.h"
#include "core/threads.h"
#include "ops/pool2d.h"

namespace fastnn::bind {
namespace {

// The output `name` (float32 or int64) from out_obj: checked by check_out, or a new array.
template <class T>
py::array output(const char* op, const char* name, py::handle obj, const Shape& shape,
                 std::initializer_list<const ArrayRef*> inputs, ArrayRef* ref) {
  py::array a = obj.is_none() ? py::array(new_array<T>(op, shape))
                              : np_array(op, name, obj, std::is_same_v<T, int64_t> ? "int64" : "float32");
  *ref = ref_of(a, name);
  if (!obj.is_none())
    check_out(op, *ref, shape, inputs, std::is_same_v<T, int64_t> ? DType::Int64 : DType::Float32);
  return a;
}

py::tuple max_fwd(py::handle x_obj, py::handle kernel, py::handle stride, py::handle padding,
                  py::handle dilation, py::handle ceil_obj, py::handle out_obj, py::handle idx_obj,
                  py::handle isa_obj) {
  const char* op = "max_pool2d_forward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg x(op, "x", x_obj);
  const Pool2dShape s =
      pool2d_forward_meta(op, x.ref, pool2d_params(op, kernel, stride, padding, dilation, ceil_obj));
  ArrayRef yr, ir;
  py::array y = output<float>(op, "out", out_obj, pool2d_y_shape(s), {&x.ref}, &yr);
  py::array idx = output<int64_t>(op, "indices", idx_obj, pool2d_y_shape(s), {&x.ref, &yr}, &ir);
  const int nt = get_num_threads();
  run_kernel(op, [&] {
    max_pool2d_forward(s, x.ref.ptr<const float>(), yr.ptr<float>(), ir.ptr<int64_t>(), isa, nt);
  });
  return py::make_tuple(y, idx);
}

py::array max_bwd(py::handle dy_obj, py::handle x_obj, py::handle idx_obj, py::handle kernel,
                  py::handle stride, py::handle padding, py::handle dilation, py::handle ceil_obj,
                  py::handle relu_obj, py::handle out_obj, py::handle isa_obj) {
  const char* op = "max_pool2d_backward";
  isa_arg(op, isa_obj);  // validated; the backward scatter is the same on every ISA
  const NpArg dy(op, "dy", dy_obj), x(op, "x", x_obj), idx(op, "indices", idx_obj, "int64");
  if (!idx.present()) np_array(op, "indices", idx_obj, "int64");  // required: None is a TypeError
  const Pool2dShape s = pool2d_backward_meta(op, dy.ref, x.ref, idx.ref,
                                             pool2d_params(op, kernel, stride, padding, dilation, ceil_obj));
  const bool relu = bool_arg(op, "relu", relu_obj);
  ArrayRef dxr;
  py::array dx = output<float>(op, "out", out_obj, x.ref.shape, {&dy.ref, &idx.ref, &x.ref}, &dxr);
  const float* rx = relu ? x.ref.ptr<const float>() : nullptr;
  const int nt = get_num_threads();
  run_kernel(op, [&] {
    max_pool2d_backward(s, dy.ref.ptr<const float>(), idx.ref.ptr<const int64_t>(), rx, dxr.ptr<float>(), nt);
  });
  return dx;
}

py::array avg_fwd(py::handle x_obj, py::handle kernel, py::handle stride, py::handle padding,
                  py::handle ceil_obj, py::handle cip_obj, py::handle out_obj, py::handle isa_obj) {
  const char* op = "avg_pool2d_forward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg x(op, "x", x_obj);
  const Pool2dShape s =
      pool2d_forward_meta(op, x.ref, pool2d_params(op, kernel, stride, padding, py::int_(1), ceil_obj));
  const bool cip = bool_arg(op, "count_include_pad", cip_obj);
  ArrayRef yr;
  py::array y = output<float>(op, "out", out_obj, pool2d_y_shape(s), {&x.ref}, &yr);
  const int nt = get_num_threads();
  run_kernel(op, [&] { avg_pool2d_forward(s, cip, x.ref.ptr<const float>(), yr.ptr<float>(), isa, nt); });
  return y;
}

py::array avg_bwd(py::handle dy_obj, py::handle x_obj, py::handle kernel, py::handle stride,
                  py::handle padding, py::handle ceil_obj, py::handle cip_obj, py::handle out_obj,
                  py::handle isa_obj) {
  const char* op = "avg_pool2d_backward";
  isa_arg(op, isa_obj);
  const NpArg dy(op, "dy", dy_obj), x(op, "x", x_obj), none(op, "indices", py::none());
  const Pool2dShape s = pool2d_backward_meta(
      op, dy.ref, x.ref, none.ref, pool2d_params(op, kernel, stride, padding, py::int_(1), ceil_obj));
  const bool cip = bool_arg(op, "count_include_pad", cip_obj);
  ArrayRef dxr;
  py::array dx = output<float>(op, "out", out_obj, x.ref.shape, {&dy.ref, &x.ref}, &dxr);
  const int nt = get_num_threads();
  run_kernel(op, [&] { avg_pool2d_backward(s, cip, dy.ref.ptr<const float>(), dxr.ptr<float>(), nt); });
  return dx;
}

py::array global_fwd(py::handle x_obj, py::handle out_obj) {
  const char* op = "global_avg_pool2d_forward";
  const NpArg x(op, "x", x_obj), none(op, "dy", py::none());
  const Pool2dShape s = global_avg_pool2d_meta(op, x.ref, none.ref);
  ArrayRef yr;
  py::array y = output<float>(op, "out", out_obj, pool2d_y_shape(s), {&x.ref}, &yr);
  const int nt = get_num_threads();
  run_kernel(op, [&] {
    global_avg_pool2d_forward(s.N * s.C, s.H * s.W, x.ref.ptr<const float>(), yr.ptr<float>(), nt);
  });
  return y;
}

py::array global_bwd(py::handle dy_obj, py::handle x_obj, py::handle out_obj) {
  const char* op = "global_avg_pool2d_backward";
  const NpArg dy(op, "dy", dy_obj), x(op, "x", x_obj);
  // required: the meta function takes dy as optional (the forward has none); None was read as a
  // null pointer
  if (!dy.present()) np_array(op, "dy", dy_obj);
  const Pool2dShape s = global_avg_pool2d_meta(op, x.ref, dy.ref);
  ArrayRef dxr;
  py::array dx = output<float>(op, "out", out_obj, x.ref.shape, {&dy.ref, &x.ref}, &dxr);
  const int nt = get_num_threads();
  run_kernel(op, [&] {
    global_avg_pool2d_backward(s.N * s.C, s.H * s.W, dy.ref.ptr<const float>(), dxr.ptr<float>(), nt);
  });
  return dx;
}

}  // namespace

void bind_pool2d(py::module_& m) {
  m.def("max_pool2d_forward", &max_fwd, py::arg("x"), py::arg("kernel_size"), py::arg("stride") = py::none(),
        py::arg("padding") = 0, py::arg("dilation") = 1, py::arg("ceil_mode") = false,
        py::arg("out") = py::none(), py::arg("indices") = py::none(), py::arg("isa") = py::none(),
        "(y, indices) of max pooling; see fastnn.ops.max_pool2d_forward.");
  m.def("max_pool2d_backward", &max_bwd, py::arg("dy"), py::arg("x"), py::arg("indices"),
        py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("ceil_mode") = false, py::arg("relu") = false,
        py::arg("out") = py::none(), py::arg("isa") = py::none(),
        "dx of max pooling from dy and the forward's indices (through a ReLU when relu).");
  m.def("avg_pool2d_forward", &avg_fwd, py::arg("x"), py::arg("kernel_size"), py::arg("stride") = py::none(),
        py::arg("padding") = 0, py::arg("ceil_mode") = false, py::arg("count_include_pad") = true,
        py::arg("out") = py::none(), py::arg("isa") = py::none(), "Average pooling; see fastnn.ops.");
  m.def("avg_pool2d_backward", &avg_bwd, py::arg("dy"), py::arg("x"), py::arg("kernel_size"),
        py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("ceil_mode") = false,
        py::arg("count_include_pad") = true, py::arg("out") = py::none(), py::arg("isa") = py::none(),
        "dx of average pooling.");
  m.def("global_avg_pool2d_forward", &global_fwd, py::arg("x"), py::arg("out") = py::none(),
        "(N, C, 1, 1) mean over H, W.");
  m.def("global_avg_pool2d_backward", &global_bwd, py::arg("dy"), py::arg("x"), py::arg("out") = py::none(),
        "dx = dy / (H W) over each plane.");
}

}  // namespace fastnn::bind
