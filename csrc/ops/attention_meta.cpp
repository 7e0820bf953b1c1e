// Scaled dot-product attention's rules on every device: the meta functions of
// csrc/ops/attention.h, called by the CPU binding (csrc/bind/attention.cpp) and the CUDA one
// (csrc/cuda/module.cpp) before either allocates or launches anything.
#include <cmath>
#include <initializer_list>
#include <string>
#include <vector>

#include "ops/attention.h"

namespace fastnn {
namespace {

constexpr const char* kForward = "scaled_dot_product_attention_forward";
constexpr const char* kBackward = "scaled_dot_product_attention_backward";

std::string qkv_str(const ArrayRef& q, const ArrayRef& k, const ArrayRef& v) {
  return "q " + shape_str(q.shape) + ", k " + shape_str(k.shape) + ", v " + shape_str(v.shape);
}

// The mask (bool or float32, any strides) read into a: its kind, pointer and element strides
// (b, h, i, j), right-aligned against (B, NH, L, S), or (B, L, S) for 3-D q: each dim 1
// (stride 0) or equal (its own stride, a whole number of elements).
void read_mask(const char* op, const ArrayRef& m, int64_t nd, AttentionArgs* a) {
  if (a->causal) {
    arg_value_fail(
        op, "expected attn_mask=None with is_causal=True (they cannot be combined, as in torch), got a mask");
  }
  if (m.dtype == DType::Bool) {
    a->mask_kind = AttnMask::Bool;
  } else if (m.dtype == DType::Float32) {
    a->mask_kind = AttnMask::Float;
  } else {
    arg_type_fail(op, std::string("expected attn_mask of dtype bool or float32, got ") + m.dtype_name);
  }
  const Shape target = nd == 4 ? Shape{a->B, a->NH, a->L, a->S} : Shape{a->B, a->L, a->S};
  const int64_t mnd = m.ndim(), item = m.itemsize;
  int64_t stride[4] = {0, 0, 0, 0};  // b, h, i, j
  bool fits = mnd <= nd;
  for (int64_t d = 0; fits && d < mnd; ++d) {
    const int64_t td = nd - mnd + d;  // the dim of target it aligns with
    const int64_t n = m.shape[d];
    if (n != 1 && (n != target[td] || m.strides[d] % item != 0)) fits = false;
    const int64_t slot = nd == 4 ? td : (td == 0 ? 0 : td + 1);  // 3-D: (N, L, S) -> b, i, j
    stride[slot] = n == 1 ? 0 : m.strides[d] / item;
  }
  if (!fits) {
    arg_value_fail(
        op, "expected attn_mask broadcastable to " + shape_str(target) + ", got shape " + shape_str(m.shape));
  }
  a->mask = m.ptr<const void>();
  a->msb = stride[0], a->msh = stride[1], a->msl = stride[2], a->mss = stride[3];
}

AttentionArgs inputs(const char* op, const ArrayRef& q, const ArrayRef& k, const ArrayRef& v,
                     const ArrayRef& mask, bool causal, std::optional<double> scale) {
  check_f32(op, q);
  check_f32(op, k);
  check_f32(op, v);
  const int64_t nd = q.ndim();
  if (nd != 3 && nd != 4) {
    arg_value_fail(op, "expected q of shape (B, NH, L, HD) or (N, L, HD), got " + shape_str(q.shape));
  }
  if (k.ndim() != nd || v.ndim() != nd) {
    arg_value_fail(op, "expected q, k and v of the same rank, got " + qkv_str(q, k, v));
  }
  bool ok = k.shape[nd - 1] == q.shape[nd - 1] && v.shape[nd - 2] == k.shape[nd - 2];
  for (int64_t d = 0; d < nd - 2; ++d) ok = ok && k.shape[d] == q.shape[d] && v.shape[d] == q.shape[d];
  if (!ok) {
    arg_value_fail(
        op, "expected k of shape (..., S, HD) and v of shape (..., S, DV) matching q (..., L, HD), got " +
                qkv_str(q, k, v));
  }
  AttentionArgs a;
  a.B = q.shape[0];
  a.NH = nd == 4 ? q.shape[1] : 1;
  a.L = q.shape[nd - 2];
  a.D = q.shape[nd - 1];
  a.S = k.shape[nd - 2];
  a.DV = v.shape[nd - 1];
  if (a.D < 1 || a.DV < 1) {
    arg_value_fail(
        op, "expected head dims of at least 1, got q " + shape_str(q.shape) + " and v " + shape_str(v.shape));
  }
  a.q = q.ptr<const float>();
  a.k = k.ptr<const float>();
  a.v = v.ptr<const float>();
  a.causal = causal;
  if (!scale) {
    a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.D)));
  } else {
    if (!std::isfinite(*scale)) arg_value_fail(op, "expected a finite scale, got " + std::to_string(*scale));
    a.scale = static_cast<float>(*scale);
  }
  if (mask.present) read_mask(op, mask, nd, &a);
  return a;
}

Shape lead_with(const ArrayRef& q, std::initializer_list<int64_t> tail) {
  Shape s(q.shape.begin(), q.shape.end() - 2);  // q's leading dims (B, NH) or (N,)
  s.insert(s.end(), tail);
  return s;
}

}  // namespace

Shape attention_out_shape(const ArrayRef& q, const AttentionArgs& a) { return lead_with(q, {a.L, a.DV}); }

Shape attention_lse_shape(const ArrayRef& q, const AttentionArgs& a) { return lead_with(q, {a.L}); }

AttentionArgs attention_forward_meta(const ArrayRef& q, const ArrayRef& k, const ArrayRef& v,
                                     const ArrayRef& mask, bool causal, std::optional<double> scale) {
  return inputs(kForward, q, k, v, mask, causal, scale);
}

AttentionArgs attention_backward_meta(const ArrayRef& dout, const ArrayRef& q, const ArrayRef& k,
                                      const ArrayRef& v, const ArrayRef& out, const ArrayRef& lse,
                                      const ArrayRef& mask, bool causal, std::optional<double> scale) {
  const char* op = kBackward;
  const AttentionArgs a = inputs(op, q, k, v, mask, causal, scale);
  check_f32(op, dout);
  check_f32(op, out);
  check_f32(op, lse);
  const Shape oshape = attention_out_shape(q, a), lshape = attention_lse_shape(q, a);
  if (dout.shape != oshape || out.shape != oshape) {
    arg_value_fail(op, "expected dout and out of shape " + shape_str(oshape) + ", got dout " +
                           shape_str(dout.shape) + " and out " + shape_str(out.shape));
  }
  if (lse.shape != lshape) {
    arg_value_fail(op, "expected lse of shape " + shape_str(lshape) + ", got " + shape_str(lse.shape));
  }
  return a;
}

}  // namespace fastnn
