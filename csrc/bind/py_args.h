// Python arguments that are not arrays, read the same way by every module (fastnn._core and
// fastnn._cuda): ints or pairs as torch's _pair takes them, strict bools, pooling's options,
// attention's scale and lists of arrays. Failures are ArgError (TypeError / ValueError naming the op).
#pragma once
#include <pybind11/pybind11.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/args.h"
#include "ops/act.h"
#include "ops/pool2d.h"

namespace fastnn::bind {

inline std::string type_name(pybind11::handle obj) {
  return pybind11::str(pybind11::type::of(obj).attr("__name__"));
}

inline bool is_int(pybind11::handle obj) {  // int or numpy integer, not bool
  return !pybind11::isinstance<pybind11::bool_>(obj) &&
         (pybind11::isinstance<pybind11::int_>(obj) || pybind11::hasattr(obj, "__index__"));
}

// The value of an int (a Python int, or an object with __index__) as int64. One outside int64 is
// the op's ValueError: pybind11's cast<int64_t> would raise a RuntimeError naming nothing. An
// __index__ that refuses (a NumPy array of several ints, or of floats) is the op's TypeError.
inline int64_t int64_value(const char* op, const char* name, pybind11::handle obj) {
  namespace py = pybind11;
  py::object v = py::reinterpret_borrow<py::object>(obj);
  if (!py::isinstance<py::int_>(obj)) {
    try {
      v = v.attr("__index__")();
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError)) throw;
      arg_type_fail(op, std::string("expected ") + name + " to be an int, got " + type_name(obj));
    }
  }
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (overflow != 0) {
    arg_value_fail(op, std::string("expected ") + name + " to fit in int64, got " + std::string(py::str(v)));
  }
  if (x == -1 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<int64_t>(x);
}

// An int (both sides) or a sequence of two ints, as torch's _pair.
inline std::pair<int64_t, int64_t> pair_arg(const char* op, const char* name, pybind11::handle obj) {
  namespace py = pybind11;
  auto index = [op, name](py::handle v) { return int64_value(op, name, v); };
  if (is_int(obj)) {
    const int64_t v = index(obj);
    return {v, v};
  }
  if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    py::sequence s = py::reinterpret_borrow<py::sequence>(obj);
    if (s.size() == 2 && is_int(s[0]) && is_int(s[1])) return {index(s[0]), index(s[1])};
    if (s.size() != 2) {
      arg_value_fail(op, std::string("expected ") + name + " to be an int or a pair of ints, got " +
                             std::to_string(s.size()) + " values");
    }
  }
  arg_type_fail(op,
                std::string("expected ") + name + " to be an int or a pair of ints, got " + type_name(obj));
}

inline bool bool_arg(const char* op, const char* name, pybind11::handle obj) {
  if (!pybind11::isinstance<pybind11::bool_>(obj)) {
    arg_type_fail(op, std::string("expected ") + name + " to be a bool, got " + type_name(obj));
  }
  return obj.cast<bool>();
}

// A list argument of arrays (a list or a tuple; None where optional): element i read by Arg
// (bind/arrays.h's NpArg, cuda/args.h's DevArg) under the name "<name>[i]", which its ArrayRef
// keeps. Arg provides Arg::read(op, name, obj, &ref) (obj's ArrayRef; obj is not None),
// Arg::refuse(op, name, obj) (its TypeError for what is not an array, None included) and
// Arg::kList (the kind of arrays in this TypeError). Per call: one tuple of the elements (none
// for a tuple), one buffer of names and the refs.
template <class Arg>
class ArrayList {
 public:
  ArrayList(const char* op, const char* name, pybind11::handle obj, bool optional = false) {
    namespace py = pybind11;
    if (optional && obj.is_none()) {
      present_ = false;
      return;
    }
    if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) {
      arg_type_fail(op, std::string("expected ") + name + " to be a list of " + Arg::kList + " arrays, got " +
                            type_name(obj));
    }
    // The elements as they are now, kept alive while the kernel runs without the GIL (another
    // thread may change the list meanwhile).
    items_ = py::reinterpret_steal<py::tuple>(PySequence_Tuple(obj.ptr()));
    if (!items_) throw py::error_already_set();
    const size_t n = items_.size(), len = std::strlen(name);
    constexpr size_t kIndexChars = 23;  // "[", at most 20 digits, "]", NUL
    labels_.reset(new char[n * (len + kIndexChars)]);
    refs_.resize(n);
    char* label = labels_.get();
    for (size_t i = 0; i < n; ++i) {
      char* p = std::copy(name, name + len, label);
      *p++ = '[';
      p = std::to_chars(p, p + 20, i).ptr;
      *p++ = ']';
      *p++ = '\0';
      const py::handle item = PyTuple_GET_ITEM(items_.ptr(), static_cast<py::ssize_t>(i));
      if (item.is_none()) Arg::refuse(op, label, item);
      Arg::read(op, label, item, &refs_[i]);
      label = p;
    }
  }
  ArrayList(const ArrayList&) = delete;
  ArrayList& operator=(const ArrayList&) = delete;

  // The elements' ArrayRefs (valid while this list lives); null for an optional list left out.
  const std::vector<ArrayRef>* refs() const { return present_ ? &refs_ : nullptr; }

 private:
  bool present_ = true;
  pybind11::tuple items_ = pybind11::reinterpret_steal<pybind11::tuple>(pybind11::handle());
  std::unique_ptr<char[]> labels_;  // "<name>[i]" one after the other: the refs' names
  std::vector<ArrayRef> refs_;
};

