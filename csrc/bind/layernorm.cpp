// Binding of layer_norm_forward / backward: layer norm's meta functions (csrc/ops/layernorm_meta.cpp,
// shared with the CUDA binding) with the GIL held, then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "bind/py_args.h"
#include "core/threads.h"
#include "ops/layernorm.h"

namespace fastnn::bind {
namespace {

py::tuple ln_fwd(py::handle x_obj, py::handle ns_obj, py::handle w_obj, py::handle b_obj, double eps,
                 py::handle isa_obj) {
  const char* op = "layer_norm_forward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg x(op, "x", x_obj);
  const Shape ns = int_list_arg(op, "normalized_shape", ns_obj);
  const NpArg w(op, "weight", w_obj), b(op, "bias", b_obj);
  Shape stat_shape;
  const LayerNormArgs a = layer_norm_forward_meta(op, x.ref, ns, w.ref, b.ref, eps, &stat_shape);
  py::array y = new_array<float>(op, x.ref.shape);
  py::array mean = new_array<float>(op, stat_shape), rstd = new_array<float>(op, stat_shape);
  float* yp = static_cast<float*>(y.mutable_data());
  float* mp = static_cast<float*>(mean.mutable_data());
  float* rp = static_cast<float*>(rstd.mutable_data());
  const int nt = get_num_threads();
  run_kernel(op, [&] { layer_norm_forward(a, x.ref.ptr<const float>(), yp, mp, rp, isa, nt); });
  return py::make_tuple(y, mean, rstd);
}

py::tuple ln_bwd(py::handle dy_obj, py::handle x_obj, py::handle mean_obj, py::handle rstd_obj,
                 py::handle w_obj, py::handle isa_obj) {
  const char* op = "layer_norm_backward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg dy(op, "dy", dy_obj), x(op, "x", x_obj), mean(op, "mean", mean_obj), rstd(op, "rstd", rstd_obj),
      w(op, "weight", w_obj);
  for (const NpArg* r : {&dy, &x, &mean, &rstd}) {
    if (!r->present()) np_array(op, r->ref.name, py::none());  // required: None is a TypeError
  }
  Shape ns;
  const LayerNormArgs a = layer_norm_backward_meta(op, dy.ref, x.ref, mean.ref, rstd.ref, w.ref, &ns);
  py::array dx = new_array<float>(op, x.ref.shape);
  py::object dw = py::none(), db = py::none();
  float *dwp = nullptr, *dbp = nullptr;
  if (a.weight) {
    py::array dwa = new_array<float>(op, ns), dba = new_array<float>(op, ns);
    dwp = static_cast<float*>(dwa.mutable_data());
    dbp = static_cast<float*>(dba.mutable_data());
    dw = dwa;
    db = dba;
  }
  float* dxp = static_cast<float*>(dx.mutable_data());
  const int nt = get_num_threads();
  run_kernel(op, [&] {
    layer_norm_backward(a, dy.ref.ptr<const float>(), x.ref.ptr<const float>(), mean.ref.ptr<const float>(),
                        rstd.ref.ptr<const float>(), dxp, dwp, dbp, isa, nt);
  });
  return py::make_tuple(dx, dw, db);
}

}  // namespace

void bind_layernorm(py::module_& m) {
  m.def("layer_norm_forward", &ln_fwd, py::arg("x"), py::arg("normalized_shape"),
        py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("eps") = 1e-5,
        py::arg("isa") = py::none(),
        "(y, mean, rstd) of layer norm over the trailing dims; see fastnn.ops.layer_norm_forward.");
  m.def("layer_norm_backward", &ln_bwd, py::arg("dy"), py::arg("x"), py::arg("mean"), py::arg("rstd"),
        py::arg("weight") = py::none(), py::arg("isa") = py::none(),
        "(dx, dweight, dbias) of layer norm; see fastnn.ops.layer_norm_backward.");
}

}  // namespace fastnn::bind
