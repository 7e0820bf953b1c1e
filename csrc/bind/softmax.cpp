// Binding of softmax / log_softmax and the fused cross-entropy: argument checks with the GIL
// held (targets included: a class index outside [0, C) that is not ignore_index is a
// ValueError), then the kernel without it. The reductions over rows (mean, sum) are done by
// fastnn.ops from the per-row float64 losses, in row order.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/cpu.h"
#include "core/threads.h"
#include "ops/softmax.h"

namespace fastnn::bind {
namespace {

SoftmaxShape shape_for(const char* op, const py::array& x, int64_t dim) {
  const int64_t nd = x.ndim();
  if (nd < 1) value_fail(op, "expected an array of at least 1 dimension, got a 0-d array");
  if (dim < -nd || dim >= nd) {
    value_fail(op, "expected dim in [" + std::to_string(-nd) + ", " + std::to_string(nd) + "), got " +
                       std::to_string(dim));
  }
  if (dim < 0) dim += nd;
  SoftmaxShape s;
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t n = x.shape(i);
    if (i < dim)
      s.outer *= n;
    else if (i == dim)
      s.n = n;
    else
      s.inner *= n;
  }
  return s;
}

py::array softmax_fwd(const char* op, bool log, py::handle x_obj, int64_t dim, py::handle out_obj,
                      py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  py::array x = f32_array(op, "x", x_obj);
  const SoftmaxShape s = shape_for(op, x, dim);
  py::array out = out_or_new(op, out_obj, shape_of(x), {{"x", &x}});
  const float* xp = static_cast<const float*>(x.data());
  float* yp = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    softmax_forward(s, log, xp, yp, isa, nt);
  }
  return out;
}

py::array softmax_bwd(const char* op, bool log, py::handle dy_obj, py::handle y_obj, int64_t dim,
                      py::handle out_obj, py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  py::array dy = f32_array(op, "dy", dy_obj);
  py::array y = f32_array(op, "y", y_obj);
  if (shape_of(dy) != shape_of(y)) {
    value_fail(op, "expected dy and y of the same shape, got dy " + shape_str(dy) + " and y " + shape_str(y));
  }
  const SoftmaxShape s = shape_for(op, y, dim);
  py::array out = out_or_new(op, out_obj, shape_of(y), {{"dy", &dy}, {"y", &y}});
  const float* g = static_cast<const float*>(dy.data());
  const float* yp = static_cast<const float*>(y.data());
  float* d = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    softmax_backward(s, log, g, yp, d, isa, nt);
  }
  return out;
}

// logits (N, C), target int64 (N,), weight None or float32 (C,), label smoothing in [0, 1].
CrossEntropyArgs ce_args(const char* op, const py::array& logits, py::handle target_obj,
                         py::handle weight_obj, int64_t ignore_index, double smoothing, py::array* target,
                         py::array* weight) {
  if (logits.ndim() != 2) {
    value_fail(op, "expected logits of shape (N, C), got " + shape_str(logits));
  }
  CrossEntropyArgs a;
  a.N = logits.shape(0);
  a.C = logits.shape(1);
  if (a.C < 1) value_fail(op, "expected at least one class, got logits of shape " + shape_str(logits));
  if (!py::isinstance<py::array>(target_obj)) {
    type_fail(op, "expected target to be a numpy.ndarray of int64, got " +
                      std::string(py::str(py::type::of(target_obj).attr("__name__"))));
  }
  *target = py::reinterpret_borrow<py::array>(target_obj);
  if (!target->dtype().equal(py::dtype::of<int64_t>())) {
    type_fail(op, "expected target to be int64 class indices, got " + std::string(py::str(target->dtype())));
  }
  if (!(target->flags() & py::array::c_style)) value_fail(op, "expected target to be C-contiguous");
  if (target->ndim() != 1 || target->shape(0) != a.N) {
    value_fail(op, "expected target of shape (" + std::to_string(a.N) + ",), got " + shape_str(*target));
  }
  const int64_t* t = static_cast<const int64_t*>(target->data());
  for (int64_t i = 0; i < a.N; ++i) {
    if (t[i] != ignore_index && (t[i] < 0 || t[i] >= a.C)) {
      value_fail(op, "expected targets in [0, " + std::to_string(a.C) + ") or ignore_index " +
                         std::to_string(ignore_index) + ", got " + std::to_string(t[i]) + " at row " +
                         std::to_string(i));
    }
  }
  if (!weight_obj.is_none()) {
    *weight = f32_array(op, "weight", weight_obj);
    if (weight->ndim() != 1 || weight->shape(0) != a.C) {
      value_fail(op, "expected weight of shape (" + std::to_string(a.C) + ",), got " + shape_str(*weight));
    }
    a.weight = static_cast<const float*>(weight->data());
  }
  if (!(smoothing >= 0.0 && smoothing <= 1.0)) {
    value_fail(op, "expected label_smoothing in [0, 1], got " + std::to_string(smoothing));
  }
  a.logits = static_cast<const float*>(logits.data());
  a.target = t;
  a.ignore_index = ignore_index;
  a.smoothing = static_cast<float>(smoothing);
  return a;
}

