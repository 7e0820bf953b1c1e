// fastnn._cuda: the CUDA kernels on CUDA arrays. Every entry takes fastnn._core's arguments
// (without isa) plus fastnn.cuda's runtime object (last: fastnn.cuda.run), reads the arrays
// through __cuda_array_interface__ (cuda/args.h), applies the op's rules (its meta function,
// shared with the CPU binding) and allocates through the runtime. The CUDA runtime is linked
// statically: the module imports without a driver, and device_count() is then 0.
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

#include <algorithm>
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
#include "ops/embedding.h"
#include "ops/gemm.h"
#include "ops/layernorm.h"
#include "ops/optim.h"
#include "ops/pool2d.h"
#include "ops/rnn.h"
#include "ops/softmax.h"

namespace py = pybind11;

namespace {

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
  m.def("gemm", [](py::handle a_obj, py::handle b_obj, py::handle c_obj, py::handle out_obj, bool trans_a,
                   bool trans_b, float alpha, float beta, py::handle bias_obj, py::handle activation,
                   py::handle rt) {
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
    fastnn::ArrayRef out = given.ref;  // a given out: gemm_meta checked it
    py::object res =
        given.ref.present ? given.obj : fastnn::cuda::dev_out(op, rt, py::none(), call.out_shape, {}, &out);
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
    py::object res =
        fastnn::cuda::dev_out(op, rt, out, x.ref.shape, {&x.ref, &t.ref, &w.ref, &scale.ref}, &dx);
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

// Layer norm: fastnn._core's arguments, layer norm's meta functions; the last argument is the
// runtime.
void bind_layernorm(py::module_& m) {
  using fastnn::cuda::DevArg;
  m.def("layer_norm_forward", [](py::handle x_obj, py::handle ns_obj, py::handle w_obj, py::handle b_obj,
                                 double eps, py::handle rt) {
    const char* op = "layer_norm_forward";
    const DevArg x(op, "x", x_obj);
    const fastnn::Shape ns = fastnn::bind::int_list_arg(op, "normalized_shape", ns_obj);
    const DevArg w(op, "weight", w_obj), b(op, "bias", b_obj);
    fastnn::Shape stat_shape;
    const fastnn::LayerNormArgs a =
        fastnn::layer_norm_forward_meta(op, x.ref, ns, w.ref, b.ref, eps, &stat_shape);
    fastnn::ArrayRef y, mean, rstd;
    py::object yo = fastnn::cuda::dev_out(op, rt, py::none(), x.ref.shape, {}, &y);
    py::object mo = fastnn::cuda::dev_out(op, rt, py::none(), stat_shape, {}, &mean);
    py::object ro = fastnn::cuda::dev_out(op, rt, py::none(), stat_shape, {}, &rstd);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::layer_norm_forward(a.m, a.n, x.ref.ptr<const float>(), a.weight, a.bias, a.eps,
                                       y.ptr<float>(), mean.ptr<float>(), rstd.ptr<float>(), st);
    }
    return py::make_tuple(yo, mo, ro);
  });
  m.def("layer_norm_backward", [](py::handle dy_obj, py::handle x_obj, py::handle mean_obj,
                                  py::handle rstd_obj, py::handle w_obj, py::handle rt) {
    const char* op = "layer_norm_backward";
    const DevArg dy(op, "dy", dy_obj), x(op, "x", x_obj), mean(op, "mean", mean_obj),
        rstd(op, "rstd", rstd_obj), w(op, "weight", w_obj);
    for (const DevArg* r : {&dy, &x, &mean, &rstd}) {
      if (!r->ref.present) DevArg(op, r->ref.name, py::int_(0));  // required: None is a TypeError
    }
    fastnn::Shape ns;
    const fastnn::LayerNormArgs a =
        fastnn::layer_norm_backward_meta(op, dy.ref, x.ref, mean.ref, rstd.ref, w.ref, &ns);
    fastnn::ArrayRef dx, dw, db;
    py::object dxo = fastnn::cuda::dev_out(op, rt, py::none(), x.ref.shape, {}, &dx);
    py::object dwo = py::none(), dbo = py::none();
    if (a.weight) {
      dwo = fastnn::cuda::dev_out(op, rt, py::none(), ns, {}, &dw);
      dbo = fastnn::cuda::dev_out(op, rt, py::none(), ns, {}, &db);
    }
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::layer_norm_backward(a.m, a.n, dy.ref.ptr<const float>(), x.ref.ptr<const float>(),
                                        mean.ref.ptr<const float>(), rstd.ref.ptr<const float>(), a.weight,
                                        dx.ptr<float>(), a.weight ? dw.ptr<float>() : nullptr,
                                        a.weight ? db.ptr<float>() : nullptr, st);
    }
    return py::make_tuple(dxo, dwo, dbo);
  });
}

// Embedding: fastnn._core's arguments, the embedding's meta functions, the index range checked
// on the device; the last argument is the runtime.
void check_embedding_indices(const char* op, const fastnn::cuda::DevArg& idx, int64_t v) {
  if (idx.ref.numel() == 0) return;
  const py::object flat = idx.obj.attr("ravel")();
  const py::object bad = flat.attr("__lt__")(0).attr("__or__")(flat.attr("__ge__")(v));
  if (!py::bool_(bad.attr("any")())) return;
  const int64_t pos = py::int_(bad.attr("argmax")()).cast<int64_t>();
  fastnn::embedding_bad_index(op, v, py::int_(flat[py::int_(pos)]).cast<int64_t>(), pos);
}

void bind_embedding(py::module_& m) {
  using fastnn::cuda::DevArg;
  m.def("embedding_forward", [](py::handle w_obj, py::handle idx_obj, py::handle padding_obj, py::handle out,
                                py::handle rt) {
    const char* op = "embedding_forward";
    const DevArg w(op, "weight", w_obj), idx(op, "indices", idx_obj);
    for (const DevArg* r : {&w, &idx}) {
      if (!r->ref.present) DevArg(op, r->ref.name, py::int_(0));  // required: None is a TypeError
    }
    bool has_padding;
    const int64_t padding = fastnn::bind::optional_int_arg(op, "padding_idx", padding_obj, &has_padding);
    fastnn::Shape shape;
    const fastnn::EmbeddingArgs a =
        fastnn::embedding_forward_meta(op, w.ref, idx.ref, has_padding, padding, &shape);
    check_embedding_indices(op, idx, a.v);
    fastnn::ArrayRef y;
    py::object res = fastnn::cuda::dev_out(op, rt, out, shape, {&w.ref, &idx.ref}, &y);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::embedding_forward(a.t, a.d, w.ref.ptr<const float>(), idx.ref.ptr<const int64_t>(),
                                      y.ptr<float>(), st);
    }
    return res;
  });
  m.def("embedding_backward", [](py::handle dy_obj, py::handle idx_obj, int64_t num_embeddings,
                                 py::handle padding_obj, py::handle out, py::handle rt) {
    const char* op = "embedding_backward";
    const DevArg dy(op, "dy", dy_obj), idx(op, "indices", idx_obj);
    for (const DevArg* r : {&dy, &idx}) {
      if (!r->ref.present) DevArg(op, r->ref.name, py::int_(0));
    }
    bool has_padding;
    const int64_t padding = fastnn::bind::optional_int_arg(op, "padding_idx", padding_obj, &has_padding);
    const fastnn::EmbeddingArgs a =
        fastnn::embedding_backward_meta(op, dy.ref, idx.ref, num_embeddings, has_padding, padding);
    check_embedding_indices(op, idx, a.v);
    fastnn::ArrayRef dw;
    py::object res = fastnn::cuda::dev_out(op, rt, out, {a.v, a.d}, {&dy.ref, &idx.ref}, &dw);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::embedding_backward(a.v, a.t, a.d, a.padding_idx, dy.ref.ptr<const float>(),
                                       idx.ref.ptr<const int64_t>(), dw.ptr<float>(), st);
    }
    return res;
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
    if (!dy.ref.present) DevArg::refuse(op, "dy", dy_obj);  // required (as the CPU binding's)
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
  m.def("conv2d_forward", [](py::handle x_obj, py::handle w_obj, py::handle bias_obj, Pair stride, Quad pad,
                             Pair dil, int64_t groups, py::handle activation, py::handle out, py::handle rt) {
    constexpr const char* op = "conv2d_forward";
    const DevArg x(op, "x", x_obj), w(op, "w", w_obj), bias(op, "bias", bias_obj);
    std::string act_name;
    if (!activation.is_none()) act_name = py::str(activation);
    fastnn::Activation act;
    const auto s =
        fastnn::conv2d_forward_meta(op, x.ref, w.ref, bias.ref, conv2d_params(stride, pad, dil, groups),
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
        [](py::handle dy_obj, py::handle w_obj, const std::vector<int64_t>& input_shape_arg, Pair stride,
           Quad pad, Pair dil, int64_t groups, py::handle out, py::handle rt) {
          constexpr const char* op = "conv2d_backward_data";
          const fastnn::Shape input_shape(input_shape_arg.begin(), input_shape_arg.end());
          const DevArg dy(op, "dy", dy_obj), w(op, "w", w_obj);
          const auto s = fastnn::conv2d_backward_data_meta(op, dy.ref, w.ref, input_shape,
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
  m.def("conv2d_backward_weight", [](py::handle dy_obj, py::handle x_obj,
                                     const std::vector<int64_t>& weight_shape_arg, Pair stride, Quad pad,
                                     Pair dil, int64_t groups, py::handle out, py::handle rt) {
    constexpr const char* op = "conv2d_backward_weight";
    const fastnn::Shape weight_shape(weight_shape_arg.begin(), weight_shape_arg.end());
    const DevArg dy(op, "dy", dy_obj), x(op, "x", x_obj);
    const auto s = fastnn::conv2d_backward_weight_meta(op, dy.ref, x.ref, weight_shape,
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
  m.def("conv2d_backward_weight_workspace", [](std::vector<int64_t> input_shape,
                                               std::vector<int64_t> weight_shape, Pair stride, Quad pad,
                                               Pair dil, int64_t groups) {
    return fastnn::cuda::conv2d_backward_weight_workspace(fastnn::conv2d_shape(
        "conv2d_backward_weight_workspace", fastnn::Shape(input_shape.begin(), input_shape.end()),
        fastnn::Shape(weight_shape.begin(), weight_shape.end()), conv2d_params(stride, pad, dil, groups)));
  });
  m.def("conv2d_backward_bias", [](py::handle dy_obj, py::handle out, py::handle rt) {
    constexpr const char* op = "conv2d_backward_bias";
    const DevArg dy(op, "dy", dy_obj);
    const auto s = fastnn::conv2d_backward_bias_meta(op, dy.ref);
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

// The recurrent layers: the arguments as fastnn._core's lstm/gru/rnn_forward and _backward take
// them, checked by rnn's meta functions (csrc/ops/rnn_meta.cpp); the last argument is the
// runtime. Every output is new; one scratch array (rnn_scratch_floats) serves the kernels'
// intermediates and is dropped when the call returns (CuPy reuses its memory only in stream
// order).
using fastnn::RnnCell;

py::tuple rnn_forward_entry(RnnCell base, const char* op, py::handle x_obj, py::handle h0_obj,
                            py::handle c0_obj, py::handle w_ih_obj, py::handle w_hh_obj, py::handle b_ih_obj,
                            py::handle b_hh_obj, const std::string& nonlinearity, bool reverse,
                            py::handle rt) {
  using fastnn::cuda::DevArg;
  const DevArg x(op, "x", x_obj), h0(op, "h0", h0_obj), c0(op, "c0", c0_obj), w_ih(op, "w_ih", w_ih_obj),
      w_hh(op, "w_hh", w_hh_obj), b_ih(op, "b_ih", b_ih_obj), b_hh(op, "b_hh", b_hh_obj);
  const fastnn::RnnShape s = fastnn::rnn_forward_meta(op, base, nonlinearity, reverse, x.ref, h0.ref, c0.ref,
                                                      w_ih.ref, w_hh.ref, b_ih.ref, b_hh.ref);
  const bool lstm = s.cell == RnnCell::Lstm;
  auto make = [&](const fastnn::Shape& shape, fastnn::ArrayRef* ref) {
    return fastnn::cuda::dev_out(op, rt, py::none(), shape, {}, ref);
  };
  fastnn::ArrayRef y, h_n, c_n, ws;
  py::object yo = make({s.T, s.B, s.H}, &y), hno = make({s.B, s.H}, &h_n);
  py::object cno = lstm ? make({s.B, s.H}, &c_n) : py::none();
  py::object wso = make({fastnn::rnn_ws_size(s)}, &ws);
  float* scratch = nullptr;
  py::object keep = fastnn::cuda::dev_scratch(
      rt, std::max<int64_t>(1, fastnn::cuda::rnn_scratch_floats(s, false)), &scratch);
  void* st = fastnn::cuda::stream_of(rt);
  {
    py::gil_scoped_release nogil;
    fastnn::cuda::rnn_forward(s, x.ref.ptr<const float>(), h0.ref.ptr<const float>(),
                              c0.ref.ptr<const float>(), w_ih.ref.ptr<const float>(),
                              w_hh.ref.ptr<const float>(), b_ih.ref.ptr<const float>(),
                              b_hh.ref.ptr<const float>(), y.ptr<float>(), h_n.ptr<float>(), c_n.ptr<float>(),
                              ws.ptr<float>(), scratch, st);
  }
  if (lstm) return py::make_tuple(yo, hno, cno, wso);
  return py::make_tuple(yo, hno, wso);
}

py::tuple rnn_backward_entry(RnnCell base, const char* op, py::handle dy_obj, py::handle dh_n_obj,
                             py::handle dc_n_obj, py::handle x_obj, py::handle h0_obj, py::handle c0_obj,
                             py::handle w_ih_obj, py::handle w_hh_obj, py::handle y_obj, py::handle ws_obj,
                             const std::string& nonlinearity, bool reverse, py::handle rt) {
  using fastnn::cuda::DevArg;
  const DevArg dy(op, "dy", dy_obj), dh_n(op, "dh_n", dh_n_obj), dc_n(op, "dc_n", dc_n_obj),
      x(op, "x", x_obj), h0(op, "h0", h0_obj), c0(op, "c0", c0_obj), w_ih(op, "w_ih", w_ih_obj),
      w_hh(op, "w_hh", w_hh_obj), y(op, "y", y_obj), ws(op, "ws", ws_obj);
  const fastnn::RnnShape s =
      fastnn::rnn_backward_meta(op, base, nonlinearity, reverse, dy.ref, dh_n.ref, dc_n.ref, x.ref, h0.ref,
                                c0.ref, w_ih.ref, w_hh.ref, y.ref, ws.ref);
  const int64_t T = s.T, B = s.B, I = s.I, H = s.H, GH = s.gates() * H;
  const bool lstm = s.cell == RnnCell::Lstm;
  auto make = [&](const fastnn::Shape& shape, fastnn::ArrayRef* ref) {
    return fastnn::cuda::dev_out(op, rt, py::none(), shape, {}, ref);
  };
  fastnn::ArrayRef dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh;
  py::object dxo = make({T, B, I}, &dx), dh0o = make({B, H}, &dh0);
  py::object dc0o = lstm ? make({B, H}, &dc0) : py::none();
  py::object dwio = make({GH, I}, &dw_ih), dwho = make({GH, H}, &dw_hh), dbio = make({GH}, &db_ih),
             dbho = make({GH}, &db_hh);
  float* scratch = nullptr;
  py::object keep = fastnn::cuda::dev_scratch(
      rt, std::max<int64_t>(1, fastnn::cuda::rnn_scratch_floats(s, true)), &scratch);
  void* st = fastnn::cuda::stream_of(rt);
  {
    py::gil_scoped_release nogil;
    fastnn::cuda::rnn_backward(
        s, dy.ref.ptr<const float>(), dh_n.ref.ptr<const float>(), dc_n.ref.ptr<const float>(),
        x.ref.ptr<const float>(), h0.ref.ptr<const float>(), c0.ref.ptr<const float>(),
        w_ih.ref.ptr<const float>(), w_hh.ref.ptr<const float>(), y.ref.ptr<const float>(),
        ws.ref.ptr<const float>(), dx.ptr<float>(), dh0.ptr<float>(), dc0.ptr<float>(), dw_ih.ptr<float>(),
        dw_hh.ptr<float>(), db_ih.ptr<float>(), db_hh.ptr<float>(), scratch, st);
  }
  if (lstm) return py::make_tuple(dxo, dh0o, dc0o, dwio, dwho, dbio, dbho);
  return py::make_tuple(dxo, dh0o, dwio, dwho, dbio, dbho);
}

void bind_rnn(py::module_& m) {
  m.def("lstm_forward", [](py::handle x, py::handle h0, py::handle c0, py::handle w_ih, py::handle w_hh,
                           py::handle b_ih, py::handle b_hh, bool reverse, py::handle rt) {
    return rnn_forward_entry(RnnCell::Lstm, "lstm_forward", x, h0, c0, w_ih, w_hh, b_ih, b_hh, "", reverse,
                             rt);
  });
  m.def("lstm_backward",
        [](py::handle dy, py::handle dh_n, py::handle dc_n, py::handle x, py::handle h0, py::handle c0,
           py::handle w_ih, py::handle w_hh, py::handle y, py::handle ws, bool reverse, py::handle rt) {
          return rnn_backward_entry(RnnCell::Lstm, "lstm_backward", dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, y,
                                    ws, "", reverse, rt);
        });
  m.def("gru_forward", [](py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh, py::handle b_ih,
                          py::handle b_hh, bool reverse, py::handle rt) {
    return rnn_forward_entry(RnnCell::Gru, "gru_forward", x, h0, py::none(), w_ih, w_hh, b_ih, b_hh, "",
                             reverse, rt);
  });
  m.def("gru_backward", [](py::handle dy, py::handle dh_n, py::handle x, py::handle h0, py::handle w_ih,
                           py::handle w_hh, py::handle y, py::handle ws, bool reverse, py::handle rt) {
    return rnn_backward_entry(RnnCell::Gru, "gru_backward", dy, dh_n, py::none(), x, h0, py::none(), w_ih,
                              w_hh, y, ws, "", reverse, rt);
  });
  m.def("rnn_forward", [](py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh, py::handle b_ih,
                          py::handle b_hh, const std::string& nonlinearity, bool reverse, py::handle rt) {
    return rnn_forward_entry(RnnCell::RnnTanh, "rnn_forward", x, h0, py::none(), w_ih, w_hh, b_ih, b_hh,
                             nonlinearity, reverse, rt);
  });
  m.def("rnn_backward",
        [](py::handle dy, py::handle dh_n, py::handle x, py::handle h0, py::handle w_ih, py::handle w_hh,
           py::handle y, py::handle ws, const std::string& nonlinearity, bool reverse, py::handle rt) {
          return rnn_backward_entry(RnnCell::RnnTanh, "rnn_backward", dy, dh_n, py::none(), x, h0, py::none(),
                                    w_ih, w_hh, y, ws, nonlinearity, reverse, rt);
        });
}

// Attention: the arguments as fastnn._core's scaled_dot_product_attention_* take them, checked
// by attention's meta functions (csrc/ops/attention_meta.cpp), plus this device's one limit:
// the kernels keep head dims in register and shared-memory tiles, so HD and DV are at most
// kAttnMaxHeadDim. The last argument is the runtime; the backward's delta (dout_i . out_i) is
// scratch of B * NH * L floats (at least one), allocated after the outputs.
void check_head_dims(const char* op, const fastnn::AttentionArgs& a) {
  constexpr int64_t lim = fastnn::cuda::kAttnMaxHeadDim;
  if (a.D > lim || a.DV > lim) {
    fastnn::arg_value_fail(op, "the CUDA kernels take head dims up to " + std::to_string(lim) + ", got HD " +
                                   std::to_string(a.D) + " and DV " + std::to_string(a.DV) +
                                   " (the CPU op has no such limit)");
  }
}

void bind_attention(py::module_& m) {
  using fastnn::bind::scale_arg;
  using fastnn::cuda::dev_out;
  using fastnn::cuda::DevArg;
  m.def("scaled_dot_product_attention_forward", [](py::handle q_obj, py::handle k_obj, py::handle v_obj,
                                                   py::handle mask_obj, bool causal, py::handle scale,
                                                   py::handle rt) {
    const char* op = "scaled_dot_product_attention_forward";
    const DevArg q(op, "q", q_obj), k(op, "k", k_obj), v(op, "v", v_obj), mask(op, "attn_mask", mask_obj);
    const auto a =
        fastnn::attention_forward_meta(q.ref, k.ref, v.ref, mask.ref, causal, scale_arg(op, scale));
    check_head_dims(op, a);
    fastnn::ArrayRef out, lse;
    py::object oo = dev_out(op, rt, py::none(), fastnn::attention_out_shape(q.ref, a), {}, &out);
    py::object lo = dev_out(op, rt, py::none(), fastnn::attention_lse_shape(q.ref, a), {}, &lse);
    void* st = fastnn::cuda::stream_of(rt);
    {
      py::gil_scoped_release nogil;
      fastnn::cuda::attention_forward(a, out.ptr<float>(), lse.ptr<float>(), st);
    }
    return py::make_tuple(oo, lo);
  });
  m.def("scaled_dot_product_attention_backward",
        [](py::handle dout_obj, py::handle q_obj, py::handle k_obj, py::handle v_obj, py::handle out_obj,
           py::handle lse_obj, py::handle mask_obj, bool causal, py::handle scale, py::handle rt) {
          const char* op = "scaled_dot_product_attention_backward";
          const DevArg dout(op, "dout", dout_obj), q(op, "q", q_obj), k(op, "k", k_obj), v(op, "v", v_obj),
              out(op, "out", out_obj), lse(op, "lse", lse_obj), mask(op, "attn_mask", mask_obj);
          const auto a = fastnn::attention_backward_meta(dout.ref, q.ref, k.ref, v.ref, out.ref, lse.ref,
                                                         mask.ref, causal, scale_arg(op, scale));
          check_head_dims(op, a);
          fastnn::ArrayRef dq, dk, dv;
          py::object dqo = dev_out(op, rt, py::none(), q.ref.shape, {}, &dq);
          py::object dko = dev_out(op, rt, py::none(), k.ref.shape, {}, &dk);
          py::object dvo = dev_out(op, rt, py::none(), v.ref.shape, {}, &dv);
          float* delta = nullptr;
          py::object keep = fastnn::cuda::dev_scratch(rt, std::max<int64_t>(1, a.B * a.NH * a.L), &delta);
          void* st = fastnn::cuda::stream_of(rt);
          {
            py::gil_scoped_release nogil;
            fastnn::cuda::attention_backward(a, dout.ref.ptr<const float>(), out.ref.ptr<const float>(),
                                             lse.ref.ptr<const float>(), dq.ptr<float>(), dk.ptr<float>(),
                                             dv.ptr<float>(), delta, st);
          }
          return py::make_tuple(dqo, dko, dvo);
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