// Pooling's options (kernel_size, stride: None for the kernel's, padding, dilation, ceil_mode)
// in a Pool2dShape whose sizes the meta function fills from the input.
inline Pool2dShape pool2d_params(const char* op, pybind11::handle kernel, pybind11::handle stride,
                                 pybind11::handle padding, pybind11::handle dilation,
                                 pybind11::handle ceil_mode) {
  Pool2dShape s;
  std::tie(s.KH, s.KW) = pair_arg(op, "kernel_size", kernel);
  if (stride.is_none()) {
    s.SH = s.KH, s.SW = s.KW;
  } else {
    std::tie(s.SH, s.SW) = pair_arg(op, "stride", stride);
  }
  std::tie(s.PH, s.PW) = pair_arg(op, "padding", padding);
  std::tie(s.DH, s.DW) = pair_arg(op, "dilation", dilation);
  s.ceil_mode = bool_arg(op, "ceil_mode", ceil_mode);
  return s;
}

// An int or a sequence of ints (layer norm's normalized_shape), as a shape.
inline Shape int_list_arg(const char* op, const char* name, pybind11::handle obj) {
  namespace py = pybind11;
  Shape s;
  if (is_int(obj)) {
    s.push_back(int64_value(op, name, obj));
  } else if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    for (py::handle h : py::reinterpret_borrow<py::sequence>(obj)) {
      if (!is_int(h)) {
        arg_type_fail(op, std::string("expected ") + name +
                              " to be an int or a sequence of ints, got an element of type " + type_name(h));
      }
      s.push_back(int64_value(op, name, h));
    }
  } else {
    arg_type_fail(
        op, std::string("expected ") + name + " to be an int or a sequence of ints, got " + type_name(obj));
  }
  return s;
}

// None or an int (embedding's padding_idx): *given says which.
inline int64_t optional_int_arg(const char* op, const char* name, pybind11::handle obj, bool* given) {
  *given = !obj.is_none();
  if (!*given) return 0;
  if (!is_int(obj)) {  // not a bool
    arg_type_fail(op, std::string("expected ") + name + " to be None or an int, got " + type_name(obj));
  }
  return int64_value(op, name, obj);
}

// leaky_relu's negative_slope: a float or an int.
inline float slope_arg(const char* op, pybind11::handle obj) {
  if (!pybind11::isinstance<pybind11::float_>(obj) && !pybind11::isinstance<pybind11::int_>(obj)) {
    arg_type_fail(op, "expected negative_slope to be a float, got " + type_name(obj));
  }
  return obj.cast<float>();
}

// gelu's approximate: 'none' (erf) or 'tanh'.
inline ActKind gelu_kind_arg(const char* op, pybind11::handle approximate) {
  if (pybind11::isinstance<pybind11::str>(approximate)) {
    const std::string a = approximate.cast<std::string>();
    if (a == "none") return ActKind::Gelu;
    if (a == "tanh") return ActKind::GeluTanh;
    arg_value_fail(op, "expected approximate to be 'none' or 'tanh', got '" + a + "'");
  }
  arg_type_fail(op, "expected approximate to be 'none' or 'tanh', got " + type_name(approximate));
}

// The activations without parameters: entry names, kind, and what the backward reads (the
// input x or the output y). Both modules bind one entry per name.
struct PlainAct {
  const char* fwd;
  const char* bwd;
  ActKind kind;
  const char* xy;
};
constexpr PlainAct kPlainActs[] = {
    {"relu_forward", "relu_backward", ActKind::Relu, "x"},
    {"sigmoid_forward", "sigmoid_backward", ActKind::Sigmoid, "y"},
    {"tanh_forward", "tanh_backward", ActKind::Tanh, "y"},
};

// Attention's scale: None (the meta function's default, 1 / sqrt(HD)) or a float (an int too);
// whether it is finite is the meta function's rule.
inline std::optional<double> scale_arg(const char* op, pybind11::handle obj) {
  namespace py = pybind11;
  if (obj.is_none()) return std::nullopt;
  if (!py::isinstance<py::float_>(obj) && !py::isinstance<py::int_>(obj)) {
    arg_type_fail(op, "expected scale to be None or a float, got " + type_name(obj));
  }
  return obj.cast<double>();
}

}  // namespace fastnn::bind
