// Binding of scaled_dot_product_attention_forward / backward: the rules are attention's meta
// functions (csrc/ops/attention_meta.cpp, shared with the CUDA binding; a bool or float32 mask
// broadcastable to (B, NH, L, S) is read through its own strides), applied with the GIL held,
// then the kernel without it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "bind/py_args.h"
#include "core/threads.h"
#include "ops/attention.h"

namespace fastnn::bind {
namespace {

// attn_mask: None or a NumPy array (its dtype and shape are the meta function's rules).
NpArg mask_arg(const char* op, py::handle obj) {
  if (!obj.is_none() && !py::isinstance<py::array>(obj)) {
    type_fail(op,
              "expected attn_mask to be None or a numpy.ndarray of bool or float32, got " + type_name(obj));
  }
  return NpArg(op, "attn_mask", obj);
}

py::tuple sdpa_fwd(py::handle q_obj, py::handle k_obj, py::handle v_obj, py::handle mask_obj, bool causal,
                   py::handle scale, py::handle isa_obj) {
  const char* op = "scaled_dot_product_attention_forward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg q(op, "q", q_obj), k(op, "k", k_obj), v(op, "v", v_obj), mask = mask_arg(op, mask_obj);
  const AttentionArgs a = attention_forward_meta(q.ref, k.ref, v.ref, mask.ref, causal, scale_arg(op, scale));
  py::array out = new_array<float>(op, attention_out_shape(q.ref, a));
  py::array lse = new_array<float>(op, attention_lse_shape(q.ref, a));
  float* op_ = static_cast<float*>(out.mutable_data());
  float* lp = static_cast<float*>(lse.mutable_data());
  const int nt = get_num_threads();
  run_kernel(op, [&] { attention_forward(a, op_, lp, isa, nt); });
  return py::make_tuple(out, lse);
}

py::tuple sdpa_bwd(py::handle dout_obj, py::handle q_obj, py::handle k_obj, py::handle v_obj,
                   py::handle out_obj, py::handle lse_obj, py::handle mask_obj, bool causal, py::handle scale,
                   py::handle isa_obj) {
  const char* op = "scaled_dot_product_attention_backward";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg dout(op, "dout", dout_obj), q(op, "q", q_obj), k(op, "k", k_obj), v(op, "v", v_obj),
      out(op, "out", out_obj), lse(op, "lse", lse_obj), mask = mask_arg(op, mask_obj);
  const AttentionArgs a = attention_backward_meta(dout.ref, q.ref, k.ref, v.ref, out.ref, lse.ref, mask.ref,
                                                  causal, scale_arg(op, scale));
  py::array dq = new_array<float>(op, q.ref.shape), dk = new_array<float>(op, k.ref.shape),
            dv = new_array<float>(op, v.ref.shape);
  const float* g = dout.ref.ptr<const float>();
  const float* o = out.ref.ptr<const float>();
  const float* l = lse.ref.ptr<const float>();
  float* dqp = static_cast<float*>(dq.mutable_data());
  float* dkp = static_cast<float*>(dk.mutable_data());
  float* dvp = static_cast<float*>(dv.mutable_data());
  const int nt = get_num_threads();
  run_kernel(op, [&] {
    if (a.L == 0) {  // no queries: nothing reaches k or v
      std::fill(dkp, dkp + a.B * a.NH * a.S * a.D, 0.0f);
      std::fill(dvp, dvp + a.B * a.NH * a.S * a.DV, 0.0f);
    } else {
      attention_backward(a, g, o, l, dqp, dkp, dvp, isa, nt);
    }
  });
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
