// pool2d's rules on every device: PyTorch's output-size rule and option checks, and the meta
// functions of csrc/ops/pool2d.h, called by the CPU binding (csrc/bind/pool2d.cpp) and the CUDA
// one (csrc/cuda/module.cpp) before either allocates or launches anything.
#include <limits>
#include <string>
#include <vector>

#include "ops/pool2d.h"

namespace fastnn {
namespace {

std::string pair(int64_t a, int64_t b) { return "(" + std::to_string(a) + ", " + std::to_string(b) + ")"; }

void check_pooled(const char* op, const ArrayRef& a, const Pool2dShape& s) {
  if (a.shape != pool2d_y_shape(s)) {
    arg_value_fail(op, std::string("expected ") + a.name + " of shape " + shape_str(pool2d_y_shape(s)) +
                           " (the pooled shape), got " + shape_str(a.shape));
  }
}

Pool2dShape with_input(const char* op, const ArrayRef& x, const Pool2dShape& params) {
  check_f32_nd(op, x, 4, "N, C, H, W");
  Pool2dShape s = params;
  s.N = x.shape[0], s.C = x.shape[1], s.H = x.shape[2], s.W = x.shape[3];
  pool2d_shape(op, &s);
  return s;
}

}  // namespace

int64_t pool2d_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  const int64_t q = num >= 0 ? num / s : -((-num + s - 1) / s);  // floor division
  int64_t out = q + 1;
  // The last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

void pool2d_shape(const char* op, Pool2dShape* s) {
  auto fail = [op](const std::string& what) { arg_value_fail(op, what); };
  if (s->KH < 1 || s->KW < 1) fail("kernel size should be greater than zero, but got " + pair(s->KH, s->KW));
  if (s->SH < 1 || s->SW < 1) fail("stride should be greater than zero, but got " + pair(s->SH, s->SW));
  if (s->DH < 1 || s->DW < 1) fail("dilation should be greater than zero, but got " + pair(s->DH, s->DW));
  if (s->PH < 0 || s->PW < 0) fail("pad must be non-negative, but got " + pair(s->PH, s->PW));
  const int64_t kMax = std::numeric_limits<int32_t>::max();
  if (s->KH > kMax || s->KW > kMax || s->SH > kMax || s->SW > kMax || s->PH > kMax || s->PW > kMax ||
      s->DH > kMax || s->DW > kMax) {
    fail("expected kernel_size, stride, padding and dilation of at most 2^31-1, got kernel_size " +
         pair(s->KH, s->KW) + ", stride " + pair(s->SH, s->SW) + ", padding " + pair(s->PH, s->PW) +
         ", dilation " + pair(s->DH, s->DW));
  }
  if (s->PH > s->KH / 2 || s->PW > s->KW / 2) {
    fail("pad should be at most half of kernel size, but got pad=" + pair(s->PH, s->PW) +
         ", kernel_size=" + pair(s->KH, s->KW));
  }
  if (s->N < 0 || s->C < 1 || s->H < 1 || s->W < 1) {
    fail("expected x of shape (N, C, H, W) with non-zero C, H, W (N may be 0), got (" + std::to_string(s->N) +
         ", " + std::to_string(s->C) + ", " + std::to_string(s->H) + ", " + std::to_string(s->W) + ")");
  }
  if (s->H * s->W > std::numeric_limits<int32_t>::max()) {
    fail("expected an H*W plane of at most 2^31-1 elements, got H=" + std::to_string(s->H) +
         " W=" + std::to_string(s->W));
  }
  s->OH = pool2d_out_size(s->H, s->KH, s->SH, s->PH, s->DH, s->ceil_mode);
  s->OW = pool2d_out_size(s->W, s->KW, s->SW, s->PW, s->DW, s->ceil_mode);
  if (s->OH < 1 || s->OW < 1) {
    fail("Given input size: (" + std::to_string(s->C) + "x" + std::to_string(s->H) + "x" +
         std::to_string(s->W) + "). Calculated output size: (" + std::to_string(s->C) + "x" +
         std::to_string(s->OH) + "x" + std::to_string(s->OW) + "). Output size is too small");
  }
}

Shape pool2d_y_shape(const Pool2dShape& s) { return {s.N, s.C, s.OH, s.OW}; }

Pool2dShape pool2d_forward_meta(const char* op, const ArrayRef& x, const Pool2dShape& params) {
  return with_input(op, x, params);
}

Pool2dShape pool2d_backward_meta(const char* op, const ArrayRef& dy, const ArrayRef& x,
                                 const ArrayRef& indices, const Pool2dShape& params) {
  check_f32_nd(op, dy, 4, "N, C, H, W");
  const Pool2dShape s = with_input(op, x, params);
  check_pooled(op, dy, s);
  if (indices.present) {
    check_i64(op, indices);
    check_pooled(op, indices, s);
  }
  return s;
}

Pool2dShape global_avg_pool2d_meta(const char* op, const ArrayRef& x, const ArrayRef& dy) {
  if (dy.present) check_f32_nd(op, dy, 4, "N, C, H, W");
  check_f32_nd(op, x, 4, "N, C, H, W");
  Pool2dShape s;
  s.N = x.shape[0], s.C = x.shape[1], s.H = x.shape[2], s.W = x.shape[3];
  if (s.C < 1 || s.H < 1 || s.W < 1) {
    arg_value_fail(
        op, "expected x of shape (N, C, H, W) with non-zero C, H, W (N may be 0), got " + shape_str(x.shape));
  }
  s.OH = s.OW = 1;
  if (dy.present && dy.shape != pool2d_y_shape(s)) {
    arg_value_fail(op, "expected dy of shape " + shape_str(pool2d_y_shape(s)) + " (the pooled shape), got " +
                           shape_str(dy.shape));
  }
  return s;
}

}  // namespace fastnn
