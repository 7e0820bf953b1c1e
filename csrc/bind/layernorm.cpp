// Binding of layer_norm_forward / backward: argument checks with the GIL held (float32
// C-contiguous arrays, normalized_shape equal to x's trailing dims, (normalized_shape) weight and
// bias, mean/rstd of one value per row), then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/layernorm.h"

namespace fastnn::bind {
namespace {

std::vector<int64_t> norm_shape(const char* op, py::handle obj) {
  std::vector<int64_t> s;
  if (py::isinstance<py::int_>(obj)) {
    s.push_back(obj.cast<int64_t>());
  } else if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    for (py::handle h : py::reinterpret_borrow<py::sequence>(obj)) {
      if (!py::isinstance<py::int_>(h)) {
        type_fail(op,
                  "expected normalized_shape to be an int or a sequence of ints, got an element of type " +
                      std::string(py::str(py::type::of(h).attr("__name__"))));
      }
      s.push_back(h.cast<int64_t>());
    }
  } else {
    type_fail(op, "expected normalized_shape to be an int or a sequence of ints, got " +
                      std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  if (s.empty()) value_fail(op, "expected a non-empty normalized_shape, got ()");
  return s;
}

// x's (M, N) view for normalized_shape ns (x's trailing dims must equal ns).
LayerNormArgs rows_of(const char* op, const py::array& x, const std::vector<int64_t>& ns) {
  const int64_t nd = x.ndim(), k = static_cast<int64_t>(ns.size());
  bool ok = nd >= k;
  for (int64_t i = 0; ok && i < k; ++i) ok = x.shape(nd - k + i) == ns[i];
  if (!ok) {
    value_fail(op, "expected x whose trailing dimensions are normalized_shape " + shape_str(ns) +
                       ", got x of shape " + shape_str(x));
  }
  LayerNormArgs a;
  a.m = 1;
  a.n = 1;
  for (int64_t i = 0; i < nd; ++i) (i < nd - k ? a.m : a.n) *= x.shape(i);
  return a;
}

const float* param(const char* op, const char* name, py::handle obj, const std::vector<int64_t>& ns,
                   py::array* keep) {
  if (obj.is_none()) return nullptr;
  *keep = f32_array(op, name, obj);
  if (shape_of(*keep) != ns) {
    value_fail(op, std::string("expected ") + name + " of shape normalized_shape " + shape_str(ns) +
                       ", got " + shape_str(*keep));
  }
  return static_cast<const float*>(keep->data());
}

py::tuple ln_fwd(py::handle x_obj, py::handle ns_obj, py::handle w_obj, py::handle b_obj, double eps,
                 py::handle isa_obj) {
  const char* op = "layer_norm_forward";
  const Isa isa = isa_arg(op, isa_obj);
  py::array x = f32_array(op, "x", x_obj);
  const std::vector<int64_t> ns = norm_shape(op, ns_obj);
  LayerNormArgs a = rows_of(op, x, ns);
  py::array w, b;
  a.weight = param(op, "weight", w_obj, ns, &w);
  a.bias = param(op, "bias", b_obj, ns, &b);
  if (!(eps >= 0.0) || !std::isfinite(eps))
    value_fail(op, "expected a finite eps >= 0, got " + std::to_string(eps));
  a.eps = static_cast<float>(eps);
  std::vector<int64_t> stat_shape = shape_of(x);
  for (size_t i = stat_shape.size() - ns.size(); i < stat_shape.size(); ++i) stat_shape[i] = 1;
  py::array y = new_array<float>(shape_of(x));
  py::array mean = new_array<float>(stat_shape), rstd = new_array<float>(stat_shape);
  const float* xp = static_cast<const float*>(x.data());
  float* yp = static_cast<float*>(y.mutable_data());
  float* mp = static_cast<float*>(mean.mutable_data());
  float* rp = static_cast<float*>(rstd.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    layer_norm_forward(a, xp, yp, mp, rp, isa, nt);
  }
  return py::make_tuple(y, mean, rstd);
}

py::tuple ln_bwd(py::handle dy_obj, py::handle x_obj, py::handle mean_obj, py::handle rstd_obj,
                 py::handle w_obj, py::handle isa_obj) {
  const char* op = "layer_norm_backward";
  const Isa isa = isa_arg(op, isa_obj);
  py::array dy = f32_array(op, "dy", dy_obj);
  py::array x = f32_array(op, "x", x_obj);
  py::array mean = f32_array(op, "mean", mean_obj);
  py::array rstd = f32_array(op, "rstd", rstd_obj);
  if (shape_of(dy) != shape_of(x)) {
    value_fail(op, "expected dy and x of the same shape, got dy " + shape_str(dy) + " and x " + shape_str(x));
  }
  // The normalised dims: weight's shape when given; else the trailing dims after the leading
  // ones whose product is mean's size (the forward returns mean as x's shape with them set to 1).
  std::vector<int64_t> ns;
  py::array w;
  if (!w_obj.is_none()) {
    w = f32_array(op, "weight", w_obj);
    ns = shape_of(w);
    if (ns.empty()) value_fail(op, "expected weight of the normalized shape, got a 0-d array");
  } else {
    int64_t lead = 1, k = x.ndim();
    while (k > 0 && lead != static_cast<int64_t>(mean.size())) lead *= x.shape(x.ndim() - k--);
    if (k == 0 || lead != static_cast<int64_t>(mean.size())) {
      value_fail(op, "expected mean with one value per row of x's leading dims, got mean " + shape_str(mean) +
                         " for x " + shape_str(x));
    }
    ns.assign(x.shape() + (x.ndim() - k), x.shape() + x.ndim());
  }
  LayerNormArgs a = rows_of(op, x, ns);
  a.weight = w_obj.is_none() ? nullptr : static_cast<const float*>(w.data());
  for (const auto* s : {&mean, &rstd}) {
    if (s->size() != a.m) {
      value_fail(op, std::string("expected ") + (s == &mean ? "mean" : "rstd") + " with one value per row (" +
                         std::to_string(a.m) + "), got shape " + shape_str(*s));
    }
  }
  py::array dx = new_array<float>(shape_of(x));
  py::object dw = py::none(), db = py::none();
  float *dwp = nullptr, *dbp = nullptr;
  if (a.weight) {
    py::array dwa = new_array<float>(ns), dba = new_array<float>(ns);
    dwp = static_cast<float*>(dwa.mutable_data());
    dbp = static_cast<float*>(dba.mutable_data());
    dw = dwa;
    db = dba;
  }
  const float* g = static_cast<const float*>(dy.data());
  const float* xp = static_cast<const float*>(x.data());
  const float* mp = static_cast<const float*>(mean.data());
  const float* rp = static_cast<const float*>(rstd.data());
  float* dxp = static_cast<float*>(dx.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    layer_norm_backward(a, g, xp, mp, rp, dxp, dwp, dbp, isa, nt);
  }
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
