// layer norm's rules on every device: the meta functions of csrc/ops/layernorm.h.
#include <cmath>
#include <string>
#include <vector>

#include "ops/layernorm.h"

namespace fastnn {
namespace {

// x's (M, N) view for normalized_shape ns (x's trailing dims must equal ns).
LayerNormArgs rows_of(const char* op, const ArrayRef& x, const Shape& ns) {
  const int64_t nd = x.ndim(), k = static_cast<int64_t>(ns.size());
  bool ok = nd >= k;
  for (int64_t i = 0; ok && i < k; ++i) ok = x.shape[nd - k + i] == ns[i];
  if (!ok) {
    arg_value_fail(op, "expected x whose trailing dimensions are normalized_shape " + shape_str(ns) +
                           ", got x of shape " + shape_str(x.shape));
  }
  LayerNormArgs a;
  a.m = 1;
  a.n = 1;
  for (int64_t i = 0; i < nd; ++i) (i < nd - k ? a.m : a.n) *= x.shape[i];
  return a;
}

const float* param(const char* op, const ArrayRef& p, const Shape& ns) {
  if (!p.present) return nullptr;
  check_f32(op, p);
  if (p.shape != ns) {
    arg_value_fail(op, std::string("expected ") + p.name + " of shape normalized_shape " + shape_str(ns) +
                           ", got " + shape_str(p.shape));
  }
  return p.ptr<const float>();
}

}  // namespace

LayerNormArgs layer_norm_forward_meta(const char* op, const ArrayRef& x, const Shape& ns,
                                      const ArrayRef& weight, const ArrayRef& bias, double eps,
                                      Shape* stat_shape) {
  check_f32(op, x);
  if (ns.empty()) arg_value_fail(op, "expected a non-empty normalized_shape, got ()");
  LayerNormArgs a = rows_of(op, x, ns);
  a.weight = param(op, weight, ns);
  a.bias = param(op, bias, ns);
  if (!(eps >= 0.0) || !std::isfinite(eps))
    arg_value_fail(op, "expected a finite eps >= 0, got " + std::to_string(eps));
  a.eps = static_cast<float>(eps);
  *stat_shape = x.shape;
  for (size_t i = stat_shape->size() - ns.size(); i < stat_shape->size(); ++i) (*stat_shape)[i] = 1;
  return a;
}

LayerNormArgs layer_norm_backward_meta(const char* op, const ArrayRef& dy, const ArrayRef& x,
                                       const ArrayRef& mean, const ArrayRef& rstd, const ArrayRef& weight,
                                       Shape* ns) {
  for (const ArrayRef* a : {&dy, &x, &mean, &rstd}) check_f32(op, *a);
  if (dy.shape != x.shape) {
    arg_value_fail(op, "expected dy and x of the same shape, got dy " + shape_str(dy.shape) + " and x " +
                           shape_str(x.shape));
  }
  // The normalised dims: weight's shape when given; else the trailing dims after the leading
  // ones whose product is mean's size (the forward returns mean as x's shape with them set to 1).
  if (weight.present) {
    check_f32(op, weight);
    *ns = weight.shape;
    if (ns->empty()) arg_value_fail(op, "expected weight of the normalized shape, got a 0-d array");
  } else {
    int64_t lead = 1, k = x.ndim();
    while (k > 0 && lead != mean.numel()) lead *= x.shape[x.ndim() - k--];
    if (k == 0 || lead != mean.numel()) {
      arg_value_fail(op, "expected mean with one value per row of x's leading dims, got mean " +
                             shape_str(mean.shape) + " for x " + shape_str(x.shape));
    }
    ns->assign(x.shape.end() - k, x.shape.end());
  }
  LayerNormArgs a = rows_of(op, x, *ns);
  a.weight = weight.present ? weight.ptr<const float>() : nullptr;
  for (const ArrayRef* s : {&mean, &rstd}) {
    if (s->numel() != a.m) {
      arg_value_fail(op, std::string("expected ") + s->name + " with one value per row (" +
                             std::to_string(a.m) + "), got shape " + shape_str(s->shape));
    }
  }
  return a;
}

}  // namespace fastnn
