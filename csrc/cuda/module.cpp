// fastnn._cuda: the CUDA kernels on CUDA arrays. The entries of the ops with a meta function
// (gemm, conv2d, pooling, the activations, softmax and cross-entropy, batch norm, the optimizer
// updates, grad_norm) take fastnn._core's arguments plus fastnn.cuda's runtime object (last),
// read the arrays through __cuda_array_interface__ (cuda/args.h) and apply the CPU's rules; the
// others (layer norm, embedding, the recurrent layers, attention) still take raw pointers,
// sizes and the stream from python/fastnn/cuda.py, which checks and allocates for them. The
// CUDA runtime is linked statically: the module imports without a driver, and device_count()
// is then 0.
//
// Compiled as host C++ with FASTNN_CUDA_EMULATE (tests only), the same bindings become the
// submodule `device` of _fastnn_cuda_emu: one emulated device whose "device pointers" are host
// pointers, so python/fastnn/cuda.py and everything above it run end to end on the emulator
// (tests/fake_cupy.py stands in for CuPy).
#if defined(FASTNN_CUDA_EMULATE)
#define FASTNN_VERSION "emulated"
#define FASTNN_CUDA_ARCHITECTURES "emulated"
#define FASTNN_CUDA_COMPILER "host C++ (emulator)"
#else
#include <cuda_runtime_api.h>
#endif
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind/arg_errors.h"
#include "bind/py_args.h"
#include "cuda/args.h"
#include "cuda/kernels.h"
#include "ops/act.h"
#include "ops/attention.h"
#include "ops/batchnorm.h"
#include "ops/conv2d.h"
#include "ops/gemm.h"
#include "ops/optim.h"
#include "ops/pool2d.h"
#include "ops/rnn.h"
#include "ops/softmax.h"

namespace py = pybind11;
using Ptr = std::uintptr_t;

namespace {

template <class T>
T* ptr(Ptr p) {
  return reinterpret_cast<T*>(p);
}
void* stream_of(Ptr s) { return reinterpret_cast<void*>(s); }

#if defined(FASTNN_CUDA_EMULATE)
int device_count() { return 1; }
int driver_version() { return 0; }
int runtime_version() { return 0; }
#else
int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the sticky error
    return 0;
  }
  return n;
}

int driver_version() {
  int v = 0;
  return cudaDriverGetVersion(&v) == cudaSuccess ? v : 0;
}

int runtime_version() {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : 0;
}
#endif

// The recurrent layers' shape: cell 0 tanh RNN, 1 relu RNN, 2 LSTM, 3 GRU (fastnn::RnnCell).
fastnn::RnnShape rnn_shape(int cell, bool reverse, int64_t T, int64_t B, int64_t I, int64_t H) {
  if (cell < 0 || cell > 3)
    throw std::invalid_argument("rnn: cell must be 0..3, got " + std::to_string(cell));
  fastnn::RnnShape s;
  s.cell = static_cast<fastnn::RnnCell>(cell);
  s.reverse = reverse;
  s.T = T, s.B = B, s.I = I, s.H = H;
  return s;
}

// Attention: dims (B, NH, L, S, HD, DV); mask_kind 0 none, 1 bool, 2 float32 (fastnn::AttnMask),
// read at the element strides (b, h, i, j) of mask_strides (fastnn.cuda computes them).
fastnn::AttentionArgs attention_args(py::tuple dims, Ptr q, Ptr k, Ptr v, int mask_kind, Ptr mask,
                                     py::tuple mask_strides, bool causal, float scale) {
  if (dims.size() != 6 || mask_strides.size() != 4 || mask_kind < 0 || mask_kind > 2)
    throw std::invalid_argument("attention: dims (B, NH, L, S, HD, DV), mask_kind 0..2 and 4 mask strides");
  fastnn::AttentionArgs a;
  a.B = dims[0].cast<int64_t>(), a.NH = dims[1].cast<int64_t>(), a.L = dims[2].cast<int64_t>();
  a.S = dims[3].cast<int64_t>(), a.D = dims[4].cast<int64_t>(), a.DV = dims[5].cast<int64_t>();
  a.q = ptr<const float>(q), a.k = ptr<const float>(k), a.v = ptr<const float>(v);
  a.mask_kind = static_cast<fastnn::AttnMask>(mask_kind);
  a.mask = ptr<const void>(mask);
  a.msb = mask_strides[0].cast<int64_t>(), a.msh = mask_strides[1].cast<int64_t>();
  a.msl = mask_strides[2].cast<int64_t>(), a.mss = mask_strides[3].cast<int64_t>();
  a.causal = causal, a.scale = scale;
  return a;
}

// gemm: fastnn._core.gemm's arguments, gemm's meta function; the last argument is the runtime.
// Transposed views are read in place; other strided inputs are copied (rt.contiguous). A batch
// runs as one launch per item.
fastnn::cuda::DevArg gemm_operand(const char* op, const char* name, py::handle obj, py::handle rt,
                                  bool* trans) {
  fastnn::cuda::DevArg x(op, name, obj);
  fastnn::gemm_operand_check(x.ref);
  if (!x.ref.contiguous && !fastnn::gemm_transposed_view(&x.ref, trans)) {
    return fastnn::cuda::DevArg(op, name, rt.attr("contiguous")(x.obj));
  }
  return x;
}

