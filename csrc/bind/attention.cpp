// Binding of scaled_dot_product_attention_forward / backward: argument checks with the GIL held
// (float32 C-contiguous q, k, v of 3 (N, L, HD) or 4 (B, NH, L, HD) dims, a bool or float32 mask
// broadcastable to (B, NH, L, S), read through its own strides; causal and a mask together
// refused, as torch does), then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/threads.h"
#include "ops/attention.h"

namespace fastnn::bind {
namespace {

struct Inputs {
  py::array q, k, v, mask;
  AttentionArgs a;
  std::vector<int64_t> lead;  // q's leading dims (B, NH) or (N,)
};

Inputs inputs(const char* op, py::handle q_obj, py::handle k_obj, py::handle v_obj, py::handle mask_obj,
              bool causal, py::handle scale_obj) {
  Inputs in;
  in.q = f32_array(op, "q", q_obj);
  in.k = f32_array(op, "k", k_obj);
  in.v = f32_array(op, "v", v_obj);
  const int64_t nd = in.q.ndim();
  if (nd != 3 && nd != 4) {
    value_fail(op, "expected q of shape (B, NH, L, HD) or (N, L, HD), got " + shape_str(in.q));
  }
  if (in.k.ndim() != nd || in.v.ndim() != nd) {
    value_fail(op, "expected q, k and v of the same rank, got q " + shape_str(in.q) + ", k " +
                       shape_str(in.k) + ", v " + shape_str(in.v));
  }
  bool ok = in.k.shape(nd - 1) == in.q.shape(nd - 1) && in.v.shape(nd - 2) == in.k.shape(nd - 2);
  for (int64_t d = 0; d < nd - 2; ++d)
    ok = ok && in.k.shape(d) == in.q.shape(d) && in.v.shape(d) == in.q.shape(d);
  if (!ok) {
    value_fail(
        op, "expected k of shape (..., S, HD) and v of shape (..., S, DV) matching q (..., L, HD), got q " +
                shape_str(in.q) + ", k " + shape_str(in.k) + ", v " + shape_str(in.v));
  }
  AttentionArgs& a = in.a;
  a.B = in.q.shape(0);
  a.NH = nd == 4 ? in.q.shape(1) : 1;
  a.L = in.q.shape(nd - 2);
  a.D = in.q.shape(nd - 1);
  a.S = in.k.shape(nd - 2);
  a.DV = in.v.shape(nd - 1);
  in.lead.assign(in.q.shape(), in.q.shape() + nd - 2);
  if (a.D < 1 || a.DV < 1) {
    value_fail(op,
               "expected head dims of at least 1, got q " + shape_str(in.q) + " and v " + shape_str(in.v));
  }
  a.q = static_cast<const float*>(in.q.data());
  a.k = static_cast<const float*>(in.k.data());
  a.v = static_cast<const float*>(in.v.data());
  a.causal = causal;
  if (scale_obj.is_none()) {
    a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.D)));
  } else {
    if (!py::isinstance<py::float_>(scale_obj) && !py::isinstance<py::int_>(scale_obj)) {
      type_fail(op, "expected scale to be None or a float, got " +
                        std::string(py::str(py::type::of(scale_obj).attr("__name__"))));
    }
    const double s = scale_obj.cast<double>();
    if (!std::isfinite(s)) value_fail(op, "expected a finite scale, got " + std::to_string(s));
    a.scale = static_cast<float>(s);
  }
  if (mask_obj.is_none()) return in;
  if (causal) {
    value_fail(
        op, "expected attn_mask=None with is_causal=True (they cannot be combined, as in torch), got a mask");
  }
  if (!py::isinstance<py::array>(mask_obj)) {
    type_fail(op, "expected attn_mask to be None or a numpy.ndarray of bool or float32, got " +
                      std::string(py::str(py::type::of(mask_obj).attr("__name__"))));
  }
  in.mask = py::reinterpret_borrow<py::array>(mask_obj);
  const py::array& m = in.mask;
  if (m.dtype().equal(py::dtype::of<bool>())) {
    a.mask_kind = AttnMask::Bool;
  } else if (m.dtype().equal(py::dtype::of<float>())) {
    a.mask_kind = AttnMask::Float;
  } else {
    type_fail(op, "expected attn_mask of dtype bool or float32, got " + std::string(py::str(m.dtype())));
  }
  // right-aligned against (B, NH, L, S): each dim 1 (stride 0) or equal (its own stride)
  const std::vector<int64_t> full = {a.B, a.NH, a.L, a.S};
  std::vector<int64_t> target(full.begin() + (nd == 3 ? 0 : 0), full.end());
  if (nd == 3) target = {a.B, a.L, a.S};
  const int64_t mnd = m.ndim();
  const int64_t item = static_cast<int64_t>(m.itemsize());
  std::vector<int64_t> stride(4, 0);  // b, h, i, j
  bool fits = mnd <= nd;
  for (int64_t d = 0; fits && d < mnd; ++d) {
    const int64_t td = nd - mnd + d;  // the dim of target it aligns with
    const int64_t n = m.shape(d);
    if (n != 1 && n != target[td]) fits = false;
    if (n != 1 && m.strides(d) % item != 0) fits = false;
    const int64_t s = n == 1 ? 0 : m.strides(d) / item;
    const int64_t slot = nd == 4 ? td : (td == 0 ? 0 : td + 1);  // 3-D: (N, L, S) -> b, i, j
    stride[slot] = s;
  }
  if (!fits) {
    value_fail(op,
               "expected attn_mask broadcastable to " + shape_str(target) + ", got shape " + shape_str(m));
  }
  a.mask = m.data();
  a.msb = stride[0];
  a.msh = stride[1];
  a.msl = stride[2];
  a.mss = stride[3];
  return in;
}

