// Binding of pool2d: kernel_size/stride/padding/dilation as an int or a pair (stride None =
// kernel_size), the NCHW checks, output allocation (GIL held), then the kernel without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/cpu.h"
#include "core/threads.h"
#include "ops/pool2d.h"

namespace fastnn::bind {
namespace {

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

bool is_int(py::handle obj) {  // int or numpy integer, not bool
  return !py::isinstance<py::bool_>(obj) && (py::isinstance<py::int_>(obj) || py::hasattr(obj, "__index__"));
}

// An int (both sides) or a sequence of two ints, as torch's _pair.
std::pair<int64_t, int64_t> pair_arg(const char* op, const char* name, py::handle obj) {
  if (is_int(obj)) {
    const int64_t v = py::reinterpret_borrow<py::object>(obj).attr("__index__")().cast<int64_t>();
    return {v, v};
  }
  if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    py::sequence s = py::reinterpret_borrow<py::sequence>(obj);
    if (s.size() == 2 && is_int(s[0]) && is_int(s[1])) {
      return {py::object(s[0]).attr("__index__")().cast<int64_t>(),
              py::object(s[1]).attr("__index__")().cast<int64_t>()};
    }
    if (s.size() != 2) {
      value_fail(op, std::string("expected ") + name + " to be an int or a pair of ints, got " +
                         std::to_string(s.size()) + " values");
    }
  }
  type_fail(op, std::string("expected ") + name + " to be an int or a pair of ints, got " + type_name(obj));
}

bool bool_arg(const char* op, const char* name, py::handle obj) {
  if (!py::isinstance<py::bool_>(obj)) {
    type_fail(op, std::string("expected ") + name + " to be a bool, got " + type_name(obj));
  }
  return obj.cast<bool>();
}

// x: float32, C-contiguous, 4-D NCHW.
py::array nchw(const char* op, const char* name, py::handle obj) {
  py::array x = f32_array(op, name, obj);
  if (x.ndim() != 4) {
    value_fail(op, std::string("expected ") + name + " to be 4-D (N, C, H, W), got shape " + shape_str(x));
  }
  return x;
}

Pool2dShape shape_for(const char* op, const int64_t (&nchw)[4], py::handle kernel, py::handle stride,
                      py::handle padding, py::handle dilation, bool ceil_mode) {
  Pool2dShape s;
  s.N = nchw[0];
  s.C = nchw[1];
  s.H = nchw[2];
  s.W = nchw[3];
  std::tie(s.KH, s.KW) = pair_arg(op, "kernel_size", kernel);
  if (stride.is_none()) {
    s.SH = s.KH;
    s.SW = s.KW;
  } else {
    std::tie(s.SH, s.SW) = pair_arg(op, "stride", stride);
  }
  std::tie(s.PH, s.PW) = pair_arg(op, "padding", padding);
  std::tie(s.DH, s.DW) = pair_arg(op, "dilation", dilation);
  s.ceil_mode = ceil_mode;
  pool2d_shape(op, &s);  // std::invalid_argument -> ValueError
  return s;
}

Pool2dShape shape_for(const char* op, const py::array& x, py::handle kernel, py::handle stride,
                      py::handle padding, py::handle dilation, bool ceil_mode) {
  const int64_t nchw[4] = {x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
  return shape_for(op, nchw, kernel, stride, padding, dilation, ceil_mode);
}

// The checked geometry of a pooling of an (N, C, H, W) input, for the CUDA path (fastnn.cuda),
// so that both devices take their output sizes and errors from pool2d_shape.
py::dict pool_geometry(const std::string& op, py::sequence shape, py::handle kernel, py::handle stride,
                       py::handle padding, py::handle dilation, py::handle ceil_obj) {
  if (shape.size() != 4)
    value_fail(op.c_str(),
               "expected x to be 4-D (N, C, H, W), got " + std::to_string(shape.size()) + " dims");
  const int64_t nchw[4] = {shape[0].cast<int64_t>(), shape[1].cast<int64_t>(), shape[2].cast<int64_t>(),
                           shape[3].cast<int64_t>()};
  const Pool2dShape s = shape_for(op.c_str(), nchw, kernel, stride, padding, dilation,
                                  bool_arg(op.c_str(), "ceil_mode", ceil_obj));
  py::dict d;
  for (auto kv : {std::pair<const char*, int64_t>{"N", s.N},
                  {"C", s.C},
                  {"H", s.H},
                  {"W", s.W},
                  {"KH", s.KH},
                  {"KW", s.KW},
                  {"SH", s.SH},
                  {"SW", s.SW},
                  {"PH", s.PH},
                  {"PW", s.PW},
                  {"DH", s.DH},
                  {"DW", s.DW},
                  {"OH", s.OH},
                  {"OW", s.OW}})
    d[kv.first] = kv.second;
  return d;
}

// A given output buffer: dtype (float32 or int64), C-contiguous, writeable, the expected shape,
// sharing no memory with the inputs. None: a new array.
template <class T>
py::array output(const char* op, const char* name, py::handle obj, const std::vector<int64_t>& shape,
                 std::initializer_list<std::pair<const char*, const py::array*>> inputs) {
  if (obj.is_none()) return new_array<T>(shape);
  if (!py::isinstance<py::array>(obj)) {
    type_fail(op, std::string("expected ") + name + " to be a numpy.ndarray, got " + type_name(obj));
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<T>())) {
    type_fail(op, std::string("expected ") + name + " to be " + std::string(py::str(py::dtype::of<T>())) +
                      ", got " + std::string(py::str(a.dtype())));
  }
  if (!(a.flags() & py::array::c_style)) {
    value_fail(op, std::string("expected ") + name + " to be C-contiguous, got a strided array of shape " +
                       shape_str(a));
  }
  require_writeable(op, name, a);
  if (shape_of(a) != shape) {
    value_fail(op,
               std::string("expected ") + name + " of shape " + shape_str(shape) + ", got " + shape_str(a));
  }
  for (const auto& [in_name, in] : inputs) require_no_overlap(op, name, a, in_name, *in);
  return a;
}

void require_shape(const char* op, const char* name, const py::array& a, const std::vector<int64_t>& shape) {
  if (shape_of(a) != shape) {
    value_fail(op, std::string("expected ") + name + " of shape " + shape_str(shape) +
                       " (the pooled shape), got " + shape_str(a));
  }
}

std::vector<int64_t> out_shape(const Pool2dShape& s) { return {s.N, s.C, s.OH, s.OW}; }

py::tuple max_fwd(py::handle x_obj, py::handle kernel, py::handle stride, py::handle padding,
                  py::handle dilation, py::handle ceil_obj, py::handle out_obj, py::handle idx_obj,
                  py::handle isa_obj) {
  const char* op = "max_pool2d_forward";
  const Isa isa = isa_arg(op, isa_obj);
  py::array x = nchw(op, "x", x_obj);
  const Pool2dShape s =
      shape_for(op, x, kernel, stride, padding, dilation, bool_arg(op, "ceil_mode", ceil_obj));
  py::array y = output<float>(op, "out", out_obj, out_shape(s), {{"x", &x}});
  py::array idx = output<int64_t>(op, "indices", idx_obj, out_shape(s), {{"x", &x}, {"out", &y}});
  const float* xp = static_cast<const float*>(x.data());
  float* yp = static_cast<float*>(y.mutable_data());
  int64_t* ip = static_cast<int64_t*>(idx.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    max_pool2d_forward(s, xp, yp, ip, isa, nt);
  }
  return py::make_tuple(y, idx);
}

py::array max_bwd(py::handle dy_obj, py::handle x_obj, py::handle idx_obj, py::handle kernel,
                  py::handle stride, py::handle padding, py::handle dilation, py::handle ceil_obj,
                  py::handle relu_obj, py::handle out_obj, py::handle isa_obj) {
  const char* op = "max_pool2d_backward";
  isa_arg(op, isa_obj);  // validated; the backward scatter is the same on every ISA
  py::array dy = nchw(op, "dy", dy_obj);
  py::array x = nchw(op, "x", x_obj);
  const Pool2dShape s =
      shape_for(op, x, kernel, stride, padding, dilation, bool_arg(op, "ceil_mode", ceil_obj));
  require_shape(op, "dy", dy, out_shape(s));
  if (!py::isinstance<py::array>(idx_obj)) {
    type_fail(op, "expected indices to be a numpy.ndarray of int64, got " + type_name(idx_obj));
  }
  py::array idx = py::reinterpret_borrow<py::array>(idx_obj);
  if (!idx.dtype().equal(py::dtype::of<int64_t>())) {
    type_fail(op, "expected indices to be int64, got " + std::string(py::str(idx.dtype())));
  }
  if (!(idx.flags() & py::array::c_style)) value_fail(op, "expected indices to be C-contiguous");
  require_shape(op, "indices", idx, out_shape(s));
  py::array dx = output<float>(op, "out", out_obj, shape_of(x), {{"dy", &dy}, {"indices", &idx}, {"x", &x}});
  const float* g = static_cast<const float*>(dy.data());
  const int64_t* ip = static_cast<const int64_t*>(idx.data());
  const float* rx = bool_arg(op, "relu", relu_obj) ? static_cast<const float*>(x.data()) : nullptr;
  float* d = static_cast<float*>(dx.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    max_pool2d_backward(s, g, ip, rx, d, nt);
  }
  return dx;
}

py::array avg_fwd(py::handle x_obj, py::handle kernel, py::handle stride, py::handle padding,
                  py::handle ceil_obj, py::handle cip_obj, py::handle out_obj, py::handle isa_obj) {
  const char* op = "avg_pool2d_forward";
  const Isa isa = isa_arg(op, isa_obj);
  py::array x = nchw(op, "x", x_obj);
  const Pool2dShape s =
      shape_for(op, x, kernel, stride, padding, py::int_(1), bool_arg(op, "ceil_mode", ceil_obj));
  const bool cip = bool_arg(op, "count_include_pad", cip_obj);
  py::array y = output<float>(op, "out", out_obj, out_shape(s), {{"x", &x}});
  const float* xp = static_cast<const float*>(x.data());
  float* yp = static_cast<float*>(y.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    avg_pool2d_forward(s, cip, xp, yp, isa, nt);
  }
  return y;
}

py::array avg_bwd(py::handle dy_obj, py::handle x_obj, py::handle kernel, py::handle stride,
                  py::handle padding, py::handle ceil_obj, py::handle cip_obj, py::handle out_obj,
                  py::handle isa_obj) {
  const char* op = "avg_pool2d_backward";
  isa_arg(op, isa_obj);
  py::array dy = nchw(op, "dy", dy_obj);
  py::array x = nchw(op, "x", x_obj);
  const Pool2dShape s =
      shape_for(op, x, kernel, stride, padding, py::int_(1), bool_arg(op, "ceil_mode", ceil_obj));
  const bool cip = bool_arg(op, "count_include_pad", cip_obj);
  require_shape(op, "dy", dy, out_shape(s));
  py::array dx = output<float>(op, "out", out_obj, shape_of(x), {{"dy", &dy}, {"x", &x}});
  const float* g = static_cast<const float*>(dy.data());
  float* d = static_cast<float*>(dx.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    avg_pool2d_backward(s, cip, g, d, nt);
  }
  return dx;
}

py::array global_fwd(py::handle x_obj, py::handle out_obj) {
  const char* op = "global_avg_pool2d_forward";
  py::array x = nchw(op, "x", x_obj);
  const int64_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  if (C < 1 || H < 1 || W < 1) {
    value_fail(op,
               "expected x of shape (N, C, H, W) with non-zero C, H, W (N may be 0), got " + shape_str(x));
  }
  py::array y = output<float>(op, "out", out_obj, {N, C, 1, 1}, {{"x", &x}});
  const float* xp = static_cast<const float*>(x.data());
  float* yp = static_cast<float*>(y.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    global_avg_pool2d_forward(N * C, H * W, xp, yp, nt);
  }
  return y;
}

py::array global_bwd(py::handle dy_obj, py::handle x_obj, py::handle out_obj) {
  const char* op = "global_avg_pool2d_backward";
  py::array dy = nchw(op, "dy", dy_obj);
  py::array x = nchw(op, "x", x_obj);
  const int64_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  if (C < 1 || H < 1 || W < 1) {
    value_fail(op,
               "expected x of shape (N, C, H, W) with non-zero C, H, W (N may be 0), got " + shape_str(x));
  }
  require_shape(op, "dy", dy, {N, C, 1, 1});
  py::array dx = output<float>(op, "out", out_obj, shape_of(x), {{"dy", &dy}, {"x", &x}});
  const float* g = static_cast<const float*>(dy.data());
  float* d = static_cast<float*>(dx.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    global_avg_pool2d_backward(N * C, H * W, g, d, nt);
  }
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
  m.def("pool2d_geometry", &pool_geometry, py::arg("op"), py::arg("shape"), py::arg("kernel_size"),
        py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("ceil_mode") = false,
        "The checked sizes (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW) of a pooling, as a dict.");
  m.def("global_avg_pool2d_forward", &global_fwd, py::arg("x"), py::arg("out") = py::none(),
        "(N, C, 1, 1) mean over H, W.");
  m.def("global_avg_pool2d_backward", &global_bwd, py::arg("dy"), py::arg("x"), py::arg("out") = py::none(),
        "dx = dy / (H W) over each plane.");
}

}  // namespace fastnn::bind