void bind_gemm(py::module_& m) {
  m.def("gemm",
        [](py::handle a_obj, py::handle b_obj, py::handle c_obj, py::handle out_obj, bool trans_a,
           bool trans_b, float alpha, float beta, py::handle bias_obj, py::handle activation, py::handle rt) {
          using fastnn::cuda::DevArg;
          const char* op = "gemm";
          const DevArg a = gemm_operand(op, "a", a_obj, rt, &trans_a),
                       b = gemm_operand(op, "b", b_obj, rt, &trans_b);
          const DevArg c(op, "c", c_obj), bias(op, "bias", bias_obj), given(op, "out", out_obj);
          std::string act_name;
          if (!activation.is_none()) act_name = py::str(activation);
          const fastnn::GemmCall call =
              fastnn::gemm_meta(a.ref, trans_a, b.ref, trans_b, c.ref, given.ref, alpha, beta, bias.ref,
                                activation.is_none() ? nullptr : &act_name);
          fastnn::ArrayRef out;
          py::object res =
              fastnn::cuda::dev_out(op, rt, out_obj, call.out_shape, {&a.ref, &b.ref, &bias.ref}, &out);
          fastnn::GemmArgs g = call.g;
          const float* cp = !call.uses_c      ? nullptr
                            : call.c_from_out ? out.ptr<const float>()
                                              : c.ref.ptr<const float>();
          g.bias = bias.ref.ptr<const float>();
          void* st = fastnn::cuda::stream_of(rt);
          {
            py::gil_scoped_release nogil;
            for (size_t i = 0; i < call.a_off.size(); ++i) {
              g.a = a.ref.ptr<const float>() + call.a_off[i];
              g.b = b.ref.ptr<const float>() + call.b_off[i];
              g.c = cp ? cp + call.c_off[i] : nullptr;
              g.out = out.ptr<float>() + static_cast<int64_t>(i) * g.M * g.N;
              fastnn::cuda::gemm(g, st);
            }
          }
          return res;
        });
}

// Activations: the CPU entries' arguments (options read by bind/py_args.h), act's meta
// functions; the last argument is the runtime.
py::object act_fwd(const char* op, fastnn::ActKind kind, float alpha, py::handle x_obj, py::handle out,
                   py::handle rt) {
  const fastnn::cuda::DevArg x(op, "x", x_obj);
  const fastnn::ActArgs a = fastnn::act_forward_meta(op, kind, alpha, x.ref);
  fastnn::ArrayRef y;
  py::object res =
      fastnn::cuda::dev_out(op, rt, out, x.ref.shape, {&x.ref}, &y, fastnn::DType::Float32, "out",
                            /*in_place=*/true);
  void* st = fastnn::cuda::stream_of(rt);
  {
    py::gil_scoped_release nogil;
    fastnn::cuda::act_forward(static_cast<int>(a.kind), a.alpha, x.ref.ptr<const float>(), y.ptr<float>(),
                              a.n, st);
  }
  return res;
}

py::object act_bwd(const char* op, const char* xy_name, fastnn::ActKind kind, float alpha, py::handle dy_obj,
                   py::handle xy_obj, py::handle out, py::handle rt) {
  const fastnn::cuda::DevArg dy(op, "dy", dy_obj), xy(op, xy_name, xy_obj);
  const fastnn::ActArgs a = fastnn::act_backward_meta(op, kind, alpha, dy.ref, xy.ref);
  fastnn::ArrayRef dx;
  py::object res = fastnn::cuda::dev_out(op, rt, out, dy.ref.shape, {&dy.ref, &xy.ref}, &dx,
                                         fastnn::DType::Float32, "out", /*in_place=*/true);
  void* st = fastnn::cuda::stream_of(rt);
  {
    py::gil_scoped_release nogil;
    fastnn::cuda::act_backward(static_cast<int>(a.kind), a.alpha, dy.ref.ptr<const float>(),
                               xy.ref.ptr<const float>(), dx.ptr<float>(), a.n, st);
  }
  return res;
}

void bind_act(py::module_& m) {
  using fastnn::ActKind;
  for (const fastnn::bind::PlainAct& p : fastnn::bind::kPlainActs) {
    m.def(p.fwd, [p](py::handle x, py::handle out, py::handle rt) {
      return act_fwd(p.fwd, p.kind, 0.0f, x, out, rt);
    });
    m.def(p.bwd, [p](py::handle dy, py::handle xy, py::handle out, py::handle rt) {
      return act_bwd(p.bwd, p.xy, p.kind, 0.0f, dy, xy, out, rt);
    });
  }
  m.def("leaky_relu_forward", [](py::handle x, py::handle slope, py::handle out, py::handle rt) {
    const char* op = "leaky_relu_forward";
    return act_fwd(op, ActKind::LeakyRelu, fastnn::bind::slope_arg(op, slope), x, out, rt);
  });
  m.def("leaky_relu_backward",
        [](py::handle dy, py::handle x, py::handle slope, py::handle out, py::handle rt) {
          const char* op = "leaky_relu_backward";
          return act_bwd(op, "x", ActKind::LeakyRelu, fastnn::bind::slope_arg(op, slope), dy, x, out, rt);
        });
  m.def("gelu_forward", [](py::handle x, py::handle approximate, py::handle out, py::handle rt) {
    const char* op = "gelu_forward";
    return act_fwd(op, fastnn::bind::gelu_kind_arg(op, approximate), 0.0f, x, out, rt);
  });
  m.def("gelu_backward",
        [](py::handle dy, py::handle x, py::handle approximate, py::handle out, py::handle rt) {
          const char* op = "gelu_backward";
          return act_bwd(op, "x", fastnn::bind::gelu_kind_arg(op, approximate), 0.0f, dy, x, out, rt);
        });
}

