// Binding of gemm: argument checks (GIL held), output allocation, batch broadcasting, then the
// kernel with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
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

std::vector<int64_t> dims(const py::array& x, py::ssize_t from, py::ssize_t to) {
  std::vector<int64_t> v;
  for (py::ssize_t d = from; d < to; ++d) v.push_back(x.shape(d));
  return v;
}

// numpy broadcasting of batch shapes; false if they do not broadcast.
bool broadcast(const std::vector<int64_t>& x, const std::vector<int64_t>& y, std::vector<int64_t>* r) {
  const size_t n = std::max(x.size(), y.size());
  r->assign(n, 1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t a = i < n - x.size() ? 1 : x[i - (n - x.size())];
    const int64_t b = i < n - y.size() ? 1 : y[i - (n - y.size())];
    if (a != b && a != 1 && b != 1) return false;
    (*r)[i] = a == 1 ? b : a;
  }
  return true;
}

// Element offset of each batch item of an operand with batch shape `have` (broadcast to `full`)
// and matrix size `mat` elements.
std::vector<int64_t> batch_offsets(const std::vector<int64_t>& have, const std::vector<int64_t>& full,
                                   int64_t mat) {
  const size_t n = full.size();
  std::vector<int64_t> stride(n, 0);
  int64_t s = mat;
  for (size_t i = n; i-- > 0;) {
    const size_t k = i + have.size();  // index into `have`, aligned right
    const int64_t d = k >= n ? have[k - n] : 1;
    stride[i] = d == 1 ? 0 : s;
    s *= d;
  }
  int64_t count = 1;
  for (int64_t d : full) count *= d;
  std::vector<int64_t> off(count, 0);
  std::vector<int64_t> idx(n, 0);
  for (int64_t b = 0, o = 0; b < count; ++b) {
    off[b] = o;
    for (size_t i = n; i-- > 0;) {  // odometer increment
      o += stride[i];
      if (++idx[i] < full[i]) break;
      o -= stride[i] * full[i];
      idx[i] = 0;
    }
  }
  return off;
}

