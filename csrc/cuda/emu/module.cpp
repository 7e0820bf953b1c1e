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

Array gemm(Array a, Array b, py::object c, bool trans_a, bool trans_b, float alpha, float beta,
           py::object bias, bool relu) {
  if (a.ndim() != 2 || b.ndim() != 2) throw std::invalid_argument("gemm: 2-D a and b");
  fastnn::cuda::GemmArgs g;
  g.M = trans_a ? a.shape(1) : a.shape(0);
  g.K = trans_a ? a.shape(0) : a.shape(1);
  g.N = trans_b ? b.shape(0) : b.shape(1);
  if ((trans_b ? b.shape(1) : b.shape(0)) != g.K) throw std::invalid_argument("gemm: inner sizes differ");
  Array out = poisoned_like({g.M, g.N});
  Array carr, barr;
  if (!c.is_none()) {
    carr = c.cast<Array>();
    if (carr.ndim() != 2 || carr.shape(0) != g.M || carr.shape(1) != g.N)
      throw std::invalid_argument("gemm: c shape");
    g.c = carr.data();
  }
  if (!bias.is_none()) {
    barr = bias.cast<Array>();
    if (barr.ndim() != 1 || barr.shape(0) != g.N) throw std::invalid_argument("gemm: bias shape");
    g.bias = barr.data();
  }
  g.a = a.data();
  g.b = b.data();
  g.out = out.mutable_data();
  g.lda = a.shape(1);
  g.ldb = b.shape(1);
  g.ldc = g.N;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.alpha = alpha;
  g.beta = beta;
  g.act = relu ? 1 : 0;
  fastnn::cuda::gemm(g, nullptr);
  return out;
}

Array act_forward(int kind, float alpha, Array x) {
  Array y = poisoned_like(shape_of(x));
  fastnn::cuda::act_forward(kind, alpha, x.data(), y.mutable_data(), x.size(), nullptr);
  return y;
}

Array act_backward(int kind, float alpha, Array dy, Array xy) {
  if (dy.size() != xy.size()) throw std::invalid_argument("act_backward: sizes differ");
  Array dx = poisoned_like(shape_of(dy));
  fastnn::cuda::act_backward(kind, alpha, dy.data(), xy.data(), dx.mutable_data(), dy.size(), nullptr);
  return dx;
}

void outer_inner(const Array& x, int dim, int64_t* outer, int64_t* n, int64_t* inner) {
  if (dim < 0) dim += static_cast<int>(x.ndim());
  if (dim < 0 || dim >= x.ndim()) throw std::invalid_argument("softmax: dim out of range");
  *outer = *inner = 1;
  for (int i = 0; i < dim; ++i) *outer *= x.shape(i);
  *n = x.shape(dim);
  for (int i = dim + 1; i < x.ndim(); ++i) *inner *= x.shape(i);
}

Array softmax_forward(Array x, int dim, bool log) {
  int64_t o, n, in;
  outer_inner(x, dim, &o, &n, &in);
  Array y = poisoned_like(shape_of(x));
  fastnn::cuda::softmax_forward(o, n, in, log, x.data(), y.mutable_data(), nullptr);
  return y;
}

Array softmax_backward(Array dy, Array y, int dim, bool log) {
  int64_t o, n, in;
  outer_inner(y, dim, &o, &n, &in);
  Array dx = poisoned_like(shape_of(y));
  fastnn::cuda::softmax_backward(o, n, in, log, dy.data(), y.data(), dx.mutable_data(), nullptr);
  return dx;
}

const float* opt(const py::object& o, Array* keep, int64_t n, const char* what) {
  if (o.is_none()) return nullptr;
  *keep = o.cast<Array>();
  if (keep->ndim() != 1 || keep->shape(0) != n) throw std::invalid_argument(std::string(what) + " shape");
  return keep->data();
}

py::tuple layer_norm_forward(Array x, py::object weight, py::object bias, float eps) {
  if (x.ndim() != 2) throw std::invalid_argument("layer_norm_forward: 2-D x");
  const int64_t m = x.shape(0), n = x.shape(1);
  Array w, b;
  const float* wp = opt(weight, &w, n, "weight");
  const float* bp = opt(bias, &b, n, "bias");
  Array y = poisoned_like({m, n}), mean = poisoned_like({m}), rstd = poisoned_like({m});
  fastnn::cuda::layer_norm_forward(m, n, x.data(), wp, bp, eps, y.mutable_data(), mean.mutable_data(),
                                   rstd.mutable_data(), nullptr);
  return py::make_tuple(y, mean, rstd);
}