void bind_softmax(py::module_& m) {
  // Cross-entropy rows: fastnn._core.cross_entropy_rows / _backward_rows' arguments and rules;
  // the per-row loss and weight come back as float32 device arrays (float64 on the CPU).
  m.def("cross_entropy_rows", [](py::handle x_obj, py::handle t_obj, py::handle w_obj, int64_t ignore_index,
                                 double smoothing, py::handle rt) {
    using fastnn::cuda::DevArg;
    const char* op = "cross_entropy_forward";
    const DevArg x(op, "logits", x_obj), t(op, "target", t_obj), w(op, "weight", w_obj);
    const fastnn::CrossEntropyArgs a =
        fastnn::cross_entropy_meta(op, x.ref, t.ref, w.ref, ignore_index, smoothing);
    fastnn::cuda::check_targets(op, a, t);
    fastnn::ArrayRef loss, wt;
    py::object lo = fastnn::cuda::dev_out(op, rt, py::none(), {a.N}, {}, &loss);
    py::object wo = fastnn::cuda::dev_out(op, rt, py::none(), {a.N}, {}, &wt);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::cross_entropy_forward(a.N, a.C, a.logits, a.target, a.weight, a.ignore_index, a.smoothing,
                                          loss.ptr<float>(), wt.ptr<float>(), st);
    }
    return py::make_tuple(lo, wo);
  });
  m.def("cross_entropy_backward_rows", [](py::handle x_obj, py::handle t_obj, py::handle w_obj,
                                          int64_t ignore_index, double smoothing, py::handle scale_obj,
                                          py::handle out, py::handle rt) {
    using fastnn::cuda::DevArg;
    const char* op = "cross_entropy_backward";
    const DevArg x(op, "logits", x_obj), t(op, "target", t_obj), w(op, "weight", w_obj),
        scale(op, "scale", scale_obj);
    const fastnn::CrossEntropyArgs a =
        fastnn::cross_entropy_meta(op, x.ref, t.ref, w.ref, ignore_index, smoothing);
    fastnn::cuda::check_targets(op, a, t);
    fastnn::cross_entropy_scale_check(op, a, scale.ref);
    fastnn::ArrayRef dx;
    py::object res = fastnn::cuda::dev_out(op, rt, out, x.ref.shape, {&x.ref, &scale.ref}, &dx);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::cross_entropy_backward(a.N, a.C, a.logits, a.target, a.weight, a.ignore_index,
                                           a.smoothing, scale.ref.ptr<const float>(), dx.ptr<float>(), st);
    }
    return res;
  });
  for (const bool log : {false, true}) {
    m.def(log ? "log_softmax_forward" : "softmax_forward",
          [log](py::handle x_obj, int64_t dim, py::handle out, py::handle rt) {
            const char* op = log ? "log_softmax_forward" : "softmax_forward";
            const fastnn::cuda::DevArg x(op, "x", x_obj);
            const fastnn::SoftmaxShape s = fastnn::softmax_forward_meta(op, x.ref, dim);
            fastnn::ArrayRef y;
            py::object res = fastnn::cuda::dev_out(op, rt, out, x.ref.shape, {&x.ref}, &y);
            void* st = fastnn::cuda::stream_of(rt);
            {
              py::gil_scoped_release nogil;
              fastnn::cuda::softmax_forward(s.outer, s.n, s.inner, log, x.ref.ptr<const float>(),
                                            y.ptr<float>(), st);
            }
            return res;
          });
    m.def(log ? "log_softmax_backward" : "softmax_backward",
          [log](py::handle dy_obj, py::handle y_obj, int64_t dim, py::handle out, py::handle rt) {
            const char* op = log ? "log_softmax_backward" : "softmax_backward";
            const fastnn::cuda::DevArg dy(op, "dy", dy_obj), y(op, "y", y_obj);
            const fastnn::SoftmaxShape s = fastnn::softmax_backward_meta(op, dy.ref, y.ref, dim);
            fastnn::ArrayRef dx;
            py::object res = fastnn::cuda::dev_out(op, rt, out, y.ref.shape, {&dy.ref, &y.ref}, &dx);
            void* st = fastnn::cuda::stream_of(rt);
            {
              py::gil_scoped_release nogil;
              fastnn::cuda::softmax_backward(s.outer, s.n, s.inner, log, dy.ref.ptr<const float>(),
                                             y.ref.ptr<const float>(), dx.ptr<float>(), st);
            }
            return res;
          });
  }
}

