// _fastnn_cuda_emu: the CUDA kernels of csrc/cuda, compiled as host C++ against the emulator,
// callable on NumPy arrays (host memory stands in for device memory). A test-only module:
// built with -DFASTNN_CUDA_EMULATION=ON, never installed. Outputs start as NaN, so an element
// a kernel never writes shows in the comparison.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "cuda/kernels.h"
#include "ops/attention.h"
#include "ops/batchnorm.h"
#include "ops/optim.h"
#include "ops/rnn.h"

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

// Recurrent layers: cell 0 tanh RNN, 1 relu RNN, 2 LSTM, 3 GRU (fastnn::RnnCell). The shape
// comes from x (T, B, I) and w_hh (G*H, H); the others are checked against it. The scratch, like
// the outputs, starts as NaN.
fastnn::RnnShape rnn_shape(int cell, bool reverse, const Array& x, const Array& w_hh) {
  fastnn::RnnShape s;
  if (cell < 0 || cell > 3) throw std::invalid_argument("rnn: cell must be 0..3");
  s.cell = static_cast<fastnn::RnnCell>(cell);
  s.reverse = reverse;
  if (x.ndim() != 3 || w_hh.ndim() != 2 || w_hh.shape(0) != s.gates() * w_hh.shape(1))
    throw std::invalid_argument("rnn: x (T, B, I) and w_hh (G*H, H)");
  s.T = x.shape(0), s.B = x.shape(1), s.I = x.shape(2), s.H = w_hh.shape(1);
  return s;
}

const float* rnn_opt(const py::object& o, Array* keep, const std::vector<py::ssize_t>& shape,
                     const char* what) {
  if (o.is_none()) return nullptr;
  *keep = o.cast<Array>();
  if (shape_of(*keep) != shape) throw std::invalid_argument(std::string("rnn: ") + what + " shape");
  return keep->data();
}

py::tuple rnn_forward(int cell, bool reverse, Array x, py::object h0, py::object c0, Array w_ih, Array w_hh,
                      py::object b_ih, py::object b_hh) {
  const fastnn::RnnShape s = rnn_shape(cell, reverse, x, w_hh);
  const bool lstm = s.cell == fastnn::RnnCell::Lstm;
  const py::ssize_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * s.H;
  if (shape_of(w_ih) != std::vector<py::ssize_t>{GH, I}) throw std::invalid_argument("rnn: w_ih shape");
  Array h0a, c0a, bia, bha;
  const float* h0p = rnn_opt(h0, &h0a, {B, H}, "h0");
  const float* c0p = lstm ? rnn_opt(c0, &c0a, {B, H}, "c0") : nullptr;
  const float* bip = rnn_opt(b_ih, &bia, {GH}, "b_ih");
  const float* bhp = rnn_opt(b_hh, &bha, {GH}, "b_hh");
  Array y = poisoned_like({T, B, H}), h_n = poisoned_like({B, H}), c_n = poisoned_like({lstm ? B : 0, H});
  Array ws = poisoned_like({fastnn::cuda::rnn_workspace_floats(s)});
  Array scratch = poisoned_like({fastnn::cuda::rnn_scratch_floats(s, false)});
  fastnn::cuda::rnn_forward(s, x.data(), h0p, c0p, w_ih.data(), w_hh.data(), bip, bhp, y.mutable_data(),
                            h_n.mutable_data(), lstm ? c_n.mutable_data() : nullptr, ws.mutable_data(),
                            scratch.mutable_data(), nullptr);
  return py::make_tuple(y, h_n, lstm ? py::object(c_n) : py::object(py::none()), ws);
}

