// softmax's rules on every device: the meta functions of csrc/ops/softmax.h.
#include <string>
#include <vector>

#include "ops/softmax.h"

namespace fastnn {

SoftmaxShape softmax_forward_meta(const char* op, const ArrayRef& x, int64_t dim) {
  check_f32(op, x);
  const int64_t nd = x.ndim();
  if (nd < 1) arg_value_fail(op, "expected an array of at least 1 dimension, got a 0-d array");
  if (dim < -nd || dim >= nd) {
    arg_value_fail(op, "expected dim in [" + std::to_string(-nd) + ", " + std::to_string(nd) + "), got " +
                           std::to_string(dim));
  }
  if (dim < 0) dim += nd;
  SoftmaxShape s;
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t n = x.shape[i];
    if (i < dim) {
      s.outer *= n;
    } else if (i == dim) {
      s.n = n;
    } else {
      s.inner *= n;
    }
  }
  return s;
}

SoftmaxShape softmax_backward_meta(const char* op, const ArrayRef& dy, const ArrayRef& y, int64_t dim) {
  check_f32(op, dy);
  check_f32(op, y);
  if (dy.shape != y.shape) {
    arg_value_fail(op, "expected dy and y of the same shape, got dy " + shape_str(dy.shape) + " and y " +
                           shape_str(y.shape));
  }
  return softmax_forward_meta(op, y, dim);
}

CrossEntropyArgs cross_entropy_meta(const char* op, const ArrayRef& logits, const ArrayRef& target,
                                    const ArrayRef& weight, int64_t ignore_index, double smoothing) {
  check_f32(op, logits);
  if (logits.ndim() != 2)
    arg_value_fail(op, "expected logits of shape (N, C), got " + shape_str(logits.shape));
  CrossEntropyArgs a;
  a.N = logits.shape[0];
  a.C = logits.shape[1];
  if (a.C < 1)
    arg_value_fail(op, "expected at least one class, got logits of shape " + shape_str(logits.shape));
  if (target.dtype != DType::Int64) {
    arg_type_fail(op, std::string("expected target to be int64 class indices, got ") + target.dtype_name);
  }
  check_i64(op, target);
  if (target.shape != Shape{a.N}) {
    arg_value_fail(op,
                   "expected target of shape (" + std::to_string(a.N) + ",), got " + shape_str(target.shape));
  }
  if (weight.present) {
    check_f32(op, weight);
    if (weight.shape != Shape{a.C}) {
      arg_value_fail(
          op, "expected weight of shape (" + std::to_string(a.C) + ",), got " + shape_str(weight.shape));
    }
    a.weight = weight.ptr<const float>();
  }
  if (!(smoothing >= 0.0 && smoothing <= 1.0)) {
    arg_value_fail(op, "expected label_smoothing in [0, 1], got " + std::to_string(smoothing));
  }
  a.logits = logits.ptr<const float>();
  a.target = target.ptr<const int64_t>();
  a.ignore_index = ignore_index;
  a.smoothing = static_cast<float>(smoothing);
  return a;
}

void cross_entropy_bad_target(const char* op, const CrossEntropyArgs& a, int64_t value, int64_t row) {
  arg_value_fail(op, "expected targets in [0, " + std::to_string(a.C) + ") or ignore_index " +
                         std::to_string(a.ignore_index) + ", got " + std::to_string(value) + " at row " +
                         std::to_string(row));
}

void cross_entropy_scale_check(const char* op, const CrossEntropyArgs& a, const ArrayRef& scale) {
  if (!scale.present) arg_type_fail(op, "expected scale to be a float32 array, got None");
  check_f32(op, scale);
  if (scale.shape != Shape{a.N}) {
    arg_value_fail(op,
                   "expected scale of shape (" + std::to_string(a.N) + ",), got " + shape_str(scale.shape));
  }
}

void cross_entropy_check_targets(const char* op, const CrossEntropyArgs& a) {
  for (int64_t i = 0; i < a.N; ++i) {
    const int64_t t = a.target[i];
    if (t != a.ignore_index && (t < 0 || t >= a.C)) cross_entropy_bad_target(op, a, t, i);
  }
}

}  // namespace fastnn