void bind_layernorm(py::module_& m) {
  m.def("layer_norm_forward", [](int64_t rows, int64_t n, Ptr x, Ptr weight, Ptr bias, float eps, Ptr y,
                                 Ptr mean, Ptr rstd, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::layer_norm_forward(rows, n, ptr<const float>(x), ptr<const float>(weight),
                                     ptr<const float>(bias), eps, ptr<float>(y), ptr<float>(mean),
                                     ptr<float>(rstd), stream_of(stream));
  });
  m.def("layer_norm_backward", [](int64_t rows, int64_t n, Ptr dy, Ptr x, Ptr mean, Ptr rstd, Ptr weight,
                                  Ptr dx, Ptr dweight, Ptr dbias, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::layer_norm_backward(
        rows, n, ptr<const float>(dy), ptr<const float>(x), ptr<const float>(mean), ptr<const float>(rstd),
        ptr<const float>(weight), ptr<float>(dx), ptr<float>(dweight), ptr<float>(dbias), stream_of(stream));
  });
}

void bind_embedding(py::module_& m) {
  m.def("embedding_forward", [](int64_t t, int64_t d, Ptr weight, Ptr idx, Ptr out, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::embedding_forward(t, d, ptr<const float>(weight), ptr<const int64_t>(idx), ptr<float>(out),
                                    stream_of(stream));
  });
  m.def("embedding_backward",
        [](int64_t v, int64_t t, int64_t d, int64_t padding_idx, Ptr dy, Ptr idx, Ptr dweight, Ptr stream) {
          py::gil_scoped_release nogil;
          fastnn::cuda::embedding_backward(v, t, d, padding_idx, ptr<const float>(dy),
                                           ptr<const int64_t>(idx), ptr<float>(dweight), stream_of(stream));
        });
}

// Pooling: the arguments as fastnn._core's pooling entries take them (options read by
// bind/py_args.h), checked by pool2d's meta functions; the last argument is the runtime.
void bind_pool2d(py::module_& m) {
  using fastnn::bind::bool_arg;
  using fastnn::bind::pool2d_params;
  using fastnn::cuda::dev_out;
  using fastnn::cuda::DevArg;
  m.def("max_pool2d_forward", [](py::handle x_obj, py::handle kernel, py::handle stride, py::handle padding,
                                 py::handle dilation, py::handle ceil, py::handle out, py::handle indices,
                                 py::handle rt) {
    const char* op = "max_pool2d_forward";
    const DevArg x(op, "x", x_obj);
    const auto s =
        fastnn::pool2d_forward_meta(op, x.ref, pool2d_params(op, kernel, stride, padding, dilation, ceil));
    fastnn::ArrayRef y, idx;
    py::object yo = dev_out(op, rt, out, fastnn::pool2d_y_shape(s), {&x.ref}, &y);
    py::object io = dev_out(op, rt, indices, fastnn::pool2d_y_shape(s), {&x.ref, &y}, &idx,
                            fastnn::DType::Int64, "indices");
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::max_pool2d_forward(s, x.ref.ptr<const float>(), y.ptr<float>(), idx.ptr<int64_t>(), st);
    }
    return py::make_tuple(yo, io);
  });
  m.def("max_pool2d_backward", [](py::handle dy_obj, py::handle x_obj, py::handle idx_obj, py::handle kernel,
                                  py::handle stride, py::handle padding, py::handle dilation, py::handle ceil,
                                  py::handle relu, py::handle out, py::handle rt) {
    const char* op = "max_pool2d_backward";
    const DevArg dy(op, "dy", dy_obj), x(op, "x", x_obj), idx(op, "indices", idx_obj);
    if (!idx.ref.present) DevArg(op, "indices", py::int_(0));  // required: None is a TypeError
    const auto s = fastnn::pool2d_backward_meta(op, dy.ref, x.ref, idx.ref,
                                                pool2d_params(op, kernel, stride, padding, dilation, ceil));
    const bool through_relu = bool_arg(op, "relu", relu);
    fastnn::cuda::check_index_range(op, idx, s.H * s.W, "H*W");
    fastnn::ArrayRef dx;
    py::object res = dev_out(op, rt, out, x.ref.shape, {&dy.ref, &idx.ref, &x.ref}, &dx);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::max_pool2d_backward(s, dy.ref.ptr<const float>(), idx.ref.ptr<const int64_t>(),
                                        through_relu ? x.ref.ptr<const float>() : nullptr, dx.ptr<float>(),
                                        st);
    }
    return res;
  });
  m.def("avg_pool2d_forward", [](py::handle x_obj, py::handle kernel, py::handle stride, py::handle padding,
                                 py::handle ceil, py::handle cip_obj, py::handle out, py::handle rt) {
    const char* op = "avg_pool2d_forward";
    const DevArg x(op, "x", x_obj);
    const auto s =
        fastnn::pool2d_forward_meta(op, x.ref, pool2d_params(op, kernel, stride, padding, py::int_(1), ceil));
    const bool cip = bool_arg(op, "count_include_pad", cip_obj);
    fastnn::ArrayRef y;
    py::object res = dev_out(op, rt, out, fastnn::pool2d_y_shape(s), {&x.ref}, &y);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::avg_pool2d_forward(s, cip, x.ref.ptr<const float>(), y.ptr<float>(), st);
    }
    return res;
  });
  m.def("avg_pool2d_backward",
        [](py::handle dy_obj, py::handle x_obj, py::handle kernel, py::handle stride, py::handle padding,
           py::handle ceil, py::handle cip_obj, py::handle out, py::handle rt) {
          const char* op = "avg_pool2d_backward";
          const DevArg dy(op, "dy", dy_obj), x(op, "x", x_obj), none(op, "indices", py::none());
          const auto s = fastnn::pool2d_backward_meta(
              op, dy.ref, x.ref, none.ref, pool2d_params(op, kernel, stride, padding, py::int_(1), ceil));
          const bool cip = bool_arg(op, "count_include_pad", cip_obj);
          fastnn::ArrayRef dx;
          py::object res = dev_out(op, rt, out, x.ref.shape, {&dy.ref, &x.ref}, &dx);
          void* st = fastnn::cuda::stream_of(rt);
          {
            py::gil_scoped_release nogil;
            fastnn::cuda::avg_pool2d_backward(s, cip, dy.ref.ptr<const float>(), dx.ptr<float>(), st);
          }
          return res;
        });
  m.def("global_avg_pool2d_forward", [](py::handle x_obj, py::handle out, py::handle rt) {
    const char* op = "global_avg_pool2d_forward";
    const DevArg x(op, "x", x_obj), none(op, "dy", py::none());
    const auto s = fastnn::global_avg_pool2d_meta(op, x.ref, none.ref);
    fastnn::ArrayRef y;
    py::object res = dev_out(op, rt, out, fastnn::pool2d_y_shape(s), {&x.ref}, &y);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::global_avg_pool2d_forward(s.N * s.C, s.H * s.W, x.ref.ptr<const float>(), y.ptr<float>(),
                                              st);
    }
    return res;
  });
  m.def("global_avg_pool2d_backward", [](py::handle dy_obj, py::handle x_obj, py::handle out, py::handle rt) {
    const char* op = "global_avg_pool2d_backward";
    const DevArg dy(op, "dy", dy_obj), x(op, "x", x_obj);
    const auto s = fastnn::global_avg_pool2d_meta(op, x.ref, dy.ref);
    fastnn::ArrayRef dx;
    py::object res = dev_out(op, rt, out, x.ref.shape, {&dy.ref, &x.ref}, &dx);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::global_avg_pool2d_backward(s.N * s.C, s.H * s.W, dy.ref.ptr<const float>(),
                                               dx.ptr<float>(), st);
    }
    return res;
  });
}

