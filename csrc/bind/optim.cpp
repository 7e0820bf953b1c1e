// Binding of the fused optimizer updates and grad_norm: lists of float32 arrays checked with the
// GIL held (same lengths, same shapes, params and state writeable, no written array sharing
// memory with any other array of the call), then one kernel call without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/optim.h"

namespace fastnn::bind {
namespace {

constexpr size_t kAnyLength = static_cast<size_t>(-1);

std::string type_name(py::handle obj) { return std::string(py::str(py::type::of(obj).attr("__name__"))); }

std::vector<py::array> array_list(const char* op, const char* name, py::handle obj, size_t n,
                                  bool writeable) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) {
    type_fail(op, std::string("expected ") + name + " to be a list of numpy arrays, got " + type_name(obj));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (n != kAnyLength && seq.size() != n) {
    value_fail(op, std::string("expected ") + name + " to hold " + std::to_string(n) +
                       " arrays (one per param), got " + std::to_string(seq.size()));
  }
  std::vector<py::array> out;
  out.reserve(seq.size());
  for (size_t i = 0; i < seq.size(); ++i) {
    const std::string label = std::string(name) + "[" + std::to_string(i) + "]";
    py::array a = f32_array(op, label.c_str(), seq[i]);
    if (writeable) require_writeable(op, label.c_str(), a);
    out.push_back(a);
  }
  return out;
}

// No array that the update writes may share a byte with any other array of the call (results
// would depend on the order of the threads' writes); read-only arrays (grads) may share memory
// with each other. One sort and a sweep: a range that starts before the furthest end of an
// earlier range overlaps it.
struct Range {
  uintptr_t lo, hi;
  bool written;
  std::string label;
};

void require_disjoint(const char* op, std::vector<Range> rs) {
  std::sort(rs.begin(), rs.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  const Range* far_any = nullptr;  // the earlier range reaching furthest
  const Range* far_written = nullptr;
  for (const Range& r : rs) {
    const Range* hit = r.written ? far_any : far_written;
    if (hit && r.lo < hit->hi) {
      value_fail(op, "expected " + r.label + " not to share memory with " + hit->label +
                         " (every written array must be distinct), got overlapping arrays");
    }
    if (!far_any || r.hi > far_any->hi) far_any = &r;
    if (r.written && (!far_written || r.hi > far_written->hi)) far_written = &r;
  }
}

// The tensors of an update: params, grads and up to three state lists (None: unused), checked.
std::vector<OptimTensor> tensors(const char* op, py::handle params_obj, py::handle grads_obj,
                                 std::initializer_list<std::pair<const char*, py::handle>> states,
                                 std::vector<py::array>* keep) {
  std::vector<py::array> ps = array_list(op, "params", params_obj, kAnyLength, true);
  std::vector<py::array> gs = array_list(op, "grads", grads_obj, ps.size(), false);
  std::vector<std::vector<py::array>> ss;
  std::vector<const char*> names;
  for (const auto& [name, obj] : states) {
    ss.push_back(obj.is_none() ? std::vector<py::array>() : array_list(op, name, obj, ps.size(), true));
    names.push_back(name);
  }
  std::vector<OptimTensor> ts(ps.size());
  std::vector<Range> ranges;
  auto add_range = [&](const py::array& a, bool written, const char* name, size_t i) {
    if (a.nbytes() == 0) return;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(a.data());
    ranges.push_back({lo, lo + static_cast<uintptr_t>(a.nbytes()), written,
                      std::string(name) + "[" + std::to_string(i) + "]"});
  };
  for (size_t i = 0; i < ps.size(); ++i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    auto same_shape = [&](const char* name, const py::array& a) {
      if (shape_of(a) != shape_of(ps[i])) {
        value_fail(op, std::string("expected ") + name + idx + " of params" + idx + "'s shape " +
                           shape_str(ps[i]) + ", got " + shape_str(a));
      }
    };
    same_shape("grads", gs[i]);
    ts[i].n = static_cast<int64_t>(ps[i].size());
    ts[i].p = static_cast<float*>(ps[i].mutable_data());
    ts[i].g = static_cast<const float*>(gs[i].data());
    add_range(ps[i], true, "params", i);
    add_range(gs[i], false, "grads", i);
    float** slots[3] = {&ts[i].a, &ts[i].b, &ts[i].c};
    for (size_t k = 0; k < ss.size(); ++k) {
      if (ss[k].empty()) continue;
      same_shape(names[k], ss[k][i]);
      *slots[k] = static_cast<float*>(ss[k][i].mutable_data());
      add_range(ss[k][i], true, names[k], i);
    }
    keep->push_back(ps[i]);
    keep->push_back(gs[i]);
    for (auto& s : ss)
      if (!s.empty()) keep->push_back(s[i]);
  }
  require_disjoint(op, std::move(ranges));
  return ts;
}

void finite_arg(const char* op, const char* name, double v) {
  if (!std::isfinite(v))
    value_fail(op, std::string("expected a finite ") + name + ", got " + std::to_string(v));
}

void sgd(py::handle params, py::handle grads, py::handle bufs, double lr, double momentum, double dampening,
         bool nesterov, double weight_decay, bool maximize, bool first_step, py::handle isa_obj) {
  const char* op = "sgd_step";
  const Isa isa = isa_arg(op, isa_obj);
  if (nesterov && (momentum <= 0 || dampening != 0)) {
    value_fail(op, "Nesterov momentum requires a momentum and zero dampening, got momentum=" +
                       std::to_string(momentum) + ", dampening=" + std::to_string(dampening));
  }
  if (momentum != 0 && bufs.is_none())
    value_fail(op, "expected momentum_buffers with momentum != 0, got None");
  std::vector<py::array> keep;
  const std::vector<OptimTensor> ts =
      tensors(op, params, grads, {{"momentum_buffers", momentum != 0 ? bufs : py::none()}}, &keep);
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
  sgd_step(a, ts, isa, nt);
}

void adam(py::handle params, py::handle grads, py::handle m, py::handle v, int64_t step, double lr,
          double beta1, double beta2, double eps, double weight_decay, bool amsgrad, py::handle vmax,
          bool decoupled, bool maximize, py::handle isa_obj) {
  const char* op = "adam_step";
  const Isa isa = isa_arg(op, isa_obj);
  if (step < 1)
    value_fail(op, "expected step >= 1 (the step after incrementing), got " + std::to_string(step));
  finite_arg(op, "beta1", beta1);
  finite_arg(op, "beta2", beta2);
  if (m.is_none() || v.is_none()) value_fail(op, "expected exp_avgs and exp_avg_sqs lists, got None");
  if (amsgrad && vmax.is_none()) value_fail(op, "expected max_exp_avg_sqs with amsgrad, got None");
  std::vector<py::array> keep;
  const std::vector<OptimTensor> ts =
      tensors(op, params, grads,
              {{"exp_avgs", m}, {"exp_avg_sqs", v}, {"max_exp_avg_sqs", amsgrad ? vmax : py::none()}}, &keep);
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
  adam_step(a, ts, isa, nt);
}

double norm(py::handle arrays_obj, double norm_type, py::handle isa_obj) {
  const char* op = "grad_norm";
  const Isa isa = isa_arg(op, isa_obj);
  if (!(norm_type > 0)) {
    value_fail(op, "expected norm_type > 0 (2.0, 1.0, inf or another positive order), got " +
                       std::to_string(norm_type));
  }
  const std::vector<py::array> xs = array_list(op, "arrays", arrays_obj, kAnyLength, false);
  std::vector<const float*> ptrs;
  std::vector<int64_t> ns;
  for (const py::array& x : xs) {
    ptrs.push_back(static_cast<const float*>(x.data()));
    ns.push_back(static_cast<int64_t>(x.size()));
  }
  const int nt = get_num_threads();
  py::gil_scoped_release release;
  return grad_norm(ptrs, ns, norm_type, isa, nt);
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step", &sgd, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("lr"),
        py::arg("momentum") = 0.0, py::arg("dampening") = 0.0, py::arg("nesterov") = false,
        py::arg("weight_decay") = 0.0, py::arg("maximize") = false, py::arg("first_step") = false,
        py::arg("isa") = py::none(),
        "torch.optim.SGD's update of every param in place; see fastnn.ops.sgd_step.");
  m.def("adam_step", &adam, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
        py::arg("step"), py::arg("lr") = 1e-3, py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
        py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0, py::arg("amsgrad") = false,
        py::arg("max_exp_avg_sqs") = py::none(), py::arg("decoupled_weight_decay") = false,
        py::arg("maximize") = false, py::arg("isa") = py::none(),
        "torch.optim.Adam / AdamW's update of every param in place; see fastnn.ops.adam_step.");
  m.def("grad_norm", &norm, py::arg("arrays"), py::arg("norm_type") = 2.0, py::arg("isa") = py::none(),
        "The total norm of order norm_type over all arrays, in float64; see fastnn.ops.grad_norm.");
}

}  // namespace fastnn::bind