py::tuple rnn_backward(int cell, bool reverse, py::object dy, py::object dh_n, py::object dc_n, Array x,
                       py::object h0, py::object c0, Array w_ih, Array w_hh, py::object y, Array ws) {
  const fastnn::RnnShape s = rnn_shape(cell, reverse, x, w_hh);
  const bool lstm = s.cell == fastnn::RnnCell::Lstm;
  const py::ssize_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * s.H;
  if (shape_of(w_ih) != std::vector<py::ssize_t>{GH, I}) throw std::invalid_argument("rnn: w_ih shape");
  if (ws.size() != fastnn::cuda::rnn_workspace_floats(s)) throw std::invalid_argument("rnn: ws size");
  Array dya, dhna, dcna, h0a, c0a, ya;
  const float* dyp = rnn_opt(dy, &dya, {T, B, H}, "dy");
  const float* dhnp = rnn_opt(dh_n, &dhna, {B, H}, "dh_n");
  const float* dcnp = lstm ? rnn_opt(dc_n, &dcna, {B, H}, "dc_n") : nullptr;
  const float* h0p = rnn_opt(h0, &h0a, {B, H}, "h0");
  const float* c0p = lstm ? rnn_opt(c0, &c0a, {B, H}, "c0") : nullptr;
  const float* yp = rnn_opt(y, &ya, {T, B, H}, "y");
  if (!yp && (T > 1 || !(lstm || s.cell == fastnn::RnnCell::Gru)))
    throw std::invalid_argument("rnn: y needed");
  Array dx = poisoned_like({T, B, I}), dh0 = poisoned_like({B, H}), dc0 = poisoned_like({lstm ? B : 0, H});
  Array dw_ih = poisoned_like({GH, I}), dw_hh = poisoned_like({GH, H});
  Array db_ih = poisoned_like({GH}), db_hh = poisoned_like({GH});
  Array scratch = poisoned_like({fastnn::cuda::rnn_scratch_floats(s, true)});
  fastnn::cuda::rnn_backward(s, dyp, dhnp, dcnp, x.data(), h0p, c0p, w_ih.data(), w_hh.data(), yp, ws.data(),
                             dx.mutable_data(), dh0.mutable_data(), lstm ? dc0.mutable_data() : nullptr,
                             dw_ih.mutable_data(), dw_hh.mutable_data(), db_ih.mutable_data(),
                             db_hh.mutable_data(), scratch.mutable_data(), nullptr);
  return py::make_tuple(dx, dh0, lstm ? py::object(dc0) : py::object(py::none()), dw_ih, dw_hh, db_ih, db_hh);
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

// Attention on (B, NH, L, HD) arrays: the mask (None, or bool / float32 with any strides) is read
// at the element strides (b, h, i, j) given, as fastnn.cuda passes them.
struct Attention {
  fastnn::AttentionArgs a;
  py::array mask;  // kept alive for the call
};

Attention attention_args(const Array& q, const Array& k, const Array& v, const py::object& mask,
                         const py::tuple& strides, bool causal, float scale) {
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4) throw std::invalid_argument("attention: 4-D q, k, v");
  Attention t;
  fastnn::AttentionArgs& a = t.a;
  a.B = q.shape(0), a.NH = q.shape(1), a.L = q.shape(2), a.D = q.shape(3), a.S = k.shape(2),
  a.DV = v.shape(3);
  if (k.shape(0) != a.B || k.shape(1) != a.NH || k.shape(3) != a.D || v.shape(0) != a.B ||
      v.shape(1) != a.NH || v.shape(2) != a.S)
    throw std::invalid_argument("attention: q, k, v shapes differ");
  a.q = q.data(), a.k = k.data(), a.v = v.data();
  a.causal = causal, a.scale = scale;
  if (!mask.is_none()) {
    t.mask = py::reinterpret_borrow<py::array>(mask);
    if (t.mask.dtype().equal(py::dtype::of<bool>())) {
      a.mask_kind = fastnn::AttnMask::Bool;
    } else if (t.mask.dtype().equal(py::dtype::of<float>())) {
      a.mask_kind = fastnn::AttnMask::Float;
    } else {
      throw std::invalid_argument("attention: mask of bool or float32");
    }
    if (strides.size() != 4) throw std::invalid_argument("attention: 4 mask strides");
    a.mask = t.mask.data();
    a.msb = strides[0].cast<int64_t>(), a.msh = strides[1].cast<int64_t>();
    a.msl = strides[2].cast<int64_t>(), a.mss = strides[3].cast<int64_t>();
  }
  return t;
}

py::tuple attention_forward(Array q, Array k, Array v, py::object mask, py::tuple strides, bool causal,
                            float scale) {
  const Attention t = attention_args(q, k, v, mask, strides, causal, scale);
  const auto& a = t.a;
  Array out = poisoned_like({a.B, a.NH, a.L, a.DV}), lse = poisoned_like({a.B, a.NH, a.L});
  fastnn::cuda::attention_forward(a, out.mutable_data(), lse.mutable_data(), nullptr);
  return py::make_tuple(out, lse);
}

// (dq, dk, dv, delta): delta is the scratch of dout_i . out_i the backward fills first.
py::tuple attention_backward(Array dout, Array q, Array k, Array v, Array out, Array lse, py::object mask,
                             py::tuple strides, bool causal, float scale) {
  const Attention t = attention_args(q, k, v, mask, strides, causal, scale);
  const auto& a = t.a;
  const std::vector<py::ssize_t> oshape = {a.B, a.NH, a.L, a.DV}, lshape = {a.B, a.NH, a.L};
  if (shape_of(dout) != oshape || shape_of(out) != oshape || shape_of(lse) != lshape)
    throw std::invalid_argument("attention: dout, out (B, NH, L, DV) and lse (B, NH, L)");
  Array dq = poisoned_like(shape_of(q)), dk = poisoned_like(shape_of(k)), dv = poisoned_like(shape_of(v));
  Array delta = poisoned_like(lshape);
  fastnn::cuda::attention_backward(a, dout.data(), out.data(), lse.data(), dq.mutable_data(),
                                   dk.mutable_data(), dv.mutable_data(), delta.mutable_data(), nullptr);
  return py::make_tuple(dq, dk, dv, delta);
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
  m.def("rnn_forward", &rnn_forward, py::arg("cell"), py::arg("reverse"), py::arg("x"), py::arg("h0"),
        py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih") = py::none(),
        py::arg("b_hh") = py::none(), "(y, h_n, c_n or None, ws)");
  m.def("rnn_backward", &rnn_backward, py::arg("cell"), py::arg("reverse"), py::arg("dy"), py::arg("dh_n"),
        py::arg("dc_n"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("y"), py::arg("ws"), "(dx, dh0, dc0 or None, dw_ih, dw_hh, db_ih, db_hh)");
  m.def("batch_norm2d_forward", &batch_norm2d_forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum") = 0.1,
        py::arg("eps") = 1e-5);
  m.def("batch_norm2d_backward", &batch_norm2d_backward, py::arg("dy"), py::arg("x"), py::arg("weight"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("training") = true);
  m.def("grad_norm", &grad_norm, py::arg("arrays"), py::arg("norm_type") = 2.0);
  m.def("attention_forward", &attention_forward, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("mask") = py::none(), py::arg("mask_strides") = py::make_tuple(0, 0, 0, 0),
        py::arg("causal") = false, py::arg("scale") = 1.0f, "(out, lse)");
  m.def("attention_backward", &attention_backward, py::arg("dout"), py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("out"), py::arg("lse"), py::arg("mask") = py::none(),
        py::arg("mask_strides") = py::make_tuple(0, 0, 0, 0), py::arg("causal") = false,
        py::arg("scale") = 1.0f, "(dq, dk, dv, delta)");
  m.def("selftest", &selftest,
        "Runs one of csrc/cuda/emu/selftest.cu's kernels (one block of in.size threads)");
}
