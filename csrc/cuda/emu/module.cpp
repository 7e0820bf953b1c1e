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
  m.def("layer_norm_forward", &layer_norm_forward, py::arg("x"), py::arg("weight") = py::none(),
        py::arg("bias") = py::none(), py::arg("eps") = 1e-5f);
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("dy"), py::arg("x"), py::arg("mean"),
        py::arg("rstd"), py::arg("weight") = py::none());
  m.def("embedding_forward", &embedding_forward);
  m.def("embedding_backward", &embedding_backward, py::arg("dy"), py::arg("idx"), py::arg("v"),
        py::arg("padding_idx") = -1);
  m.def("rnn_forward", &rnn_forward, py::arg("cell"), py::arg("reverse"), py::arg("x"), py::arg("h0"),
        py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih") = py::none(),
        py::arg("b_hh") = py::none(), "(y, h_n, c_n or None, ws)");
  m.def("rnn_backward", &rnn_backward, py::arg("cell"), py::arg("reverse"), py::arg("dy"), py::arg("dh_n"),
        py::arg("dc_n"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("y"), py::arg("ws"), "(dx, dh0, dc0 or None, dw_ih, dw_hh, db_ih, db_hh)");
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
