// Binding of the fused optimizer updates: lists of float32 arrays checked with the GIL held
// (same lengths, same shapes, params and state writeable, no array sharing memory with another
// of the same element), then one kernel call without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/optim.h"

namespace fastnn::bind {
namespace {

std::vector<py::array> array_list(const char* op, const char* name, py::handle obj, size_t n, bool writeable) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) {
    type_fail(op, std::string("expected ") + name + " to be a list of numpy arrays, got " +
                      std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (n != static_cast<size_t>(-1) && seq.size() != n) {
    value_fail(op, std::string("expected ") + name + " to hold " + std::to_string(n) + " arrays (one per param), got " +
                       std::to_string(seq.size()));
  }
  std::vector<py::array> out;
  for (size_t i = 0; i < seq.size(); ++i) {
    const std::string label = std::string(name) + "[" + std::to_string(i) + "]";
    py::array a = f32_array(op, label.c_str(), seq[i]);
    if (writeable) require_writeable(op, label.c_str(), a);
    out.push_back(a);
  }
  return out;
}

// The tensors of the update: params, grads and up to three state lists, shapes checked.
std::vector<OptimTensor> tensors(const char* op, py::handle params_obj, py::handle grads_obj,
                                 std::initializer_list<std::pair<const char*, py::handle>> states,
                                 std::vector<py::array>* keep) {
  std::vector<py::array> ps = array_list(op, "params", params_obj, static_cast<size_t>(-1), true);
  std::vector<py::array> gs = array_list(op, "grads", grads_obj, ps.size(), false);
  std::vector<std::vector<py::array>> ss;
  std::vector<const char*> names;
  for (const auto& [name, obj] : states) {
    ss.push_back(obj.is_none() ? std::vector<py::array>() : array_list(op, name, obj, ps.size(), true));
    names.push_back(name);
  }
  std::vector<OptimTensor> ts(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    auto same = [&](const char* name, const py::array& a) {
      if (shape_of(a) != shape_of(ps[i])) {
        value_fail(op, std::string("expected ") + name + idx + " of params" + idx + "'s shape " +
                           shape_str(ps[i]) + ", got " + shape_str(a));
      }
      if (overlaps(a, ps[i])) {
        value_fail(op, std::string("expected ") + name + idx + " not to share memory with params" + idx);
      }
    };
    same("grads", gs[i]);
    ts[i].n = static_cast<int64_t>(ps[i].size());
    ts[i].p = static_cast<float*>(ps[i].mutable_data());
    ts[i].g = static_cast<const float*>(gs[i].data());
    float** slots[3] = {&ts[i].a, &ts[i].b, &ts[i].c};
    for (size_t k = 0; k < ss.size(); ++k) {
      if (ss[k].empty()) continue;
      same(names[k], ss[k][i]);
      if (overlaps(ss[k][i], gs[i])) value_fail(op, std::string("expected ") + names[k] + idx + " not to share memory with grads" + idx);
      *slots[k] = static_cast<float*>(ss[k][i].mutable_data());
    }
    keep->push_back(ps[i]);
    keep->push_back(gs[i]);
    for (auto& s : ss)
      if (!s.empty()) keep->push_back(s[i]);
  }
  return ts;
}

void sgd(py::handle params, py::handle grads, py::handle bufs, float lr, float momentum, float dampening,
         bool nesterov, float weight_decay, bool maximize, bool first_step) {
  const char* op = "sgd_step";
  if (nesterov && (momentum <= 0 || dampening != 0)) {
    value_fail(op, "Nesterov momentum requires a momentum and zero dampening");
  }
  if (momentum != 0 && bufs.is_none()) value_fail(op, "expected momentum_buffers with momentum != 0, got None");
  std::vector<py::array> keep;
  const std::vector<OptimTensor> ts = tensors(op, params, grads, {{"momentum_buffers", momentum != 0 ? bufs : py::none()}}, &keep);
  SgdArgs a;
  a.lr = lr;
  a.momentum = momentum;
  a.dampening = dampening;
  a.weight_decay = weight_decay;
  a.nesterov = nesterov;
  a.maximize = maximize;
  a.first_step = first_step;
  const int nt = get_num_threads();
  py::gil_scoped_release release;
  sgd_step(a, ts, nt);
}

void adam(py::handle params, py::handle grads, py::handle m, py::handle v, int64_t step, float lr, float beta1,
          float beta2, float eps, float weight_decay, bool amsgrad, py::handle vmax, bool decoupled, bool maximize) {
  const char* op = "adam_step";
  if (step < 1) value_fail(op, "expected step >= 1 (the step after incrementing), got " + std::to_string(step));
  if (amsgrad && vmax.is_none()) value_fail(op, "expected max_exp_avg_sqs with amsgrad, got None");
  std::vector<py::array> keep;
  const std::vector<OptimTensor> ts =
      tensors(op, params, grads, {{"exp_avgs", m}, {"exp_avg_sqs", v}, {"max_exp_avg_sqs", amsgrad ? vmax : py::none()}},
              &keep);
  AdamArgs a;
  a.lr = lr;
  a.beta1 = beta1;
  a.beta2 = beta2;
  a.eps = eps;
  a.weight_decay = weight_decay;
  a.amsgrad = amsgrad;
  a.decoupled = decoupled;
  a.maximize = maximize;
  a.step = step;
  const int nt = get_num_threads();
  py::gil_scoped_release release;
  adam_step(a, ts, nt);
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step", &sgd, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("lr"),
        py::arg("momentum") = 0.0f, py::arg("dampening") = 0.0f, py::arg("nesterov") = false,
        py::arg("weight_decay") = 0.0f, py::arg("maximize") = false, py::arg("first_step") = false,
        "torch.optim.SGD's update of every param in place; see fastnn.ops.sgd_step.");
  m.def("adam_step", &adam, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
        py::arg("step"), py::arg("lr") = 1e-3f, py::arg("beta1") = 0.9f, py::arg("beta2") = 0.999f,
        py::arg("eps") = 1e-8f, py::arg("weight_decay") = 0.0f, py::arg("amsgrad") = false,
        py::arg("max_exp_avg_sqs") = py::none(), py::arg("decoupled_weight_decay") = false,
        py::arg("maximize") = false, "torch.optim.Adam / AdamW's update of every param in place.");
}

}  // namespace fastnn::bind
