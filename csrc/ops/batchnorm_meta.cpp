// Batch norm's rules on every device: the meta functions of csrc/ops/batchnorm.h.
#include <cmath>
#include <initializer_list>
#include <string>

#include "ops/batchnorm.h"

namespace fastnn {
namespace {

void nchw(const char* op, const ArrayRef& x) {
  if (!x.present) arg_type_fail(op, std::string("expected ") + x.name + " to be a float32 array, got None");
  check_f32(op, x);
  if (x.ndim() != 4) {
    arg_value_fail(op, std::string("expected ") + x.name + " of 4 dimensions (N, C, H, W), got shape " +
                           shape_str(x.shape));
  }
}

// Absent, or float32 C-contiguous (C,).
void per_channel(const char* op, const ArrayRef& a, int64_t c, bool writeable) {
  if (!a.present) return;
  check_f32(op, a);
  if (a.shape != Shape{c}) {
    arg_value_fail(op, std::string("expected ") + a.name + " of shape (" + std::to_string(c) +
                           ",) (one per channel), got " + shape_str(a.shape));
  }
  if (writeable && !a.writeable) {
    arg_value_fail(op, std::string("expected ") + a.name + " to be writeable, got a read-only array");
  }
}

// A written array `w` (when present) shares no memory with the others (those present).
void disjoint(const char* op, const ArrayRef& w, std::initializer_list<const ArrayRef*> others) {
  for (const ArrayRef* o : others) {
    if (overlaps(w, *o)) {
      arg_value_fail(op, std::string("expected ") + w.name + " not to share memory with " + o->name +
                             ", got overlapping arrays");
    }
  }
}

BatchNormArgs args_for(const ArrayRef& x, bool training, double momentum, double eps) {
  BatchNormArgs a;
  a.n = x.shape[0];
  a.c = x.shape[1];
  a.hw = x.shape[2] * x.shape[3];
  a.training = training;
  a.momentum = momentum;
  a.eps = eps;
  return a;
}

}  // namespace

BatchNormArgs batch_norm2d_forward_meta(const ArrayRef& x, const ArrayRef& weight, const ArrayRef& bias,
                                        const ArrayRef& running_mean, const ArrayRef& running_var,
                                        const ArrayRef& out, bool training, double momentum, double eps) {
  const char* op = "batch_norm2d_forward";
  nchw(op, x);
  const int64_t c = x.shape[1];
  per_channel(op, weight, c, false);
  per_channel(op, bias, c, false);
  per_channel(op, running_mean, c, true);
  per_channel(op, running_var, c, true);
  if (running_mean.present != running_var.present) {
    arg_value_fail(op, std::string("expected running_mean and running_var both given or both None, got ") +
                           (running_mean.present ? "running_mean only" : "running_var only"));
  }
  if (!training && !running_mean.present) {
    arg_value_fail(op, "expected running_mean and running_var in evaluation mode (training=False), got None");
  }
  if (!(eps >= 0) || !std::isfinite(eps)) arg_value_fail(op, "expected eps >= 0, got " + std::to_string(eps));
  if (!std::isfinite(momentum))
    arg_value_fail(op, "expected a finite momentum, got " + std::to_string(momentum));
  if (training && x.shape[0] * x.shape[2] * x.shape[3] == 1) {
    arg_value_fail(
        op, "Expected more than 1 value per channel when training, got input size " + shape_str(x.shape));
  }
  if (out.present) check_out(op, out, x.shape, {&x, &weight, &bias, &running_mean, &running_var});
  disjoint(op, running_mean, {&x, &weight, &bias, &running_var});
  disjoint(op, running_var, {&x, &weight, &bias});
  return args_for(x, training, momentum, eps);
}

BatchNormArgs batch_norm2d_backward_meta(const ArrayRef& dy, const ArrayRef& x, const ArrayRef& weight,
                                         const ArrayRef& save_mean, const ArrayRef& save_invstd,
                                         const ArrayRef& out, bool training) {
  const char* op = "batch_norm2d_backward";
  nchw(op, dy);
  nchw(op, x);
  if (dy.shape != x.shape) {
    arg_value_fail(op, "expected dy and x of the same shape, got dy " + shape_str(dy.shape) + " and x " +
                           shape_str(x.shape));
  }
  const int64_t c = x.shape[1];
  per_channel(op, weight, c, false);
  if (!save_mean.present || !save_invstd.present) {
    arg_value_fail(op, "expected save_mean and save_invstd (from batch_norm2d_forward), got None");
  }
  per_channel(op, save_mean, c, false);
  per_channel(op, save_invstd, c, false);
  if (out.present) check_out(op, out, x.shape, {&dy, &x, &weight, &save_mean, &save_invstd});
  return args_for(x, training, 0.0, 0.0);
}

}  // namespace fastnn