// conv2d: the arguments as fastnn._core.conv2d_* takes them, checked by conv2d's meta functions
// (csrc/ops/conv2d_meta.cpp); the last argument is fastnn.cuda's runtime (allocation, stream).
using Pair = std::array<int64_t, 2>;
using Quad = std::array<int64_t, 4>;

fastnn::Conv2dParams conv2d_params(Pair stride, Quad pad, Pair dil, int64_t groups) {
  fastnn::Conv2dParams p;
  p.stride = stride, p.pad = pad, p.dilation = dil, p.groups = groups;
  return p;
}

void bind_conv2d(py::module_& m) {
  using fastnn::cuda::dev_out;
  using fastnn::cuda::DevArg;
  constexpr const char* op = "conv2d";
  m.def("conv2d_forward", [](py::handle x_obj, py::handle w_obj, py::handle bias_obj, Pair stride, Quad pad,
                             Pair dil, int64_t groups, py::handle activation, py::handle out, py::handle rt) {
    const DevArg x(op, "input", x_obj), w(op, "weight", w_obj), bias(op, "bias", bias_obj);
    std::string act_name;
    if (!activation.is_none()) act_name = py::str(activation);
    fastnn::Activation act;
    const auto s =
        fastnn::conv2d_forward_meta(x.ref, w.ref, bias.ref, conv2d_params(stride, pad, dil, groups),
                                    activation.is_none() ? nullptr : &act_name, &act);
    fastnn::ArrayRef y;
    py::object res = dev_out(op, rt, out, fastnn::conv2d_y_shape(s), {&x.ref, &w.ref, &bias.ref}, &y);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::conv2d_forward(s, x.ref.ptr<const float>(), w.ref.ptr<const float>(),
                                   bias.ref.ptr<const float>(), act == fastnn::Activation::Relu ? 1 : 0,
                                   y.ptr<float>(), st);
    }
    return res;
  });
  m.def("conv2d_backward_data",
        [](py::handle dy_obj, py::handle w_obj, std::vector<int64_t> input_shape, Pair stride, Quad pad,
           Pair dil, int64_t groups, py::handle out, py::handle rt) {
          const DevArg dy(op, "grad_output", dy_obj), w(op, "weight", w_obj);
          const auto s = fastnn::conv2d_backward_data_meta(dy.ref, w.ref, input_shape,
                                                           conv2d_params(stride, pad, dil, groups));
          fastnn::ArrayRef dx;
          py::object res = dev_out(op, rt, out, input_shape, {&dy.ref, &w.ref}, &dx);
          void* st = fastnn::cuda::stream_of(rt);
          {
            py::gil_scoped_release nogil;
            fastnn::cuda::conv2d_backward_data(s, dy.ref.ptr<const float>(), w.ref.ptr<const float>(),
                                               dx.ptr<float>(), st);
          }
          return res;
        });
  m.def("conv2d_backward_weight", [](py::handle dy_obj, py::handle x_obj, std::vector<int64_t> weight_shape,
                                     Pair stride, Quad pad, Pair dil, int64_t groups, py::handle out,
                                     py::handle rt) {
    const DevArg dy(op, "grad_output", dy_obj), x(op, "input", x_obj);
    const auto s = fastnn::conv2d_backward_weight_meta(dy.ref, x.ref, weight_shape,
                                                       conv2d_params(stride, pad, dil, groups));
    fastnn::ArrayRef dw;
    py::object res = dev_out(op, rt, out, weight_shape, {&dy.ref, &x.ref}, &dw);
    float* work = nullptr;  // the split reduction's partial sums
    py::object keep = fastnn::cuda::dev_scratch(rt, fastnn::cuda::conv2d_backward_weight_workspace(s), &work);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::conv2d_backward_weight(s, dy.ref.ptr<const float>(), x.ref.ptr<const float>(),
                                           dw.ptr<float>(), work, st);
    }
    return res;
  });
  // The floats of backward_weight's partial sums for these shapes (0: it does not split).
  m.def("conv2d_backward_weight_workspace",
        [](std::vector<int64_t> input_shape, std::vector<int64_t> weight_shape, Pair stride, Quad pad,
           Pair dil, int64_t groups) {
          return fastnn::cuda::conv2d_backward_weight_workspace(
              fastnn::conv2d_shape(input_shape, weight_shape, conv2d_params(stride, pad, dil, groups)));
        });
  m.def("conv2d_backward_bias", [](py::handle dy_obj, py::handle out, py::handle rt) {
    const DevArg dy(op, "grad_output", dy_obj);
    const auto s = fastnn::conv2d_backward_bias_meta(dy.ref);
    fastnn::ArrayRef db;
    py::object res = dev_out(op, rt, out, {s.OC}, {&dy.ref}, &db);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::conv2d_backward_bias(s.B, s.OC, s.H * s.W, dy.ref.ptr<const float>(), db.ptr<float>(),
                                         st);
    }
    return res;
  });
}

