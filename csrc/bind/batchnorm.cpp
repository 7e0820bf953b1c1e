// Binding of batch_norm2d_forward / backward: the rules are batch norm's meta functions
// (csrc/ops/batchnorm_meta.cpp, shared with the CUDA binding), applied with the GIL held with
// the outputs' allocation, then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <utility>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/batchnorm.h"

namespace fastnn::bind {
namespace {

// A required array argument: None is refused in NumPy's words.
NpArg required(const char* op, const char* name, py::handle obj) {
  NpArg a(op, name, obj);
  if (!a.present()) NpArg::refuse(op, name, obj);
  return a;
}

// The caller's out (checked by the meta function), else a new array of x's shape.
py::array output(const char* op, const NpArg& out, const ArrayRef& x) {
  return out.present() ? out.array : py::array(new_array<float>(op, x.shape));
}

py::tuple forward(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle rm_obj, py::handle rv_obj,
                  bool training, double momentum, double eps, py::handle out_obj) {
  const char* op = "batch_norm2d_forward";
  const NpArg x = required(op, "x", x_obj);
  const NpArg w(op, "weight", w_obj), b(op, "bias", b_obj), rm(op, "running_mean", rm_obj),
      rv(op, "running_var", rv_obj), out(op, "out", out_obj);
  const BatchNormArgs a =
      batch_norm2d_forward_meta(x.ref, w.ref, b.ref, rm.ref, rv.ref, out.ref, training, momentum, eps);
  py::array y = output(op, out, x.ref);
  py::array_t<float> save_mean = new_array<float>(op, {a.c}), save_invstd = new_array<float>(op, {a.c});
  const float *xp = x.ref.ptr<const float>(), *wp = w.ref.ptr<const float>(), *bp = b.ref.ptr<const float>();
  float *rmp = rm.ref.ptr<float>(), *rvp = rv.ref.ptr<float>(), *yp = static_cast<float*>(y.mutable_data());
  float *smp = save_mean.mutable_data(), *sip = save_invstd.mutable_data();
  const int nt = get_num_threads();
  run_kernel(op, [&] { batch_norm2d_forward(a, xp, wp, bp, rmp, rvp, yp, smp, sip, nt); });
  return py::make_tuple(y, save_mean, save_invstd);
}

py::tuple backward(py::handle dy_obj, py::handle x_obj, py::handle w_obj, py::handle mean_obj,
                   py::handle invstd_obj, bool training, py::handle out_obj) {
  const char* op = "batch_norm2d_backward";
  const NpArg dy = required(op, "dy", dy_obj), x = required(op, "x", x_obj);
  const NpArg w(op, "weight", w_obj), mean(op, "save_mean", mean_obj), invstd(op, "save_invstd", invstd_obj),
      out(op, "out", out_obj);
  const BatchNormArgs a =
      batch_norm2d_backward_meta(dy.ref, x.ref, w.ref, mean.ref, invstd.ref, out.ref, training);
  py::array dx = output(op, out, x.ref);
  py::object dw = py::none(), db = py::none();
  float *dwp = nullptr, *dbp = nullptr;
  if (w.present()) {
    py::array_t<float> g = new_array<float>(op, {a.c}), h = new_array<float>(op, {a.c});
    dwp = g.mutable_data();
    dbp = h.mutable_data();
    dw = std::move(g);
    db = std::move(h);
  }
  const float *dyp = dy.ref.ptr<const float>(), *xp = x.ref.ptr<const float>(),
              *wp = w.ref.ptr<const float>(), *mp = mean.ref.ptr<const float>(),
              *ip = invstd.ref.ptr<const float>();
  float* dxp = static_cast<float*>(dx.mutable_data());
  const int nt = get_num_threads();
  run_kernel(op, [&] { batch_norm2d_backward(a, dyp, xp, wp, mp, ip, dxp, dwp, dbp, nt); });
  return py::make_tuple(dx, dw, db);
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
