// gemm's rules on every device: the 32-bit size limits and the meta function of csrc/ops/gemm.h
// (shapes, transposed views, batch broadcasting, c, bias, out), called by the CPU binding
// (csrc/bind/gemm.cpp) and the CUDA one (csrc/cuda/module.cpp) before either allocates or
// launches anything.
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "ops/gemm.h"

namespace fastnn {
namespace {

constexpr const char* kOp = "gemm";
constexpr int64_t kMax32 = std::numeric_limits<int32_t>::max();

[[noreturn]] void fail(const std::string& what) { arg_value_fail(kOp, what); }

Shape batch_dims(const ArrayRef& x) { return Shape(x.shape.begin(), x.shape.end() - 2); }

// numpy broadcasting of batch shapes; false if they do not broadcast.
bool broadcast(const Shape& x, const Shape& y, Shape* r) {
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
std::vector<int64_t> batch_offsets(const Shape& have, const Shape& full, int64_t mat) {
  const size_t n = full.size();
  Shape stride(n, 0);
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
  Shape idx(n, 0);
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

}  // namespace

void gemm_check_sizes(const GemmArgs& g) {
  if (g.M < 0 || g.N < 0 || g.K < 0) fail("sizes must be non-negative");
  if (g.M > kMax32 || g.N > kMax32 || g.K > kMax32 || g.M * g.K > kMax32 || g.K * g.N > kMax32 ||
      g.M * g.N > kMax32) {
    fail("expected every matrix to have at most 2^31-1 elements, got M=" + std::to_string(g.M) +
         " N=" + std::to_string(g.N) + " K=" + std::to_string(g.K));
  }
}

void gemm_operand_check(const ArrayRef& x) {
  if (x.dtype != DType::Float32) {
    arg_type_fail(kOp, std::string("expected ") + x.name + " to be float32, got " + x.dtype_name);
  }
  if (x.ndim() < 2) {
    fail(std::string("expected ") + x.name + " to have at least 2 dimensions, got shape " +
         shape_str(x.shape));
  }
  // Each matrix and the batch count within the 32-bit limits before anything is copied (a
  // strided input is made contiguous only after this: a broadcast view of 2^31 columns must not
  // become 8 GB first).
  const int64_t rows = x.shape[x.ndim() - 2], cols = x.shape[x.ndim() - 1];
  if (rows > kMax32 || cols > kMax32 || rows * cols > kMax32) {
    fail(std::string("expected ") + x.name + " to have at most 2^31-1 elements per matrix, got shape " +
         shape_str(x.shape));
  }
  int64_t items = 1;
  for (int i = 0; i < x.ndim() - 2; ++i) {
    if (x.shape[i] != 0 && items > kMax32 / x.shape[i]) {
      fail(std::string("expected the batch of ") + x.name + " to have at most 2^31-1 matrices, got shape " +
           shape_str(x.shape));
    }
    items *= x.shape[i];
  }
}

bool gemm_transposed_view(ArrayRef* x, bool* trans) {
  if (x->contiguous || x->strides.size() != x->shape.size()) return false;
  Shape shape = x->shape, strides = x->strides;
  const size_t n = shape.size();
  std::swap(shape[n - 1], shape[n - 2]);
  std::swap(strides[n - 1], strides[n - 2]);
  int64_t step = x->itemsize;
  for (size_t d = n; d-- > 0;) {
    if (shape[d] != 1 && strides[d] != step) return false;
    step *= shape[d];
  }
  x->shape = shape;
  x->strides = strides;
  x->contiguous = true;
  *trans = !*trans;
  return true;
}

GemmCall gemm_meta(const ArrayRef& a, bool trans_a, const ArrayRef& b, bool trans_b, const ArrayRef& c,
                   const ArrayRef& out, float alpha, float beta, const ArrayRef& bias,
                   const std::string* activation) {
  gemm_operand_check(a);
  gemm_operand_check(b);
  check_f32(kOp, a);
  check_f32(kOp, b);
  const int64_t ar = a.shape[a.ndim() - 2], ac = a.shape[a.ndim() - 1];
  const int64_t br = b.shape[b.ndim() - 2], bc = b.shape[b.ndim() - 1];
  GemmCall call;
  GemmArgs& g = call.g;
  g.M = trans_a ? ac : ar;
  g.K = trans_a ? ar : ac;
  const int64_t K2 = trans_b ? bc : br;
  g.N = trans_b ? br : bc;
  if (g.K != K2) {
    fail("expected op(a) (M, K) and op(b) (K, N) to agree on K, got op(a) (" + std::to_string(g.M) + ", " +
         std::to_string(g.K) + ") and op(b) (" + std::to_string(K2) + ", " + std::to_string(g.N) + ")");
  }
  gemm_check_sizes(g);
  const auto a_batch = batch_dims(a), b_batch = batch_dims(b);
  Shape batch;
  if (!broadcast(a_batch, b_batch, &batch)) {
    fail("expected broadcastable batch dimensions, got a " + shape_str(a.shape) + " and b " +
         shape_str(b.shape));
  }
  call.out_shape = batch;
  call.out_shape.push_back(g.M);
  call.out_shape.push_back(g.N);

  if (activation && *activation == "relu") {
    g.act = Activation::Relu;
  } else if (activation && *activation != "none") {
    fail("expected activation to be None, 'none' or 'relu', got '" + *activation + "'");
  }
  if (bias.present) {
    check_f32(kOp, bias);
    if (bias.shape != Shape{g.N}) {
      fail("expected bias of shape (" + std::to_string(g.N) + ",), got " + shape_str(bias.shape));
    }
  }
  if (out.present) check_out(kOp, out, call.out_shape, {&a, &b, &bias});

  // c: the addend; defaults to out itself when out is given (BLAS-style C = alpha*AB + beta*C).
  bool has_c = c.present;
  Shape c_batch;
  if (c.present) {
    check_f32(kOp, c);
    Shape cb;
    if (c.ndim() < 2 || c.shape[c.ndim() - 2] != g.M || c.shape[c.ndim() - 1] != g.N ||
        !broadcast(batch_dims(c), batch, &cb) || cb != batch) {
      fail("expected c of shape " + shape_str(call.out_shape) + " (or broadcastable to it), got " +
           shape_str(c.shape));
    }
    c_batch = batch_dims(c);
    const bool same = out.present && c.data == out.data && c.shape == call.out_shape;
    if (out.present && !same && overlaps(out, c)) {
      fail("expected out not to share memory with c, got overlapping arrays");
    }
  } else if (out.present) {
    has_c = true;
    call.c_from_out = true;
    c_batch = batch;
  }
  if (beta != 0.0f && !has_c) fail("beta=" + std::to_string(beta) + " needs c (or out) to scale and add");

  g.lda = ac;
  g.trans_a = trans_a;
  g.ldb = bc;
  g.trans_b = trans_b;
  g.ldc = g.N;
  g.alpha = alpha;
  g.beta = beta;
  call.a_off = batch_offsets(a_batch, batch, g.M * g.K);
  call.b_off = batch_offsets(b_batch, batch, g.K * g.N);
  call.uses_c = has_c && beta != 0.0f;
  if (call.uses_c) call.c_off = batch_offsets(c_batch, batch, g.M * g.N);
  return call;
}

}  // namespace fastnn