py::tuple ce_fwd(py::handle logits_obj, py::handle target_obj, py::handle weight_obj, int64_t ignore_index,
                 double smoothing, py::handle isa_obj) {
  const char* op = "cross_entropy_forward";
  const Isa isa = isa_arg(op, isa_obj);
  py::array logits = f32_array(op, "logits", logits_obj);
  py::array target, weight;
  const CrossEntropyArgs a =
      ce_args(op, logits, target_obj, weight_obj, ignore_index, smoothing, &target, &weight);
  py::array_t<double> loss(a.N), wt(a.N);
  double* lp = loss.mutable_data();
  double* wp = wt.mutable_data();
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    cross_entropy_forward(a, lp, wp, isa, nt);
  }
  return py::make_tuple(loss, wt);
}

py::array ce_bwd(py::handle logits_obj, py::handle target_obj, py::handle weight_obj, int64_t ignore_index,
                 double smoothing, py::handle scale_obj, py::handle out_obj, py::handle isa_obj) {
  const char* op = "cross_entropy_backward";
  const Isa isa = isa_arg(op, isa_obj);
  py::array logits = f32_array(op, "logits", logits_obj);
  py::array target, weight;
  const CrossEntropyArgs a =
      ce_args(op, logits, target_obj, weight_obj, ignore_index, smoothing, &target, &weight);
  py::array scale = f32_array(op, "scale", scale_obj);
  if (scale.ndim() != 1 || scale.shape(0) != a.N) {
    value_fail(op, "expected scale of shape (" + std::to_string(a.N) + ",), got " + shape_str(scale));
  }
  py::array out = out_or_new(op, out_obj, shape_of(logits), {{"logits", &logits}, {"scale", &scale}});
  const float* sp = static_cast<const float*>(scale.data());
  float* d = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    cross_entropy_backward(a, sp, d, isa, nt);
  }
  return out;
}

}  // namespace

void bind_softmax(py::module_& m) {
  m.def(
      "softmax_forward",
      [](py::handle x, int64_t dim, py::handle out, py::handle isa) {
        return softmax_fwd("softmax_forward", false, x, dim, out, isa);
      },
      py::arg("x"), py::arg("dim") = -1, py::arg("out") = py::none(), py::arg("isa") = py::none(),
      "softmax of x along dim; see fastnn.ops.softmax_forward.");
  m.def(
      "log_softmax_forward",
      [](py::handle x, int64_t dim, py::handle out, py::handle isa) {
        return softmax_fwd("log_softmax_forward", true, x, dim, out, isa);
      },
      py::arg("x"), py::arg("dim") = -1, py::arg("out") = py::none(), py::arg("isa") = py::none(),
      "log_softmax of x along dim; see fastnn.ops.log_softmax_forward.");
  m.def(
      "softmax_backward",
      [](py::handle dy, py::handle y, int64_t dim, py::handle out, py::handle isa) {
        return softmax_bwd("softmax_backward", false, dy, y, dim, out, isa);
      },
      py::arg("dy"), py::arg("y"), py::arg("dim") = -1, py::arg("out") = py::none(),
      py::arg("isa") = py::none(), "dx of softmax from dy and the forward's output y.");
  m.def(
      "log_softmax_backward",
      [](py::handle dy, py::handle y, int64_t dim, py::handle out, py::handle isa) {
        return softmax_bwd("log_softmax_backward", true, dy, y, dim, out, isa);
      },
      py::arg("dy"), py::arg("y"), py::arg("dim") = -1, py::arg("out") = py::none(),
      py::arg("isa") = py::none(), "dx of log_softmax from dy and the forward's output y.");
  m.def("cross_entropy_rows", &ce_fwd, py::arg("logits"), py::arg("target"), py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0, py::arg("isa") = py::none(),
        "(loss, weight) per row, float64: the fused log-softmax + NLL of (N, C) logits.");
  m.def("cross_entropy_backward_rows", &ce_bwd, py::arg("logits"), py::arg("target"),
        py::arg("weight") = py::none(), py::arg("ignore_index") = -100, py::arg("label_smoothing") = 0.0,
        py::arg("scale"), py::arg("out") = py::none(), py::arg("isa") = py::none(),
        "dlogits (N, C) of the fused cross-entropy, each row times scale[row].");
}

}  // namespace fastnn::bind
