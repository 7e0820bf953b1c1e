// The embedding's rules on every device: the meta functions of csrc/ops/embedding.h.
#include <limits>
#include <string>
#include <vector>

#include "ops/embedding.h"

namespace fastnn {
namespace {

void check_indices_array(const char* op, const ArrayRef& idx) {
  if (idx.dtype != DType::Int64)
    arg_type_fail(op, std::string("expected indices to be int64, got ") + idx.dtype_name);
  check_i64(op, idx);
}

// None -> -1; torch's range [-V, V), negatives counted from the end.
int64_t padding(const char* op, bool given, int64_t p, int64_t v) {
  if (!given) return -1;
  if (p < -v || p >= v) {
    arg_value_fail(op, "expected padding_idx in [" + std::to_string(-v) + ", " + std::to_string(v) +
                           ") (within num_embeddings), got " + std::to_string(p));
  }
  return p < 0 ? p + v : p;
}

}  // namespace

EmbeddingArgs embedding_forward_meta(const char* op, const ArrayRef& weight, const ArrayRef& indices,
                                     bool has_padding, int64_t padding_idx, Shape* out_shape) {
  check_f32(op, weight);
  if (weight.ndim() != 2) {
    arg_value_fail(op, "expected weight of 2 dimensions (V, D), got shape " + shape_str(weight.shape));
  }
  check_indices_array(op, indices);
  EmbeddingArgs a;
  a.v = weight.shape[0];
  a.d = weight.shape[1];
  a.t = indices.numel();
  padding(op, has_padding, padding_idx, a.v);  // checked as torch does; the forward does not use it
  *out_shape = indices.shape;
  out_shape->push_back(a.d);
  return a;
}

EmbeddingArgs embedding_backward_meta(const char* op, const ArrayRef& dy, const ArrayRef& indices,
                                      int64_t num_embeddings, bool has_padding, int64_t padding_idx) {
  check_f32(op, dy);
  check_indices_array(op, indices);
  const Shape& want = indices.shape;
  if (dy.ndim() != indices.ndim() + 1 || Shape(dy.shape.begin(), dy.shape.end() - 1) != want) {
    arg_value_fail(op, "expected dy of shape indices.shape + (D,) = " + shape_str(want) + " + (D,), got " +
                           shape_str(dy.shape));
  }
  if (num_embeddings < 0)
    arg_value_fail(op, "expected num_embeddings >= 0, got " + std::to_string(num_embeddings));
  EmbeddingArgs a;
  a.v = num_embeddings;
  a.d = dy.shape.back();
  a.t = indices.numel();
  if (a.d > 0 && a.v > std::numeric_limits<int64_t>::max() / 4 / a.d) {
    arg_value_fail(op, "expected num_embeddings * D to fit in memory, got " + std::to_string(a.v) + " * " +
                           std::to_string(a.d));
  }
  a.padding_idx = padding(op, has_padding, padding_idx, a.v);
  return a;
}

void embedding_bad_index(const char* op, int64_t v, int64_t value, int64_t position) {
  arg_value_fail(op, "expected indices in [0, " + std::to_string(v) + ") (the rows of the weight), got " +
                         std::to_string(value) + " at flat position " + std::to_string(position));
}

void embedding_check_indices(const char* op, const int64_t* idx, int64_t n, int64_t v) {
  for (int64_t i = 0; i < n; ++i) {
    if (idx[i] < 0 || idx[i] >= v) embedding_bad_index(op, v, idx[i], i);
  }
}

}  // namespace fastnn
