// Binding of batch_norm2d_forward / backward: argument checks with the GIL held (NCHW float32
// C-contiguous x and dy, (C,) parameters and statistics, writeable running statistics, out=
// checked, no written array sharing memory with another argument), then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/batchnorm.h"

namespace fastnn::bind {
namespace {

py::array nchw(const char* op, const char* name, py::handle obj) {
  py::array x = f32_array(op, name, obj);
  if (x.ndim() != 4) {
    value_fail(op,
               std::string("expected ") + name + " of 4 dimensions (N, C, H, W), got shape " + shape_str(x));
  }
  return x;
}

// None, or a float32 C-contiguous (C,) array.
py::object per_channel(const char* op, const char* name, py::handle obj, int64_t c, bool writeable) {
  if (obj.is_none()) return py::none();
  py::array a = f32_array(op, name, obj);
  if (a.ndim() != 1 || a.shape(0) != c) {
    value_fail(op, std::string("expected ") + name + " of shape (" + std::to_string(c) +
                       ",) (one per channel), got " + shape_str(a));
  }
  if (writeable) require_writeable(op, name, a);
  return std::move(a);
}

template <class T>
T* ptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<T*>(py::reinterpret_borrow<py::array>(o).mutable_data());
}

void disjoint(const char* op, const char* out_name, const py::object& out,
              std::initializer_list<std::pair<const char*, const py::object*>> others) {
  if (out.is_none()) return;
  const py::array o = py::reinterpret_borrow<py::array>(out);
  for (const auto& [name, other] : others) {
    if (other->is_none()) continue;
    require_no_overlap(op, out_name, o, name, py::reinterpret_borrow<py::array>(*other));
  }
}

BatchNormArgs args_for(const py::array& x, bool training, double momentum, double eps) {
  BatchNormArgs a;
  a.n = x.shape(0);
  a.c = x.shape(1);
  a.hw = x.shape(2) * x.shape(3);
  a.training = training;
  a.momentum = momentum;
  a.eps = eps;
  return a;
}

py::tuple forward(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle rm_obj, py::handle rv_obj,
                  bool training, double momentum, double eps, py::handle out_obj) {
  const char* op = "batch_norm2d_forward";
  const py::array x = nchw(op, "x", x_obj);
  const int64_t c = x.shape(1);
  const py::object w = per_channel(op, "weight", w_obj, c, false);
  const py::object b = per_channel(op, "bias", b_obj, c, false);
  const py::object rm = per_channel(op, "running_mean", rm_obj, c, true);
  const py::object rv = per_channel(op, "running_var", rv_obj, c, true);
  if (rm.is_none() != rv.is_none()) {
    value_fail(op, std::string("expected running_mean and running_var both given or both None, got ") +
                       (rm.is_none() ? "running_var only" : "running_mean only"));
  }
  if (!training && rm.is_none()) {
    value_fail(op, "expected running_mean and running_var in evaluation mode (training=False), got None");
  }
  if (!(eps >= 0) || !std::isfinite(eps)) value_fail(op, "expected eps >= 0, got " + std::to_string(eps));
  if (!std::isfinite(momentum)) value_fail(op, "expected a finite momentum, got " + std::to_string(momentum));
  const int64_t m_count = x.shape(0) * x.shape(2) * x.shape(3);
  if (training && m_count == 1) {
    value_fail(op, "Expected more than 1 value per channel when training, got input size " + shape_str(x));
  }
  const py::object out = out_or_new(op, out_obj, shape_of(x), {});
  const py::object xo = x;
  disjoint(op, "out", out,
           {{"x", &xo}, {"weight", &w}, {"bias", &b}, {"running_mean", &rm}, {"running_var", &rv}});
  disjoint(op, "running_mean", rm, {{"x", &xo}, {"weight", &w}, {"bias", &b}, {"running_var", &rv}});
  disjoint(op, "running_var", rv, {{"x", &xo}, {"weight", &w}, {"bias", &b}});
  py::array save_mean = new_array<float>({c}), save_invstd = new_array<float>({c});
  const BatchNormArgs a = args_for(x, training, momentum, eps);
  const float* xp = static_cast<const float*>(x.data());
  const float *wp = ptr<const float>(w), *bp = ptr<const float>(b);
  float *rmp = ptr<float>(rm), *rvp = ptr<float>(rv), *yp = ptr<float>(out);
  float *smp = static_cast<float*>(save_mean.mutable_data()),
        *sip = static_cast<float*>(save_invstd.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    batch_norm2d_forward(a, xp, wp, bp, rmp, rvp, yp, smp, sip, nt);
  }
  return py::make_tuple(out, save_mean, save_invstd);
}

py::tuple backward(py::handle dy_obj, py::handle x_obj, py::handle w_obj, py::handle mean_obj,
                   py::handle invstd_obj, bool training, py::handle out_obj) {
  const char* op = "batch_norm2d_backward";
  const py::array dy = nchw(op, "dy", dy_obj);
  const py::array x = nchw(op, "x", x_obj);
  if (shape_of(dy) != shape_of(x)) {
    value_fail(op, "expected dy and x of the same shape, got dy " + shape_str(dy) + " and x " + shape_str(x));
  }
  const int64_t c = x.shape(1);
  const py::object w = per_channel(op, "weight", w_obj, c, false);
  if (mean_obj.is_none() || invstd_obj.is_none()) {
    value_fail(op, "expected save_mean and save_invstd (from batch_norm2d_forward), got None");
  }
  const py::object mean = per_channel(op, "save_mean", mean_obj, c, false);
  const py::object invstd = per_channel(op, "save_invstd", invstd_obj, c, false);
  const py::object out = out_or_new(op, out_obj, shape_of(x), {});
  const py::object dyo = dy, xo = x;
  disjoint(op, "out", out,
           {{"dy", &dyo}, {"x", &xo}, {"weight", &w}, {"save_mean", &mean}, {"save_invstd", &invstd}});
  py::object dw = py::none(), db = py::none();
  if (!w.is_none()) {
    dw = new_array<float>({c});
    db = new_array<float>({c});
  }
  const BatchNormArgs a = args_for(x, training, 0.0, 0.0);
  const float *dyp = static_cast<const float*>(dy.data()), *xp = static_cast<const float*>(x.data());
  const float *wp = ptr<const float>(w), *mp = ptr<const float>(mean), *ip = ptr<const float>(invstd);
  float *dxp = ptr<float>(out), *dwp = ptr<float>(dw), *dbp = ptr<float>(db);
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    batch_norm2d_backward(a, dyp, xp, wp, mp, ip, dxp, dwp, dbp, nt);
  }
  return py::make_tuple(out, dw, db);
}

}  // namespace

void bind_batchnorm(py::module_& m) {
  m.def("batch_norm2d_forward", &forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum") = 0.1,
        py::arg("eps") = 1e-5, py::arg("out") = py::none(),
        "(y, save_mean, save_invstd); see fastnn.ops.batch_norm2d_forward.");
  m.def("batch_norm2d_backward", &backward, py::arg("dy"), py::arg("x"), py::arg("weight"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("training") = true, py::arg("out") = py::none(),
        "(dx, dweight, dbias); see fastnn.ops.batch_norm2d_backward.");
}

}  // namespace fastnn::bind
