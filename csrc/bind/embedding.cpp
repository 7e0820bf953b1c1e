// Binding of embedding_forward / backward: the embedding's meta functions (csrc/ops/embedding_meta.cpp,
// shared with the CUDA binding) and the index range (an index outside [0, V) is a ValueError naming
// the op) with the GIL held, then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "bind/py_args.h"
#include "core/threads.h"
#include "ops/embedding.h"

namespace fastnn::bind {
namespace {

py::array forward(py::handle w_obj, py::handle idx_obj, py::handle padding_obj, py::handle out_obj) {
  const char* op = "embedding_forward";
  const NpArg w(op, "weight", w_obj), idx(op, "indices", idx_obj, "int64");
  if (!w.present()) np_array(op, "weight", w_obj);  // required: None is a TypeError
  if (!idx.present()) np_array(op, "indices", idx_obj, "int64");
  bool has_padding;
  const int64_t padding = optional_int_arg(op, "padding_idx", padding_obj, &has_padding);
  Shape shape;
  const EmbeddingArgs a = embedding_forward_meta(op, w.ref, idx.ref, has_padding, padding, &shape);
  embedding_check_indices(op, idx.ref.ptr<const int64_t>(), a.t, a.v);
  py::array out = out_checked(op, out_obj, shape, {&w.ref, &idx.ref});
  float* op_ = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  run_kernel(op,
             [&] { embedding_forward(a, w.ref.ptr<const float>(), idx.ref.ptr<const int64_t>(), op_, nt); });
  return out;
}

py::array backward(py::handle dy_obj, py::handle idx_obj, int64_t num_embeddings, py::handle padding_obj,
                   py::handle out_obj) {
  const char* op = "embedding_backward";
  const NpArg dy(op, "dy", dy_obj), idx(op, "indices", idx_obj, "int64");
  if (!dy.present()) np_array(op, "dy", dy_obj);
  if (!idx.present()) np_array(op, "indices", idx_obj, "int64");
  bool has_padding;
  const int64_t padding = optional_int_arg(op, "padding_idx", padding_obj, &has_padding);
  const EmbeddingArgs a = embedding_backward_meta(op, dy.ref, idx.ref, num_embeddings, has_padding, padding);
  embedding_check_indices(op, idx.ref.ptr<const int64_t>(), a.t, a.v);
  py::array out = out_checked(op, out_obj, {a.v, a.d}, {&dy.ref, &idx.ref});
  float* dwp = static_cast<float*>(out.mutable_data());
  const int nt = get_num_threads();
  run_kernel(
      op, [&] { embedding_backward(a, dy.ref.ptr<const float>(), idx.ref.ptr<const int64_t>(), dwp, nt); });
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
