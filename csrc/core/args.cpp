// The checks of csrc/core/args.h.
#include "core/args.h"

#include <mutex>
#include <unordered_set>

namespace fastnn {

int64_t ArrayRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void arg_type_fail(const char* op, const std::string& what) {
  throw ArgError(ArgError::Type, std::string("fastnn.ops.") + op + ": " + what);
}

void arg_value_fail(const char* op, const std::string& what) {
  throw ArgError(ArgError::Value, std::string("fastnn.ops.") + op + ": " + what);
}

std::string shape_str(const Shape& shape) {
  std::string s = "(";
  for (size_t d = 0; d < shape.size(); ++d) s += (d ? ", " : "") + std::to_string(shape[d]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

const char* interned(const std::string& s) {
  static std::mutex mu;
  static std::unordered_set<std::string> names;  // a node's string never moves
  const std::lock_guard<std::mutex> lock(mu);
  return names.insert(s).first->c_str();
}

namespace {

void check_dtype(const char* op, const ArrayRef& a, DType want, const char* want_name) {
  if (!a.present) {
    arg_type_fail(
        op, std::string("expected ") + a.name + " to be a " + a.kind + " of " + want_name + ", got NoneType");
  }
  if (a.dtype != want) {
    arg_type_fail(op, std::string("expected ") + a.name + " to be " + want_name + ", got " + a.dtype_name);
  }
  if (!a.contiguous) {
    arg_value_fail(op, std::string("expected ") + a.name +
                           " to be C-contiguous, got a strided array of shape " + shape_str(a.shape));
  }
}

}  // namespace

void check_f32(const char* op, const ArrayRef& a) { check_dtype(op, a, DType::Float32, "float32"); }
void check_i64(const char* op, const ArrayRef& a) { check_dtype(op, a, DType::Int64, "int64"); }

void check_f32_nd(const char* op, const ArrayRef& a, int ndim, const char* layout) {
  check_f32(op, a);
  if (a.ndim() != ndim) {
    arg_value_fail(op, std::string("expected ") + a.name + " to be " + std::to_string(ndim) + "-D (" +
                           layout + "), got shape " + shape_str(a.shape));
  }
}

bool overlaps(const ArrayRef& a, const ArrayRef& b) {
  if (!a.present || !b.present || a.nbytes() == 0 || b.nbytes() == 0) return false;
  const uintptr_t a1 = a.data + static_cast<uintptr_t>(a.nbytes());
  const uintptr_t b1 = b.data + static_cast<uintptr_t>(b.nbytes());
  return a.data < b1 && b.data < a1;
}

void check_out(const char* op, const ArrayRef& out, const Shape& shape,
               std::initializer_list<const ArrayRef*> inputs, DType dtype, bool in_place) {
  if (dtype == DType::Int64) {
    check_i64(op, out);
  } else {
    check_f32(op, out);
  }
  if (!out.writeable) {
    arg_value_fail(op, std::string("expected ") + out.name + " to be writeable, got a read-only array");
  }
  if (out.shape != shape) {
    arg_value_fail(op, std::string("expected ") + out.name + " of shape " + shape_str(shape) + ", got " +
                           shape_str(out.shape));
  }
  for (const ArrayRef* in : inputs) {
    if (in_place && in->present && in->data == out.data && in->nbytes() == out.nbytes()) continue;
    if (overlaps(out, *in)) {
      arg_value_fail(op, std::string("expected ") + out.name + " not to share memory with " + in->name +
                             ", got overlapping arrays");
    }
  }
}

}  // namespace fastnn