py::tuple layer_norm_backward(Array dy, Array x, Array mean, Array rstd, py::object weight) {
  if (x.ndim() != 2 || dy.ndim() != 2) throw std::invalid_argument("layer_norm_backward: 2-D x, dy");
  const int64_t m = x.shape(0), n = x.shape(1);
  Array w;
  const float* wp = opt(weight, &w, n, "weight");
  Array dx = poisoned_like({m, n});
  py::object dw = py::none(), db = py::none();
  float *dwp = nullptr, *dbp = nullptr;
  if (wp) {
    Array a = poisoned_like({n}), b = poisoned_like({n});
    dwp = a.mutable_data();
    dbp = b.mutable_data();
    dw = a;
    db = b;
  }
  fastnn::cuda::layer_norm_backward(m, n, dy.data(), x.data(), mean.data(), rstd.data(), wp,
                                    dx.mutable_data(), dwp, dbp, nullptr);
  return py::make_tuple(dx, dw, db);
}

using Index = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

Array embedding_forward(Array weight, Index idx) {
  const int64_t v = weight.shape(0), d = weight.shape(1), t = idx.size();
  for (int64_t i = 0; i < t; ++i)
    if (idx.data()[i] < 0 || idx.data()[i] >= v) throw std::invalid_argument("embedding: index out of range");
  Array out = poisoned_like({t, d});
  fastnn::cuda::embedding_forward(t, d, weight.data(), idx.data(), out.mutable_data(), nullptr);
  return out;
}

Array embedding_backward(Array dy, Index idx, int64_t v, int64_t padding_idx) {
  const int64_t t = idx.size(), d = dy.shape(1);
  for (int64_t i = 0; i < t; ++i)
    if (idx.data()[i] < 0 || idx.data()[i] >= v) throw std::invalid_argument("embedding: index out of range");
  Array dw = poisoned_like({v, d});
  fastnn::cuda::embedding_backward(v, t, d, padding_idx, dy.data(), idx.data(), dw.mutable_data(), nullptr);
  return dw;
}

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

py::tuple cross_entropy_rows(Array x, Index t, py::object weight, int64_t ignore_index, float smoothing) {
  const int64_t rows = x.shape(0), C = x.shape(1);
  Array w;
  const float* wp = opt(weight, &w, C, "weight");
  Array loss = poisoned_like({rows}), wt = poisoned_like({rows});
  fastnn::cuda::cross_entropy_forward(rows, C, x.data(), t.data(), wp, ignore_index, smoothing,
                                      loss.mutable_data(), wt.mutable_data(), nullptr);
  return py::make_tuple(loss, wt);
}

Array cross_entropy_backward_rows(Array x, Index t, py::object weight, int64_t ignore_index, float smoothing,
                                  Array scale) {
  const int64_t rows = x.shape(0), C = x.shape(1);
  Array w;
  const float* wp = opt(weight, &w, C, "weight");
  Array dx = poisoned_like({rows, C});
  fastnn::cuda::cross_entropy_backward(rows, C, x.data(), t.data(), wp, ignore_index, smoothing, scale.data(),
                                       dx.mutable_data(), nullptr);
  return dx;
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
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("c") = py::none(), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
        py::arg("bias") = py::none(), py::arg("relu") = false);
  m.def("act_forward", &act_forward);
  m.def("act_backward", &act_backward);
  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("dim") = -1, py::arg("log") = false);
  m.def("softmax_backward", &softmax_backward, py::arg("dy"), py::arg("y"), py::arg("dim") = -1,
        py::arg("log") = false);
  m.def("layer_norm_forward", &layer_norm_forward, py::arg("x"), py::arg("weight") = py::none(),
        py::arg("bias") = py::none(), py::arg("eps") = 1e-5f);
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("dy"), py::arg("x"), py::arg("mean"),
        py::arg("rstd"), py::arg("weight") = py::none());
  m.def("embedding_forward", &embedding_forward);
  m.def("embedding_backward", &embedding_backward, py::arg("dy"), py::arg("idx"), py::arg("v"),
        py::arg("padding_idx") = -1);
  m.def("sgd_step", &sgd_step);
  m.def("adam_step", &adam_step);
  m.def("cross_entropy_rows", &cross_entropy_rows);
  m.def("cross_entropy_backward_rows", &cross_entropy_backward_rows);
  m.def("batch_norm2d_forward", &batch_norm2d_forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum") = 0.1,
        py::arg("eps") = 1e-5);
  m.def("batch_norm2d_backward", &batch_norm2d_backward, py::arg("dy"), py::arg("x"), py::arg("weight"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("training") = true);
  m.def("grad_norm", &grad_norm, py::arg("arrays"), py::arg("norm_type") = 2.0);
  m.def("selftest", &selftest,
        "Runs one of csrc/cuda/emu/selftest.cu's kernels (one block of in.size threads)");
}
