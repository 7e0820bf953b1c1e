// fastnn._cuda: the CUDA kernels on device pointers. Thin on purpose: python/fastnn/cuda.py
// reads __cuda_array_interface__, checks dtype, shape, layout and device, allocates outputs
// (CuPy) and passes raw pointers, sizes and the stream here. The CUDA runtime is linked
// statically: the module imports without a driver, and device_count() is then 0.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "cuda/kernels.h"
#include "cuda/pool_geometry.h"
#include "ops/optim.h"

namespace py = pybind11;
using Ptr = std::uintptr_t;

namespace {

template <class T>
T* ptr(Ptr p) {
  return reinterpret_cast<T*>(p);
}
void* stream_of(Ptr s) { return reinterpret_cast<void*>(s); }

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

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastnn's CUDA kernels on device pointers (use fastnn.cuda / fastnn.ops)";
  m.attr("__version__") = FASTNN_VERSION;
  m.attr("architectures") = FASTNN_CUDA_ARCHITECTURES;
  m.attr("compiler") = FASTNN_CUDA_COMPILER;
  m.def("device_count", &device_count, "CUDA devices visible (0 without a driver)");
  m.def("driver_version", &driver_version, "the driver's CUDA version (e.g. 13000), 0 without one");
  m.def("runtime_version", &runtime_version, "the CUDA runtime linked in (e.g. 13000)");
  m.def("gemm",
        [](int64_t M, int64_t N, int64_t K, Ptr a, Ptr b, Ptr c, Ptr out, int64_t lda, int64_t ldb,
           int64_t ldc, bool trans_a, bool trans_b, float alpha, float beta, Ptr bias, int act,
           Ptr stream) {
          fastnn::cuda::GemmArgs g;
          g.M = M, g.N = N, g.K = K;
          g.a = ptr<const float>(a), g.b = ptr<const float>(b), g.c = ptr<const float>(c);
          g.out = ptr<float>(out);
          g.lda = lda, g.ldb = ldb, g.ldc = ldc;
          g.trans_a = trans_a, g.trans_b = trans_b, g.alpha = alpha, g.beta = beta;
          g.bias = ptr<const float>(bias), g.act = act;
          py::gil_scoped_release nogil;
          fastnn::cuda::gemm(g, stream_of(stream));
        });
  m.def("act_forward", [](int kind, float alpha, Ptr x, Ptr y, int64_t n, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::act_forward(kind, alpha, ptr<const float>(x), ptr<float>(y), n, stream_of(stream));
  });
  m.def("act_backward", [](int kind, float alpha, Ptr dy, Ptr xy, Ptr dx, int64_t n, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::act_backward(kind, alpha, ptr<const float>(dy), ptr<const float>(xy), ptr<float>(dx), n,
                               stream_of(stream));
  });
  m.def("softmax_forward",
        [](int64_t outer, int64_t n, int64_t inner, bool log, Ptr x, Ptr y, Ptr stream) {
          py::gil_scoped_release nogil;
          fastnn::cuda::softmax_forward(outer, n, inner, log, ptr<const float>(x), ptr<float>(y),
                                        stream_of(stream));
        });
  m.def("layer_norm_forward", [](int64_t rows, int64_t n, Ptr x, Ptr weight, Ptr bias, float eps, Ptr y,
                                  Ptr mean, Ptr rstd, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::layer_norm_forward(rows, n, ptr<const float>(x), ptr<const float>(weight), ptr<const float>(bias),
                                     eps, ptr<float>(y), ptr<float>(mean), ptr<float>(rstd), stream_of(stream));
  });
  m.def("layer_norm_backward", [](int64_t rows, int64_t n, Ptr dy, Ptr x, Ptr mean, Ptr rstd, Ptr weight,
                                   Ptr dx, Ptr dweight, Ptr dbias, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::layer_norm_backward(rows, n, ptr<const float>(dy), ptr<const float>(x), ptr<const float>(mean),
                                      ptr<const float>(rstd), ptr<const float>(weight), ptr<float>(dx),
                                      ptr<float>(dweight), ptr<float>(dbias), stream_of(stream));
  });
  m.def("embedding_forward", [](int64_t t, int64_t d, Ptr weight, Ptr idx, Ptr out, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::embedding_forward(t, d, ptr<const float>(weight), ptr<const int64_t>(idx), ptr<float>(out),
                                    stream_of(stream));
  });
  m.def("embedding_backward", [](int64_t v, int64_t t, int64_t d, int64_t padding_idx, Ptr dy, Ptr idx,
                                  Ptr dweight, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::embedding_backward(v, t, d, padding_idx, ptr<const float>(dy), ptr<const int64_t>(idx),
                                     ptr<float>(dweight), stream_of(stream));
  });
  // Pooling: the geometry is fastnn._core.pool2d_geometry's dict (checked there).
  m.def("max_pool2d_forward", [](py::dict d, Ptr x, Ptr y, Ptr idx, Ptr stream) {
    const auto g = fastnn::cuda::pool_geometry(d);
    py::gil_scoped_release nogil;
    fastnn::cuda::max_pool2d_forward(g, ptr<const float>(x), ptr<float>(y), ptr<int64_t>(idx), stream_of(stream));
  });
  m.def("max_pool2d_backward", [](py::dict d, Ptr dy, Ptr idx, Ptr relu_x, Ptr dx, Ptr stream) {
    const auto g = fastnn::cuda::pool_geometry(d);
    py::gil_scoped_release nogil;
    fastnn::cuda::max_pool2d_backward(g, ptr<const float>(dy), ptr<const int64_t>(idx), ptr<const float>(relu_x),
                                      ptr<float>(dx), stream_of(stream));
  });
  m.def("avg_pool2d_forward", [](py::dict d, bool cip, Ptr x, Ptr y, Ptr stream) {
    const auto g = fastnn::cuda::pool_geometry(d);
    py::gil_scoped_release nogil;
    fastnn::cuda::avg_pool2d_forward(g, cip, ptr<const float>(x), ptr<float>(y), stream_of(stream));
  });
  m.def("avg_pool2d_backward", [](py::dict d, bool cip, Ptr dy, Ptr dx, Ptr stream) {
    const auto g = fastnn::cuda::pool_geometry(d);
    py::gil_scoped_release nogil;
    fastnn::cuda::avg_pool2d_backward(g, cip, ptr<const float>(dy), ptr<float>(dx), stream_of(stream));
  });
  m.def("global_avg_pool2d_forward", [](int64_t planes, int64_t hw, Ptr x, Ptr y, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::global_avg_pool2d_forward(planes, hw, ptr<const float>(x), ptr<float>(y), stream_of(stream));
  });
  m.def("global_avg_pool2d_backward", [](int64_t planes, int64_t hw, Ptr dy, Ptr dx, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::global_avg_pool2d_backward(planes, hw, ptr<const float>(dy), ptr<float>(dx), stream_of(stream));
  });
  m.def("cross_entropy_forward", [](int64_t rows, int64_t C, Ptr x, Ptr t, Ptr w, int64_t ignore_index,
                                     float smoothing, Ptr loss, Ptr wt, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::cross_entropy_forward(rows, C, ptr<const float>(x), ptr<const int64_t>(t), ptr<const float>(w),
                                        ignore_index, smoothing, ptr<float>(loss), ptr<float>(wt), stream_of(stream));
  });
  m.def("cross_entropy_backward", [](int64_t rows, int64_t C, Ptr x, Ptr t, Ptr w, int64_t ignore_index,
                                      float smoothing, Ptr scale, Ptr dx, Ptr stream) {
    py::gil_scoped_release nogil;
    fastnn::cuda::cross_entropy_backward(rows, C, ptr<const float>(x), ptr<const int64_t>(t), ptr<const float>(w),
                                         ignore_index, smoothing, ptr<const float>(scale), ptr<float>(dx),
                                         stream_of(stream));
  });
  m.def("sgd_step", [](Ptr p, Ptr g, Ptr buf, int64_t n, double lr, double momentum, double dampening,
                       bool nesterov, double weight_decay, bool maximize, bool first_step, Ptr stream) {
    fastnn::SgdArgs a;
    a.lr = lr, a.momentum = momentum, a.dampening = dampening, a.nesterov = nesterov;
    a.weight_decay = weight_decay, a.maximize = maximize, a.first_step = first_step;
    py::gil_scoped_release nogil;
    fastnn::cuda::sgd_step(a, ptr<float>(p), ptr<const float>(g), ptr<float>(buf), n, stream_of(stream));
  });
  m.def("adam_step", [](Ptr p, Ptr g, Ptr m_, Ptr v, Ptr vmax, int64_t n, int64_t step, double lr, double beta1,
                        double beta2, double eps, double weight_decay, bool decoupled, bool maximize, Ptr stream) {
    fastnn::AdamArgs a;
    a.lr = lr, a.beta1 = beta1, a.beta2 = beta2, a.eps = eps, a.weight_decay = weight_decay;
    a.amsgrad = vmax != 0, a.decoupled = decoupled, a.maximize = maximize, a.step = step;
    py::gil_scoped_release nogil;
    fastnn::cuda::adam_step(a, ptr<float>(p), ptr<const float>(g), ptr<float>(m_), ptr<float>(v), ptr<float>(vmax),
                            n, stream_of(stream));
  });
  m.def("softmax_backward",
        [](int64_t outer, int64_t n, int64_t inner, bool log, Ptr dy, Ptr y, Ptr dx, Ptr stream) {
          py::gil_scoped_release nogil;
          fastnn::cuda::softmax_backward(outer, n, inner, log, ptr<const float>(dy), ptr<const float>(y),
                                         ptr<float>(dx), stream_of(stream));
        });
}