void bind_rnn(py::module_& m) {
  m.def("rnn_scratch_floats", [](int cell, int64_t T, int64_t B, int64_t I, int64_t H, bool backward) {
    return fastnn::cuda::rnn_scratch_floats(rnn_shape(cell, false, T, B, I, H), backward);
  });
  m.def("rnn_forward",
        [](int cell, bool reverse, int64_t T, int64_t B, int64_t I, int64_t H, Ptr x, Ptr h0, Ptr c0,
           Ptr w_ih, Ptr w_hh, Ptr b_ih, Ptr b_hh, Ptr y, Ptr h_n, Ptr c_n, Ptr ws, Ptr scratch, Ptr stream) {
          const fastnn::RnnShape s = rnn_shape(cell, reverse, T, B, I, H);
          py::gil_scoped_release nogil;
          fastnn::cuda::rnn_forward(s, ptr<const float>(x), ptr<const float>(h0), ptr<const float>(c0),
                                    ptr<const float>(w_ih), ptr<const float>(w_hh), ptr<const float>(b_ih),
                                    ptr<const float>(b_hh), ptr<float>(y), ptr<float>(h_n), ptr<float>(c_n),
                                    ptr<float>(ws), ptr<float>(scratch), stream_of(stream));
        });
  m.def("rnn_backward",
        [](int cell, bool reverse, int64_t T, int64_t B, int64_t I, int64_t H, Ptr dy, Ptr dh_n, Ptr dc_n,
           Ptr x, Ptr h0, Ptr c0, Ptr w_ih, Ptr w_hh, Ptr y, Ptr ws, Ptr dx, Ptr dh0, Ptr dc0, Ptr dw_ih,
           Ptr dw_hh, Ptr db_ih, Ptr db_hh, Ptr scratch, Ptr stream) {
          const fastnn::RnnShape s = rnn_shape(cell, reverse, T, B, I, H);
          py::gil_scoped_release nogil;
          fastnn::cuda::rnn_backward(s, ptr<const float>(dy), ptr<const float>(dh_n), ptr<const float>(dc_n),
                                     ptr<const float>(x), ptr<const float>(h0), ptr<const float>(c0),
                                     ptr<const float>(w_ih), ptr<const float>(w_hh), ptr<const float>(y),
                                     ptr<const float>(ws), ptr<float>(dx), ptr<float>(dh0), ptr<float>(dc0),
                                     ptr<float>(dw_ih), ptr<float>(dw_hh), ptr<float>(db_ih),
                                     ptr<float>(db_hh), ptr<float>(scratch), stream_of(stream));
        });
  // Attention (attention_args above): out (B, NH, L, DV), lse (B, NH, L); the backward's delta is
  // device scratch of B * NH * L floats (fastnn.cuda allocates it).
}