// An input matrix operand: float32 with at least 2 dimensions. A view whose last two axes are
// swapped relative to C order (x.T, x.mT) becomes the flipped transpose flag, not a copy; other
// strided inputs are copied to C order (inputs only: outputs are never copied).
py::array operand(const char* op, const char* name, py::handle obj, bool* trans) {
  if (!py::isinstance<py::array>(obj)) {
    type_fail(op, std::string("expected ") + name + " to be a numpy.ndarray of float32, got " +
                      std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::array x = py::reinterpret_borrow<py::array>(obj);
  if (!x.dtype().equal(py::dtype::of<float>())) {
    type_fail(op, std::string("expected ") + name + " to be float32, got " + std::string(py::str(x.dtype())));
  }
  if (x.ndim() < 2) {
    value_fail(op,
               std::string("expected ") + name + " to have at least 2 dimensions, got shape " + shape_str(x));
  }
  if (x.flags() & py::array::c_style) return x;
  py::array xt = x.attr("swapaxes")(-1, -2);
  if (xt.flags() & py::array::c_style) {
    *trans = !*trans;
    return xt;
  }
  return py::array::ensure(x, py::array::c_style);
}

py::array gemm_py(py::handle a_obj, py::handle b_obj, py::handle c_obj, py::handle out_obj, bool trans_a,
                  bool trans_b, float alpha, float beta, py::handle bias_obj, py::handle activation,
                  py::handle isa_obj) {
  const char* op = "gemm";
  const Isa isa = isa_arg(op, isa_obj);
  py::array a = operand(op, "a", a_obj, &trans_a), b = operand(op, "b", b_obj, &trans_b);
  const int64_t ar = a.shape(a.ndim() - 2), ac = a.shape(a.ndim() - 1);
  const int64_t br = b.shape(b.ndim() - 2), bc = b.shape(b.ndim() - 1);
  const int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
  const int64_t K2 = trans_b ? bc : br, N = trans_b ? br : bc;
  if (K != K2) {
    value_fail(op, "expected op(a) (M, K) and op(b) (K, N) to agree on K, got op(a) (" + std::to_string(M) +
                       ", " + std::to_string(K) + ") and op(b) (" + std::to_string(K2) + ", " +
                       std::to_string(N) + ")");
  }
  GemmArgs g;
  g.M = M;
  g.N = N;
  g.K = K;
  gemm_check_sizes(g);  // ValueError on sizes past 32 bits, before anything is allocated
  const auto a_batch = dims(a, 0, a.ndim() - 2), b_batch = dims(b, 0, b.ndim() - 2);
  std::vector<int64_t> batch;
  if (!broadcast(a_batch, b_batch, &batch)) {
    value_fail(op,
               "expected broadcastable batch dimensions, got a " + shape_str(a) + " and b " + shape_str(b));
  }
  std::vector<int64_t> out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);

  Activation act = Activation::None;
  if (!activation.is_none()) {
    const std::string name = py::str(activation);
    if (name == "relu") {
      act = Activation::Relu;
    } else if (name != "none") {
      value_fail(op, "expected activation to be None, 'none' or 'relu', got '" + name + "'");
    }
  }

  std::optional<py::array> bias;
  if (!bias_obj.is_none()) {
    bias = f32_array(op, "bias", bias_obj);
    if (bias->ndim() != 1 || bias->shape(0) != N) {
      value_fail(op, "expected bias of shape (" + std::to_string(N) + ",), got " + shape_str(*bias));
    }
  }

  py::array out = bias ? out_or_new(op, out_obj, out_shape, {{"a", &a}, {"b", &b}, {"bias", &*bias}})
                       : out_or_new(op, out_obj, out_shape, {{"a", &a}, {"b", &b}});

  // C: the addend; defaults to out itself when out is given (BLAS-style C = alpha*AB + beta*C).
  std::optional<py::array> c;
  if (!c_obj.is_none()) {
    c = f32_array(op, "c", c_obj);
    std::vector<int64_t> cb;
    if (c->ndim() < 2 || c->shape(c->ndim() - 2) != M || c->shape(c->ndim() - 1) != N ||
        !broadcast(dims(*c, 0, c->ndim() - 2), batch, &cb) || cb != batch) {
      value_fail(op, "expected c of shape " + shape_str(out_shape) + " (or broadcastable to it), got " +
                         shape_str(*c));
    }
    const bool same =
        c->data() == out.data() && c->ndim() == out.ndim() && dims(*c, 0, c->ndim()) == out_shape;
    if (!same) require_no_overlap(op, "out", out, "c", *c);
  } else if (!out_obj.is_none()) {
    c = out;
  }
  if (beta != 0.0f && !c)
    value_fail(op, "beta=" + std::to_string(beta) + " needs c (or out) to scale and add");

  g.a = static_cast<const float*>(a.data());
  g.lda = ac;
  g.trans_a = trans_a;
  g.b = static_cast<const float*>(b.data());
  g.ldb = bc;
  g.trans_b = trans_b;
  g.out = static_cast<float*>(out.mutable_data());
  g.ldc = N;
  g.c = (c && beta != 0.0f) ? static_cast<const float*>(c->data()) : nullptr;
  g.alpha = alpha;
  g.beta = beta;
  g.bias = bias ? static_cast<const float*>(bias->data()) : nullptr;
  g.act = act;
  const auto a_off = batch_offsets(a_batch, batch, M * K);
  const auto b_off = batch_offsets(b_batch, batch, K * N);
  std::vector<int64_t> c_off;
  if (g.c) c_off = batch_offsets(dims(*c, 0, c->ndim() - 2), batch, M * N);
  const int64_t nbatch = static_cast<int64_t>(a_off.size());
  const int nthreads = get_num_threads();
  {
    py::gil_scoped_release release;
    gemm_batched(g, nbatch, a_off, b_off, c_off, isa, nthreads);
  }
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
