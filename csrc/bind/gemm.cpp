// Binding of gemm: gemm's meta function (csrc/ops/gemm_meta.cpp, shared with the CUDA binding)
// with the GIL held, output allocation, then the batched kernel with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/cpu.h"
#include "core/threads.h"
#include "ops/gemm.h"

namespace fastnn::bind {
namespace {

// An input matrix operand: a float32 NumPy array with at least 2 dimensions; a transposed view
// (x.T, x.mT) is read in place with its transpose flag flipped, other strided inputs are copied to
// C order (inputs only: outputs are never copied).
NpArg operand(const char* op, const char* name, py::handle obj, bool* trans) {
  NpArg x(op, name, obj);
  gemm_operand_check(x.ref);
  if (!x.ref.contiguous && !gemm_transposed_view(&x.ref, trans)) {
    x.array = py::array::ensure(x.array, py::array::c_style);
    x.ref = ref_of(x.array, name);
  }
  return x;
}

py::array gemm_py(py::handle a_obj, py::handle b_obj, py::handle c_obj, py::handle out_obj, bool trans_a,
                  bool trans_b, float alpha, float beta, py::handle bias_obj, py::handle activation,
                  py::handle isa_obj) {
  const char* op = "gemm";
  const Isa isa = isa_arg(op, isa_obj);
  const NpArg a = operand(op, "a", a_obj, &trans_a), b = operand(op, "b", b_obj, &trans_b);
  const NpArg c(op, "c", c_obj), bias(op, "bias", bias_obj), given(op, "out", out_obj);
  std::string act_name;
  if (!activation.is_none()) act_name = py::str(activation);
  const GemmCall call = gemm_meta(a.ref, trans_a, b.ref, trans_b, c.ref, given.ref, alpha, beta, bias.ref,
                                  activation.is_none() ? nullptr : &act_name);
  py::array out = given.present() ? given.array : py::array(new_array<float>(op, call.out_shape));
  GemmArgs g = call.g;
  g.a = a.ref.ptr<const float>();
  g.b = b.ref.ptr<const float>();
  g.out = static_cast<float*>(out.mutable_data());
  g.c = !call.uses_c ? nullptr : call.c_from_out ? g.out : c.ref.ptr<const float>();
  g.bias = bias.ref.ptr<const float>();
  const int64_t nbatch = static_cast<int64_t>(call.a_off.size());
  const int nthreads = get_num_threads();
  run_kernel(op, [&] { gemm_batched(g, nbatch, call.a_off, call.b_off, call.c_off, isa, nthreads); });
  return out;
}

py::dict tile_info(const std::string& name) {
  Isa isa;
  if (!isa_from_name(name, &isa)) value_fail("gemm", "unknown isa '" + name + "'");
  const GemmTile t = gemm_tile(isa);
  py::dict d;
  d["mr"] = t.mr;
  d["nr"] = t.nr;
  d["kc"] = t.kc;
  d["mc"] = t.mc;
  d["nc"] = t.nc;
  return d;
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm_tile", &tile_info, py::arg("isa"), "Blocking of the gemm micro-kernel for an ISA.");
  m.def("gemm", &gemm_py, py::arg("a"), py::arg("b"), py::arg("c") = py::none(), py::arg("out") = py::none(),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0f,
        py::arg("beta") = 0.0f, py::arg("bias") = py::none(), py::arg("activation") = py::none(),
        py::arg("isa") = py::none(),
        "out = act(alpha * op(a) @ op(b) + beta * c + bias); see fastnn.ops.gemm.");
}

}  // namespace fastnn::bind
