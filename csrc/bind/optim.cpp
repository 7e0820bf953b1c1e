// Binding of the fused optimizer updates and grad_norm: lists of NumPy arrays read by
// bind/py_args.h's ArrayList, the rules optim's meta functions (csrc/ops/optim_meta.cpp, shared
// with the CUDA binding), applied with the GIL held, then one kernel call without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "bind/py_args.h"
#include "core/threads.h"
#include "ops/optim.h"

namespace fastnn::bind {
namespace {

using List = ArrayList<NpArg>;

void sgd(py::handle params, py::handle grads, py::handle bufs, double lr, double momentum, double dampening,
         bool nesterov, double weight_decay, bool maximize, bool first_step, py::handle isa_obj) {
  const char* op = "sgd_step";
  const Isa isa = isa_arg(op, isa_obj);
  SgdArgs a;
  a.lr = lr;
  a.momentum = momentum;
  a.dampening = dampening;
  a.weight_decay = weight_decay;
  a.nesterov = nesterov;
  a.maximize = maximize;
  a.first_step = first_step;
  const List ps(op, "params", params), gs(op, "grads", grads),
      bs(op, "momentum_buffers", sgd_uses_buffers(a) ? bufs : py::none(), /*optional=*/true);
  const std::vector<OptimTensor> ts = sgd_step_meta(a, *ps.refs(), *gs.refs(), bs.refs());
  const int nt = get_num_threads();
  run_kernel(op, [&] { return sgd_step(a, ts, isa, nt); });
}

void adam(py::handle params, py::handle grads, py::handle m, py::handle v, int64_t step, double lr,
          double beta1, double beta2, double eps, double weight_decay, bool amsgrad, py::handle vmax,
          bool decoupled, bool maximize, py::handle isa_obj) {
  const char* op = "adam_step";
  const Isa isa = isa_arg(op, isa_obj);
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
  const List ps(op, "params", params), gs(op, "grads", grads), ms(op, "exp_avgs", m, true),
      vs(op, "exp_avg_sqs", v, true), vmaxs(op, "max_exp_avg_sqs", amsgrad ? vmax : py::none(), true);
  const std::vector<OptimTensor> ts =
      adam_step_meta(a, *ps.refs(), *gs.refs(), ms.refs(), vs.refs(), vmaxs.refs());
  const int nt = get_num_threads();
  run_kernel(op, [&] { return adam_step(a, ts, isa, nt); });
}

double norm(py::handle arrays_obj, double norm_type, py::handle isa_obj) {
  const char* op = "grad_norm";
  const Isa isa = isa_arg(op, isa_obj);
  const List xs(op, "arrays", arrays_obj);
  const GradNormArgs g = grad_norm_meta(norm_type, *xs.refs());
  const int nt = get_num_threads();
  return run_kernel(op, [&] { return grad_norm(g.xs, g.ns, g.p, isa, nt); });
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
