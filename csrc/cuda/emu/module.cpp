// _fastnn_cuda_emu: the CUDA kernels of csrc/cuda, compiled as host C++ against the emulator,
// callable on NumPy arrays (host memory stands in for device memory). A test-only module:
// built with -DFASTNN_CUDA_EMULATION=ON, never installed. Outputs start as NaN, so an element
// a kernel never writes shows in the comparison. The ops with a meta function (conv2d,
// pooling, the recurrent layers, attention) have no NumPy-level entry here: tests call
// fastnn._cuda's own entries, the submodule `device`, with the CPU entries' arguments.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "cuda/kernels.h"
#include "ops/batchnorm.h"
#include "ops/optim.h"

namespace fastnn {
namespace cuda {
void emu_selftest(const std::string& name, const float* in, float* out, int n);
}
}  // namespace fastnn

namespace py = pybind11;
using Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

Array poisoned_like(const std::vector<py::ssize_t>& shape) {
  Array out(shape);
  float* p = out.mutable_data();
  for (py::ssize_t i = 0; i < out.size(); ++i) p[i] = std::numeric_limits<float>::quiet_NaN();
  return out;
}

std::vector<py::ssize_t> shape_of(const Array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

const float* opt(const py::object& o, Array* keep, int64_t n, const char* what) {
  if (o.is_none()) return nullptr;
  *keep = o.cast<Array>();
  if (keep->ndim() != 1 || keep->shape(0) != n) throw std::invalid_argument(std::string(what) + " shape");
  return keep->data();
}

using Index = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// In place: the arrays must already be float32 C-contiguous (no converting copy).
using InPlace = py::array_t<float, py::array::c_style>;

float* inplace(py::handle o) {
  if (o.is_none()) return nullptr;
  auto a = py::reinterpret_borrow<py::array>(o);
  if (!py::isinstance<InPlace>(a) || !(a.flags() & py::array::c_style))
    throw std::invalid_argument("float32 C-contiguous");
  return static_cast<float*>(a.mutable_data());
}

void sgd_step(py::array p, Array g, py::object buf, double lr, double momentum, double dampening,
              bool nesterov, double weight_decay, bool maximize, bool first_step) {
  fastnn::SgdArgs a;
  a.lr = lr, a.momentum = momentum, a.dampening = dampening, a.nesterov = nesterov;
  a.weight_decay = weight_decay, a.maximize = maximize, a.first_step = first_step;
  fastnn::cuda::sgd_step(a, inplace(p), g.data(), inplace(buf), g.size(), nullptr);
}

void adam_step(py::array p, Array g, py::array m, py::array v, py::object vmax, int64_t step, double lr,
               double beta1, double beta2, double eps, double weight_decay, bool decoupled, bool maximize) {
  fastnn::AdamArgs a;
  a.lr = lr, a.beta1 = beta1, a.beta2 = beta2, a.eps = eps, a.weight_decay = weight_decay;
  a.amsgrad = !vmax.is_none(), a.decoupled = decoupled, a.maximize = maximize, a.step = step;
  fastnn::cuda::adam_step(a, inplace(p), g.data(), inplace(m), inplace(v), inplace(vmax), g.size(), nullptr);
}

// Batch norm (x (N, C, H, W)); running statistics updated in place, so they must already be
// float32 C-contiguous (C,) arrays (no converting copy).
fastnn::BatchNormArgs bn_args(const Array& x, bool training, double momentum, double eps) {
  if (x.ndim() != 4) throw std::invalid_argument("batch_norm2d: 4-D x");
  fastnn::BatchNormArgs a;
  a.n = x.shape(0), a.c = x.shape(1), a.hw = x.shape(2) * x.shape(3);
  a.training = training, a.momentum = momentum, a.eps = eps;
  return a;
}

float* bn_running(const py::object& o, int64_t c) {
  float* p = inplace(o);
  if (p && (py::reinterpret_borrow<py::array>(o).ndim() != 1 ||
            py::reinterpret_borrow<py::array>(o).shape(0) != c))
    throw std::invalid_argument("batch_norm2d: running statistics shape");
  return p;
}

py::tuple batch_norm2d_forward(Array x, py::object weight, py::object bias, py::object running_mean,
                               py::object running_var, bool training, double momentum, double eps) {
  const fastnn::BatchNormArgs a = bn_args(x, training, momentum, eps);
  Array w, b;
  const float* wp = opt(weight, &w, a.c, "weight");
  const float* bp = opt(bias, &b, a.c, "bias");
  float *rm = bn_running(running_mean, a.c), *rv = bn_running(running_var, a.c);
  if ((!rm || !rv) && !training) throw std::invalid_argument("batch_norm2d: eval needs running statistics");
  Array y = poisoned_like(shape_of(x)), sm = poisoned_like({a.c}), si = poisoned_like({a.c});
  fastnn::cuda::batch_norm2d_forward(a, x.data(), wp, bp, rm, rv, y.mutable_data(), sm.mutable_data(),
                                     si.mutable_data(), nullptr);
  return py::make_tuple(y, sm, si);
}

py::tuple batch_norm2d_backward(Array dy, Array x, py::object weight, Array save_mean, Array save_invstd,
                                bool training) {
  const fastnn::BatchNormArgs a = bn_args(x, training, 0.0, 0.0);
  if (shape_of(dy) != shape_of(x) || save_mean.size() != a.c || save_invstd.size() != a.c)
    throw std::invalid_argument("batch_norm2d_backward: shapes");
  Array w;
  const float* wp = opt(weight, &w, a.c, "weight");
  Array dx = poisoned_like(shape_of(x));
  py::object dw = py::none(), db = py::none();
  float *dwp = nullptr, *dbp = nullptr;
  if (wp) {
    Array g = poisoned_like({a.c}), h = poisoned_like({a.c});
    dwp = g.mutable_data();
    dbp = h.mutable_data();
    dw = g;
    db = h;
  }
  fastnn::cuda::batch_norm2d_backward(a, dy.data(), x.data(), wp, save_mean.data(), save_invstd.data(),
                                      dx.mutable_data(), dwp, dbp, nullptr);
  return py::make_tuple(dx, dw, db);
}

// grad_norm: the partial sums and the result start as NaN (a slot never written shows).
double grad_norm(py::sequence arrays, double p) {
  std::vector<Array> keep;
  std::vector<const float*> xs;
  std::vector<int64_t> ns;
  int64_t total = 0;
  for (py::handle h : arrays) {
    keep.push_back(py::reinterpret_borrow<py::object>(h).cast<Array>());
    xs.push_back(keep.back().data());
    ns.push_back(keep.back().size());
    total += fastnn::cuda::grad_norm_partials(ns.back());
  }
  std::vector<double> part(static_cast<size_t>(total) + 1, std::numeric_limits<double>::quiet_NaN());
  fastnn::cuda::grad_norm(static_cast<int64_t>(xs.size()), xs.data(), ns.data(), p, part.data(),
                          part.data() + total, nullptr);
  return part[static_cast<size_t>(total)];
}

Array selftest(const std::string& name, Array in) {
  Array out = poisoned_like(shape_of(in));
  fastnn::cuda::emu_selftest(name, in.data(), out.mutable_data(), static_cast<int>(in.size()));
  return out;
}

}  // namespace

// csrc/cuda/module.cpp's bindings (fastnn._cuda's), compiled against the emulator.
void fastnn_cuda_bind_device(py::module_& m);

PYBIND11_MODULE(_fastnn_cuda_emu, m) {
  m.doc() = "fastnn's CUDA kernels run by the host emulator (tests only)";
  py::module_ device = m.def_submodule("device",
                                       "fastnn._cuda's pointer-level bindings on the emulator: "
                                       "device pointers are host pointers");
  fastnn_cuda_bind_device(device);
  m.def("sgd_step", &sgd_step);
  m.def("adam_step", &adam_step);
  m.def("batch_norm2d_forward", &batch_norm2d_forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum") = 0.1,
        py::arg("eps") = 1e-5);
  m.def("batch_norm2d_backward", &batch_norm2d_backward, py::arg("dy"), py::arg("x"), py::arg("weight"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("training") = true);
  m.def("grad_norm", &grad_norm, py::arg("arrays"), py::arg("norm_type") = 2.0);
  m.def("selftest", &selftest,
        "Runs one of csrc/cuda/emu/selftest.cu's kernels (one block of in.size threads)");
}