void bind_attention(py::module_& m) {
  m.def("scaled_dot_product_attention_forward",
        [](py::tuple dims, Ptr q, Ptr k, Ptr v, int mask_kind, Ptr mask, py::tuple mask_strides, bool causal,
           float scale, Ptr out, Ptr lse, Ptr stream) {
          const auto a = attention_args(dims, q, k, v, mask_kind, mask, mask_strides, causal, scale);
          py::gil_scoped_release nogil;
          fastnn::cuda::attention_forward(a, ptr<float>(out), ptr<float>(lse), stream_of(stream));
        });
  m.def("scaled_dot_product_attention_backward",
        [](py::tuple dims, Ptr q, Ptr k, Ptr v, int mask_kind, Ptr mask, py::tuple mask_strides, bool causal,
           float scale, Ptr dout, Ptr out, Ptr lse, Ptr dq, Ptr dk, Ptr dv, Ptr delta, Ptr stream) {
          const auto a = attention_args(dims, q, k, v, mask_kind, mask, mask_strides, causal, scale);
          py::gil_scoped_release nogil;
          fastnn::cuda::attention_backward(a, ptr<const float>(dout), ptr<const float>(out),
                                           ptr<const float>(lse), ptr<float>(dq), ptr<float>(dk),
                                           ptr<float>(dv), ptr<float>(delta), stream_of(stream));
        });
}

// The optimizer updates and grad_norm: fastnn._core's arguments (lists of CUDA arrays), optim's
// meta functions; the last argument is the runtime. One launch per tensor.
void bind_optim(py::module_& m) {
  using fastnn::cuda::DevArg;
  using List = fastnn::bind::ArrayList<DevArg>;
  m.def("sgd_step", [](py::handle params, py::handle grads, py::handle bufs, double lr, double momentum,
                       double dampening, bool nesterov, double weight_decay, bool maximize, bool first_step,
                       py::handle rt) {
    const char* op = "sgd_step";
    fastnn::SgdArgs a;
    a.lr = lr, a.momentum = momentum, a.dampening = dampening, a.nesterov = nesterov;
    a.weight_decay = weight_decay, a.maximize = maximize, a.first_step = first_step;
    const List ps(op, "params", params), gs(op, "grads", grads),
        bs(op, "momentum_buffers", fastnn::sgd_uses_buffers(a) ? bufs : py::none(), /*optional=*/true);
    const std::vector<fastnn::OptimTensor> ts = fastnn::sgd_step_meta(a, *ps.refs(), *gs.refs(), bs.refs());
    if (ts.empty()) return;
    void* st = fastnn::cuda::stream_of(rt);
    py::gil_scoped_release nogil;
    for (const fastnn::OptimTensor& t : ts) fastnn::cuda::sgd_step(a, t.p, t.g, t.a, t.n, st);
  });
  m.def("adam_step", [](py::handle params, py::handle grads, py::handle m_, py::handle v, int64_t step,
                        double lr, double beta1, double beta2, double eps, double weight_decay, bool amsgrad,
                        py::handle vmax, bool decoupled, bool maximize, py::handle rt) {
    const char* op = "adam_step";
    fastnn::AdamArgs a;
    a.lr = lr, a.beta1 = beta1, a.beta2 = beta2, a.eps = eps, a.weight_decay = weight_decay;
    a.amsgrad = amsgrad, a.decoupled = decoupled, a.maximize = maximize, a.step = step;
    const List ps(op, "params", params), gs(op, "grads", grads), ms(op, "exp_avgs", m_, true),
        vs(op, "exp_avg_sqs", v, true), vmaxs(op, "max_exp_avg_sqs", amsgrad ? vmax : py::none(), true);
    const std::vector<fastnn::OptimTensor> ts =
        fastnn::adam_step_meta(a, *ps.refs(), *gs.refs(), ms.refs(), vs.refs(), vmaxs.refs());
    if (ts.empty()) return;
    void* st = fastnn::cuda::stream_of(rt);
    py::gil_scoped_release nogil;
    for (const fastnn::OptimTensor& t : ts) fastnn::cuda::adam_step(a, t.p, t.g, t.a, t.b, t.c, t.n, st);
  });
  // grad_norm: a float, read back from the device (a blocking copy on the stream, so the call
  // waits for the work queued on it). The float64 scratch holds the partial sums, then the norm.
  m.def("grad_norm", [](py::handle arrays, double norm_type, py::handle rt) {
    const char* op = "grad_norm";
    const List xs(op, "arrays", arrays);
    const fastnn::GradNormArgs g = fastnn::grad_norm_meta(norm_type, *xs.refs());
    if (g.xs.empty()) return 0.0;
    int64_t slots = 0;
    for (int64_t n : g.ns) slots += fastnn::cuda::grad_norm_partials(n);
    double* part = nullptr;
    const py::object buf = fastnn::cuda::dev_scratch(rt, slots + 1, &part);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::grad_norm(static_cast<int64_t>(g.xs.size()), g.xs.data(), g.ns.data(), g.p, part,
                              part + slots, st);
    }
    const py::object host = buf[py::slice(slots, slots + 1, 1)].attr("get")();
    return host[py::int_(0)].cast<double>();
  });
}