std::vector<int64_t> with(std::vector<int64_t> lead, std::initializer_list<int64_t> tail) {
  lead.insert(lead.end(), tail);
  return lead;
}

py::tuple sdpa_fwd(py::handle q, py::handle k, py::handle v, py::handle mask, bool causal, py::handle scale,
                   py::handle isa_obj) {
  const char* op = "scaled_dot_product_attention_forward";
  const Isa isa = isa_arg(op, isa_obj);
  Inputs in = inputs(op, q, k, v, mask, causal, scale);
  const AttentionArgs& a = in.a;
  py::array out = new_array<float>(with(in.lead, {a.L, a.DV}));
  py::array lse = new_array<float>(with(in.lead, {a.L}));
  float* op_ = static_cast<float*>(out.mutable_data());
  float* lp = static_cast<float*>(lse.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    attention_forward(a, op_, lp, isa, nt);
  }
  return py::make_tuple(out, lse);
}

py::tuple sdpa_bwd(py::handle dout_obj, py::handle q, py::handle k, py::handle v, py::handle out_obj,
                   py::handle lse_obj, py::handle mask, bool causal, py::handle scale, py::handle isa_obj) {
  const char* op = "scaled_dot_product_attention_backward";
  const Isa isa = isa_arg(op, isa_obj);
  Inputs in = inputs(op, q, k, v, mask, causal, scale);
  const AttentionArgs& a = in.a;
  py::array dout = f32_array(op, "dout", dout_obj);
  py::array out = f32_array(op, "out", out_obj);
  py::array lse = f32_array(op, "lse", lse_obj);
  const std::vector<int64_t> oshape = with(in.lead, {a.L, a.DV}), lshape = with(in.lead, {a.L});
  if (shape_of(dout) != oshape || shape_of(out) != oshape) {
    value_fail(op, "expected dout and out of shape " + shape_str(oshape) + ", got dout " + shape_str(dout) +
                       " and out " + shape_str(out));
  }
  if (shape_of(lse) != lshape)
    value_fail(op, "expected lse of shape " + shape_str(lshape) + ", got " + shape_str(lse));
  py::array dq = new_array<float>(shape_of(in.q)), dk = new_array<float>(shape_of(in.k)),
            dv = new_array<float>(shape_of(in.v));
  const float* g = static_cast<const float*>(dout.data());
  const float* o = static_cast<const float*>(out.data());
  const float* l = static_cast<const float*>(lse.data());
  float* dqp = static_cast<float*>(dq.mutable_data());
  float* dkp = static_cast<float*>(dk.mutable_data());
  float* dvp = static_cast<float*>(dv.mutable_data());
  const int nt = get_num_threads();
  {
    py::gil_scoped_release release;
    if (a.L == 0) {  // no queries: nothing reaches k or v
      std::fill(dkp, dkp + a.B * a.NH * a.S * a.D, 0.0f);
      std::fill(dvp, dvp + a.B * a.NH * a.S * a.DV, 0.0f);
    } else {
      attention_backward(a, g, o, l, dqp, dkp, dvp, isa, nt);
    }
  }
  return py::make_tuple(dq, dk, dv);
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("scaled_dot_product_attention_forward", &sdpa_fwd, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("attn_mask") = py::none(), py::arg("is_causal") = false, py::arg("scale") = py::none(),
        py::arg("isa") = py::none(),
        "(out, lse) of fused attention; see fastnn.ops.scaled_dot_product_attention_forward.");
  m.def("scaled_dot_product_attention_backward", &sdpa_bwd, py::arg("dout"), py::arg("q"), py::arg("k"),
        py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("attn_mask") = py::none(),
        py::arg("is_causal") = false, py::arg("scale") = py::none(), py::arg("isa") = py::none(),
        "(dq, dk, dv) of fused attention; see fastnn.ops.scaled_dot_product_attention_backward.");
}

}  // namespace fastnn::bind
