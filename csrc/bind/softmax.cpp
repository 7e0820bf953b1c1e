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

py::array softmax_fwd(const char* op, bool log, py::handle x_obj, int64_t dim, py::handle out_obj,
                      py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg x(op, "x", x_obj);
  const SoftmaxShape s = softmax_forward_meta(op, x.ref, dim);
  py::array out = out_checked(op, out_obj, x.ref.shape, {&x.ref});
  float* yp = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  run_kernel(op, [&] { softmax_forward(s, log, x.ref.ptr<const float>(), yp, isa, nt); });
  return out;
}

py::array softmax_bwd(const char* op, bool log, py::handle dy_obj, py::handle y_obj, int64_t dim,
                      py::handle out_obj, py::handle isa_obj) {
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg dy(op, "dy", dy_obj), y(op, "y", y_obj);
  const SoftmaxShape s = softmax_backward_meta(op, dy.ref, y.ref, dim);
  py::array out = out_checked(op, out_obj, y.ref.shape, {&dy.ref, &y.ref});
  float* d = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  run_kernel(
      op, [&] { softmax_backward(s, log, dy.ref.ptr<const float>(), y.ref.ptr<const float>(), d, isa, nt); });
  return out;
}

py::tuple ce_fwd(py::handle logits_obj, py::handle target_obj, py::handle weight_obj, int64_t ignore_index,
                 double smoothing, py::handle isa_obj) {
  const char* op = "cross_entropy_forward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg logits(op, "logits", logits_obj), target(op, "target", target_obj, "int64"),
      weight(op, "weight", weight_obj);
  if (!target.present()) np_array(op, "target", target_obj, "int64");  // required: None is a TypeError
  const CrossEntropyArgs a =
      cross_entropy_meta(op, logits.ref, target.ref, weight.ref, ignore_index, smoothing);
  cross_entropy_check_targets(op, a);
  py::array_t<double> loss(a.N), wt(a.N);
  double* lp = loss.mutable_data();
  double* wp = wt.mutable_data();
  const int nt = get_num_threads();
  run_kernel(op, [&] { cross_entropy_forward(a, lp, wp, isa, nt); });
  return py::make_tuple(loss, wt);
}

py::array ce_bwd(py::handle logits_obj, py::handle target_obj, py::handle weight_obj, int64_t ignore_index,
                 double smoothing, py::handle scale_obj, py::handle out_obj, py::handle isa_obj) {
  const char* op = "cross_entropy_backward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg logits(op, "logits", logits_obj), target(op, "target", target_obj, "int64"),
      weight(op, "weight", weight_obj), scale(op, "scale", scale_obj);
  if (!target.present()) np_array(op, "target", target_obj, "int64");
  const CrossEntropyArgs a =
      cross_entropy_meta(op, logits.ref, target.ref, weight.ref, ignore_index, smoothing);
  cross_entropy_check_targets(op, a);
  cross_entropy_scale_check(op, a, scale.ref);
  py::array out =
      out_checked(op, out_obj, logits.ref.shape, {&logits.ref, &target.ref, &weight.ref, &scale.ref});
  float* d = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  run_kernel(op, [&] { cross_entropy_backward(a, scale.ref.ptr<const float>(), d, isa, nt); });
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