// Batch norm: fastnn._core's arguments, batch norm's meta functions; the last argument is the
// runtime.
fastnn::cuda::DevArg dev_required(const char* op, const char* name, py::handle obj) {
  fastnn::cuda::DevArg a(op, name, obj);
  if (!a.ref.present) fastnn::cuda::DevArg::refuse(op, name, obj);
  return a;
}

void bind_batchnorm(py::module_& m) {
  using fastnn::cuda::dev_out;
  using fastnn::cuda::DevArg;
  m.def("batch_norm2d_forward", [](py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle rm_obj,
                                   py::handle rv_obj, bool training, double momentum, double eps,
                                   py::handle out_obj, py::handle rt) {
    const char* op = "batch_norm2d_forward";
    const DevArg x = dev_required(op, "x", x_obj);
    const DevArg w(op, "weight", w_obj), b(op, "bias", b_obj), rm(op, "running_mean", rm_obj),
        rv(op, "running_var", rv_obj), out(op, "out", out_obj);
    const fastnn::BatchNormArgs a = fastnn::batch_norm2d_forward_meta(x.ref, w.ref, b.ref, rm.ref, rv.ref,
                                                                      out.ref, training, momentum, eps);
    fastnn::ArrayRef y = out.ref, sm, si;
    py::object yo = out.ref.present ? out.obj : dev_out(op, rt, py::none(), x.ref.shape, {}, &y);
    py::object smo = dev_out(op, rt, py::none(), {a.c}, {}, &sm);
    py::object sio = dev_out(op, rt, py::none(), {a.c}, {}, &si);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::batch_norm2d_forward(a, x.ref.ptr<const float>(), w.ref.ptr<const float>(),
                                         b.ref.ptr<const float>(), rm.ref.ptr<float>(), rv.ref.ptr<float>(),
                                         y.ptr<float>(), sm.ptr<float>(), si.ptr<float>(), st);
    }
    return py::make_tuple(yo, smo, sio);
  });
  m.def(
      "batch_norm2d_backward", [](py::handle dy_obj, py::handle x_obj, py::handle w_obj, py::handle mean_obj,
                                  py::handle invstd_obj, bool training, py::handle out_obj, py::handle rt) {
        const char* op = "batch_norm2d_backward";
        const DevArg dy = dev_required(op, "dy", dy_obj), x = dev_required(op, "x", x_obj);
        const DevArg w(op, "weight", w_obj), mean(op, "save_mean", mean_obj),
            invstd(op, "save_invstd", invstd_obj), out(op, "out", out_obj);
        const fastnn::BatchNormArgs a =
            fastnn::batch_norm2d_backward_meta(dy.ref, x.ref, w.ref, mean.ref, invstd.ref, out.ref, training);
        fastnn::ArrayRef dx = out.ref, dw, db;
        py::object dxo = out.ref.present ? out.obj : dev_out(op, rt, py::none(), x.ref.shape, {}, &dx);
        py::object dwo = py::none(), dbo = py::none();
        if (w.ref.present) {
          dwo = dev_out(op, rt, py::none(), {a.c}, {}, &dw);
          dbo = dev_out(op, rt, py::none(), {a.c}, {}, &db);
        }
        void* st = fastnn::cuda::stream_of(rt);
        {
          py::gil_scoped_release nogil;
          fastnn::cuda::batch_norm2d_backward(a, dy.ref.ptr<const float>(), x.ref.ptr<const float>(),
                                              w.ref.ptr<const float>(), mean.ref.ptr<const float>(),
                                              invstd.ref.ptr<const float>(), dx.ptr<float>(), dw.ptr<float>(),
                                              db.ptr<float>(), st);
        }
        return py::make_tuple(dxo, dwo, dbo);
      });
}

}  // namespace

#if defined(FASTNN_CUDA_EMULATE)
void fastnn_cuda_bind_device(py::module_& m) {
#else
PYBIND11_MODULE(_cuda, m) {
#endif
  m.doc() = "fastnn's CUDA kernels on device pointers (use fastnn.cuda / fastnn.ops)";
  m.attr("__version__") = FASTNN_VERSION;
  m.attr("architectures") = FASTNN_CUDA_ARCHITECTURES;
  m.attr("compiler") = FASTNN_CUDA_COMPILER;
  fastnn::bind::register_arg_errors();
  m.def("device_count", &device_count, "CUDA devices visible (0 without a driver)");
  m.def("driver_version", &driver_version, "the driver's CUDA version (e.g. 13000), 0 without one");
  m.def("runtime_version", &runtime_version, "the CUDA runtime linked in (e.g. 13000)");
  bind_gemm(m);
  bind_act(m);
  bind_softmax(m);
  bind_layernorm(m);
  bind_embedding(m);
  bind_pool2d(m);
  bind_conv2d(m);
  bind_rnn(m);
  bind_attention(m);
  bind_optim(m);
  bind_batchnorm(m);
}
