// Binding of embedding_forward / backward: argument checks with the GIL held (every index in
// [0, V) is checked here: an index outside is a ValueError naming the op), then the kernel
// without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/embedding.h"

namespace fastnn::bind {
namespace {

py::array index_array(const char* op, py::handle obj) {
  if (!py::isinstance<py::array>(obj)) {
    type_fail(op, "expected indices to be a numpy.ndarray of int64, got " +
                      std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::array idx = py::reinterpret_borrow<py::array>(obj);
  if (!idx.dtype().equal(py::dtype::of<int64_t>())) {
    type_fail(op, "expected indices to be int64, got " + std::string(py::str(idx.dtype())));
  }
  if (!(idx.flags() & py::array::c_style)) {
    value_fail(op, "expected indices to be C-contiguous, got a strided array of shape " + shape_str(idx));
  }
  return idx;
}

// Every index in [0, v): the first one outside is reported.
void check_range(const char* op, const py::array& idx, int64_t v) {
  const int64_t* p = static_cast<const int64_t*>(idx.data());
  const int64_t n = static_cast<int64_t>(idx.size());
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= v) {
      value_fail(op, "expected indices in [0, " + std::to_string(v) + ") (the rows of the weight), got " +
                         std::to_string(p[i]) + " at flat position " + std::to_string(i));
    }
  }
}

// None -> -1; torch's range [-V, V), negatives counted from the end.
int64_t padding_arg(const char* op, py::handle obj, int64_t v) {
  if (obj.is_none()) return -1;
  if (!py::isinstance<py::int_>(obj)) {
    type_fail(op, "expected padding_idx to be None or an int, got " +
                      std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const int64_t p = obj.cast<int64_t>();
  if (p < -v || p >= v) {
    value_fail(op, "expected padding_idx in [" + std::to_string(-v) + ", " + std::to_string(v) +
                       ") (within num_embeddings), got " + std::to_string(p));
  }
  return p < 0 ? p + v : p;
}

py::array forward(py::handle w_obj, py::handle idx_obj, py::handle padding_obj, py::handle out_obj) {
  const char* op = "embedding_forward";
  const py::array w = f32_array(op, "weight", w_obj);
  if (w.ndim() != 2) value_fail(op, "expected weight of 2 dimensions (V, D), got shape " + shape_str(w));
  const py::array idx = index_array(op, idx_obj);
  EmbeddingArgs a;
  a.v = w.shape(0);
  a.d = w.shape(1);
  a.t = static_cast<int64_t>(idx.size());
  padding_arg(op, padding_obj, a.v);  // checked as torch does; the forward does not use it
  check_range(op, idx, a.v);
  std::vector<int64_t> shape = shape_of(idx);
  shape.push_back(a.d);
  py::array out = out_or_new(op, out_obj, shape, {{"weight", &w}, {"indices", &idx}});
  const float* wp = static_cast<const float*>(w.data());
  const int64_t* ip = static_cast<const int64_t*>(idx.data());
  float* op_ = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    embedding_forward(a, wp, ip, op_, nt);
  }
  return out;
}

py::array backward(py::handle dy_obj, py::handle idx_obj, int64_t num_embeddings, py::handle padding_obj,
                   py::handle out_obj) {
  const char* op = "embedding_backward";
  const py::array dy = f32_array(op, "dy", dy_obj);
  const py::array idx = index_array(op, idx_obj);
  std::vector<int64_t> want = shape_of(idx);
  if (dy.ndim() != idx.ndim() + 1 || std::vector<int64_t>(dy.shape(), dy.shape() + idx.ndim()) != want) {
    value_fail(op, "expected dy of shape indices.shape + (D,) = " + shape_str(want) + " + (D,), got " +
                       shape_str(dy));
  }
  if (num_embeddings < 0)
    value_fail(op, "expected num_embeddings >= 0, got " + std::to_string(num_embeddings));
  EmbeddingArgs a;
  a.v = num_embeddings;
  a.d = dy.shape(dy.ndim() - 1);
  a.t = static_cast<int64_t>(idx.size());
  if (a.d > 0 && a.v > std::numeric_limits<int64_t>::max() / 4 / a.d) {
    value_fail(op, "expected num_embeddings * D to fit in memory, got " + std::to_string(a.v) + " * " +
                       std::to_string(a.d));
  }
  a.padding_idx = padding_arg(op, padding_obj, a.v);
  check_range(op, idx, a.v);
  py::array out = out_or_new(op, out_obj, {a.v, a.d}, {{"dy", &dy}, {"indices", &idx}});
  const float* dyp = static_cast<const float*>(dy.data());
  const int64_t* ip = static_cast<const int64_t*>(idx.data());
  float* dwp = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    embedding_backward(a, dyp, ip, dwp, nt);
  }
  return out;
}

}  // namespace

void bind_embedding(py::module_& m) {
  m.def("embedding_forward", &forward, py::arg("weight"), py::arg("indices"),
        py::arg("padding_idx") = py::none(), py::arg("out") = py::none(),
        "weight[indices]; see fastnn.ops.embedding_forward.");
  m.def("embedding_backward", &backward, py::arg("dy"), py::arg("indices"), py::arg("num_embeddings"),
        py::arg("padding_idx") = py::none(), py::arg("out") = py::none(),
        "The dense (V, D) weight gradient; see fastnn.ops.embedding_backward.");
}

}  // namespace fastnn::bind
