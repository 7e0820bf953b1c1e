// The activations' rules on every device: the meta functions of csrc/ops/act.h.
#include <string>

#include "ops/act.h"

namespace fastnn {

ActArgs act_forward_meta(const char* op, ActKind kind, float alpha, const ArrayRef& x) {
  check_f32(op, x);
  ActArgs a;
  a.kind = kind;
  a.alpha = alpha;
  a.n = x.numel();
  return a;
}

ActArgs act_backward_meta(const char* op, ActKind kind, float alpha, const ArrayRef& dy, const ArrayRef& xy) {
  check_f32(op, dy);
  check_f32(op, xy);
  if (dy.shape != xy.shape) {
    arg_value_fail(op, std::string("expected dy and ") + xy.name + " of the same shape, got dy " +
                           shape_str(dy.shape) + " and " + xy.name + " " + shape_str(xy.shape));
  }
  return act_forward_meta(op, kind, alpha, dy);
}

}  // namespace fastnn
