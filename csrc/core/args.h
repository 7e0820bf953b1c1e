// The arguments of an op as its rules see them, on any device: an ArrayRef is what the checks
// need to know of an array (dtype, shape, layout, writeability, where its bytes are), read from
// a NumPy array by the CPU binding and from __cuda_array_interface__ by the CUDA one. The
// "meta" function of each op (declared in csrc/ops/<op>.h) takes ArrayRefs, applies every rule
// of the op and returns the op's shape struct; both bindings call it, so both devices accept
// the same arguments and refuse the others with the same words.
//
// Failures throw ArgError: kind Type maps to Python's TypeError, Value to ValueError (each
// module registers the translation), the message starts "fastnn.ops.<op>: ".
#pragma once
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "core/shape.h"

namespace fastnn {

enum class DType { Float32, Int64, Bool, Other };

struct ArrayRef {
  const char* name = "";  // the argument's name in messages
  uintptr_t data = 0;     // first byte (device or host)
  Shape shape;
  Shape strides;  // bytes from one element to the next along each dim
  DType dtype = DType::Other;
  const char* dtype_name = "";  // "float32", "int64", ... as NumPy spells it (static or interned)
  int64_t itemsize = 0;         // bytes per element
  bool contiguous = true;       // C order
  bool writeable = true;
  bool present = true;         // false: an optional argument left out (None)
  const char* kind = "array";  // what the binding's arrays are called ("numpy.ndarray")

  int ndim() const { return static_cast<int>(shape.size()); }
  int64_t numel() const;
  int64_t nbytes() const { return numel() * itemsize; }
  template <class T>
  T* ptr() const {
    return reinterpret_cast<T*>(data);
  }
};

class ArgError : public std::invalid_argument {
 public:
  enum Kind { Type, Value };
  ArgError(Kind kind, const std::string& what) : std::invalid_argument(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// Throw ArgError with "fastnn.ops.<op>: <what>".
[[noreturn]] void arg_type_fail(const char* op, const std::string& what);
[[noreturn]] void arg_value_fail(const char* op, const std::string& what);

std::string shape_str(const Shape& shape);  // "(2, 3)", "(4,)"

// A string that lives as long as the process, for an ArrayRef's dtype_name when it is none of
// the common names (those are string literals): one copy per distinct name, made once.
const char* interned(const std::string& s);

// a is float32 (TypeError) and C-contiguous (ValueError); an absent a is a TypeError.
void check_f32(const char* op, const ArrayRef& a);
// a is int64 (TypeError) and C-contiguous (ValueError); an absent a is a TypeError.
void check_i64(const char* op, const ArrayRef& a);
// a is float32, C-contiguous and of `ndim` dimensions; `layout` names them ("NCHW").
void check_f32_nd(const char* op, const ArrayRef& a, int ndim, const char* layout);
// The byte ranges of a and b intersect (both C-contiguous).
bool overlaps(const ArrayRef& a, const ArrayRef& b);

// A caller's output array (`out`, or another name): of dtype (float32 unless said), C-contiguous,
// writeable, of `shape`, sharing no memory with any input that is present; with in_place it may
// also be one of the inputs exactly (an elementwise update in place).
void check_out(const char* op, const ArrayRef& out, const Shape& shape,
               std::initializer_list<const ArrayRef*> inputs, DType dtype = DType::Float32,
               bool in_place = false);

}  // namespace fastnn
