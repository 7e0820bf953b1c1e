// conv2d's rules on every device: the "meta" functions of csrc/ops/conv2d.h, called by the
// CPU binding (csrc/bind/conv2d.cpp) and the CUDA one (csrc/cuda/module.cpp) before either
// allocates or launches anything.
#include <limits>
#include <string>
#include <vector>

#include "ops/conv2d.h"

namespace fastnn {
namespace {

[[noreturn]] void fail(const char* op, const std::string& what) { arg_value_fail(op, what); }

// The shape struct from the input and weight sizes; every size rule is in conv2d_check.
Conv2dShape shape_of(const char* op, const Shape& xs, const Shape& ws, const Conv2dParams& p) {
  if (p.groups < 1) fail(op, "expected groups >= 1, got " + std::to_string(p.groups));
  if (xs[1] % p.groups != 0 || xs[1] / p.groups != ws[1]) {  // xs[1] == ws[1] * groups, without overflow
    fail(op, "expected weight of shape (out_channels, in_channels/groups, KH, KW) with in_channels " +
                 std::to_string(xs[1]) + " and groups " + std::to_string(p.groups) + ", got weight " +
                 shape_str(ws) + " for input " + shape_str(xs));
  }
  Conv2dShape s;
  s.B = xs[0], s.C = xs[1], s.H = xs[2], s.W = xs[3];
  s.OC = ws[0], s.KH = ws[2], s.KW = ws[3];
  s.SH = p.stride[0], s.SW = p.stride[1];
  s.PT = p.pad[0], s.PB = p.pad[1], s.PL = p.pad[2], s.PR = p.pad[3];
  s.DH = p.dilation[0], s.DW = p.dilation[1];
  s.G = p.groups;
  conv2d_check(op, s);
  return s;
}

void check_dy(const char* op, const ArrayRef& dy, const Conv2dShape& s) {
  if (dy.shape != conv2d_y_shape(s)) {
    fail(op, "expected dy of shape " + shape_str(conv2d_y_shape(s)) + ", got " + shape_str(dy.shape));
  }
}

void check_shape_arg(const char* op, const char* name, const Shape& shape) {
  if (shape.size() != 4) fail(op, std::string("expected a 4-D ") + name + ", got " + shape_str(shape));
}

}  // namespace

void conv2d_check(const char* op, const Conv2dShape& s) {
  if (s.B < 0 || s.C < 1 || s.H < 1 || s.W < 1 || s.OC < 1 || s.KH < 1 || s.KW < 1) {
    fail(op, "expected positive sizes, got input (" + std::to_string(s.B) + ", " + std::to_string(s.C) +
                 ", " + std::to_string(s.H) + ", " + std::to_string(s.W) + ") and weight (" +
                 std::to_string(s.OC) + ", _, " + std::to_string(s.KH) + ", " + std::to_string(s.KW) + ")");
  }
  if (s.SH < 1 || s.SW < 1 || s.DH < 1 || s.DW < 1 || s.G < 1) {
    fail(op, "expected stride, dilation and groups >= 1");
  }
  if (s.PT < 0 || s.PB < 0 || s.PL < 0 || s.PR < 0) fail(op, "expected non-negative padding");
  const int64_t kMax32 = std::numeric_limits<int32_t>::max();
  for (int64_t v :
       {s.B, s.C, s.H, s.W, s.OC, s.KH, s.KW, s.SH, s.SW, s.PT, s.PB, s.PL, s.PR, s.DH, s.DW, s.G}) {
    if (v > kMax32) {
      fail(op, "expected every size, stride, padding and dilation to be at most 2^31-1, got input (" +
                   std::to_string(s.B) + ", " + std::to_string(s.C) + ", " + std::to_string(s.H) + ", " +
                   std::to_string(s.W) + "), weight (" + std::to_string(s.OC) + ", _, " +
                   std::to_string(s.KH) + ", " + std::to_string(s.KW) + ")");
    }
  }
  if (s.C % s.G != 0 || s.OC % s.G != 0) {
    fail(op, "expected in_channels " + std::to_string(s.C) + " and out_channels " + std::to_string(s.OC) +
                 " to be divisible by groups " + std::to_string(s.G));
  }
  const int64_t eh = s.DH * (s.KH - 1) + 1, ew = s.DW * (s.KW - 1) + 1;
  if (eh > s.H + s.PT + s.PB || ew > s.W + s.PL + s.PR) {
    fail(op, "kernel size can't be greater than the padded input size: padded input (" +
                 std::to_string(s.H + s.PT + s.PB) + ", " + std::to_string(s.W + s.PL + s.PR) +
                 "), effective kernel (" + std::to_string(eh) + ", " + std::to_string(ew) + ")");
  }
  const int64_t kMax = std::numeric_limits<int32_t>::max();
  // each factor at most 2^31 - 1 before any product, Kg = Cg KH KW by a division (a padding of
  // 2^31 - 1 makes OH and OW, or KH KW, ~2^32: products overflowed int64, found under
  // UndefinedBehaviorSanitizer)
  if (s.KH * s.KW > kMax / s.Cg() || s.OH() > kMax || s.OW() > kMax || s.OH() * s.OW() > kMax ||
      s.H * s.W > kMax || s.Kg() * s.OW() > kMax || s.OC * s.Kg() > kMax) {
    fail(op, "sizes past 2^31 - 1 elements per image or weight are not supported");
  }
}

Conv2dShape conv2d_shape(const char* op, const Shape& input_shape, const Shape& weight_shape,
                         const Conv2dParams& p) {
  check_shape_arg(op, "input_shape", input_shape);
  check_shape_arg(op, "weight_shape", weight_shape);
  return shape_of(op, input_shape, weight_shape, p);
}

Shape conv2d_y_shape(const Conv2dShape& s) { return {s.B, s.OC, s.OH(), s.OW()}; }

Conv2dShape conv2d_forward_meta(const char* op, const ArrayRef& x, const ArrayRef& w, const ArrayRef& bias,
                                const Conv2dParams& p, const std::string* activation, Activation* act) {
  check_f32_nd(op, x, 4, "NCHW");
  check_f32_nd(op, w, 4, "NCHW");
  const Conv2dShape s = shape_of(op, x.shape, w.shape, p);
  if (bias.present) {
    check_f32(op, bias);
    if (bias.shape != Shape{s.OC}) {
      fail(op, "expected bias of shape (" + std::to_string(s.OC) + ",), got " + shape_str(bias.shape));
    }
  }
  *act = Activation::None;
  if (activation && *activation == "relu") {
    *act = Activation::Relu;
  } else if (activation && *activation != "none") {
    fail(op, "expected activation None, 'none' or 'relu', got '" + *activation + "'");
  }
  return s;
}

Conv2dShape conv2d_backward_data_meta(const char* op, const ArrayRef& dy, const ArrayRef& w,
                                      const Shape& input_shape, const Conv2dParams& p) {
  check_f32_nd(op, dy, 4, "NCHW");
  check_f32_nd(op, w, 4, "NCHW");
  check_shape_arg(op, "input_shape", input_shape);
  const Conv2dShape s = shape_of(op, input_shape, w.shape, p);
  check_dy(op, dy, s);
  return s;
}

Conv2dShape conv2d_backward_weight_meta(const char* op, const ArrayRef& dy, const ArrayRef& x,
                                        const Shape& weight_shape, const Conv2dParams& p) {
  check_f32_nd(op, dy, 4, "NCHW");
  check_f32_nd(op, x, 4, "NCHW");
  check_shape_arg(op, "weight_shape", weight_shape);
  const Conv2dShape s = shape_of(op, x.shape, weight_shape, p);
  check_dy(op, dy, s);
  return s;
}

Conv2dShape conv2d_backward_bias_meta(const char* op, const ArrayRef& dy) {
  check_f32_nd(op, dy, 4, "NCHW");
  // conv2d_check's rules where they apply: at most 2^31-1 channels (out_channels) and elements
  // per plane. The batch may be larger: the sums of empty planes are 0 without a loop over it.
  const int64_t kMax32 = std::numeric_limits<int32_t>::max();
  const int64_t OC = dy.shape[1], H = dy.shape[2], W = dy.shape[3];
  if (OC > kMax32 || (H > 0 && W > kMax32 / H)) {
    fail(op, "expected dy with at most 2^31-1 channels and elements per plane, got " + shape_str(dy.shape));
  }
  Conv2dShape s;  // only B, OC and the output plane matter: a 1x1 "convolution" of dy's plane
  s.B = dy.shape[0];
  s.C = s.OC = dy.shape[1];
  s.H = dy.shape[2];
  s.W = dy.shape[3];
  return s;
}

}  // namespace fastnn
