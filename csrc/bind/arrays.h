// Argument checks shared by every binding: each failure is a TypeError or ValueError that
// names the op, the argument, what was expected and what was given. All of them run with the
// GIL held, before a kernel starts.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bind/arg_errors.h"
#include "core/args.h"
#include "core/cpu.h"

namespace fastnn::bind {

namespace py = pybind11;

inline Shape shape_of(const py::array& x) { return Shape(x.shape(), x.shape() + x.ndim()); }

inline std::string shape_str(const py::array& x) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < x.ndim(); ++d) {
    if (d) s += ", ";
    s += std::to_string(x.shape(d));
  }
  if (x.ndim() == 1) s += ",";
  return s + ")";
}

using fastnn::shape_str;

[[noreturn]] inline void type_fail(const char* op, const std::string& what) {
  throw py::type_error(std::string("fastnn.ops.") + op + ": " + what);
}
[[noreturn]] inline void value_fail(const char* op, const std::string& what) {
  throw py::value_error(std::string("fastnn.ops.") + op + ": " + what);
}

// A float32, C-contiguous numpy array (never converted: a copy of an output would lose it).
inline py::array f32_array(const char* op, const char* name, const py::handle& obj) {
  if (!py::isinstance<py::array>(obj)) {
    type_fail(op, std::string("expected ") + name + " to be a numpy.ndarray of float32, got " +
                      std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::array x = py::reinterpret_borrow<py::array>(obj);
  if (!x.dtype().equal(py::dtype::of<float>())) {
    type_fail(op, std::string("expected ") + name + " to be float32, got " + std::string(py::str(x.dtype())));
  }
  if (!(x.flags() & py::array::c_style)) {
    value_fail(op, std::string("expected ") + name + " to be C-contiguous, got a strided array of shape " +
                       shape_str(x));
  }
  return x;
}

inline void require_writeable(const char* op, const char* name, const py::array& x) {
  if (!x.writeable())
    value_fail(op, std::string("expected ") + name + " to be writeable, got a read-only array");
}

// Byte ranges [lo, hi) of two arrays intersect (both are C-contiguous).
inline bool overlaps(const py::array& x, const py::array& y) {
  if (x.nbytes() == 0 || y.nbytes() == 0) return false;
  auto lo = [](const py::array& a) { return reinterpret_cast<uintptr_t>(a.data()); };
  auto hi = [&](const py::array& a) { return lo(a) + static_cast<uintptr_t>(a.nbytes()); };
  return lo(x) < hi(y) && lo(y) < hi(x);
}

inline void require_no_overlap(const char* op, const char* out_name, const py::array& out,
                               const char* in_name, const py::array& in) {
  if (overlaps(out, in)) {
    value_fail(op, std::string("expected ") + out_name + " not to share memory with " + in_name +
                       ", got overlapping arrays");
  }
}

// What the meta functions see of a NumPy array.
inline ArrayRef ref_of(const py::array& x, const char* name) {
  ArrayRef r;
  r.name = name;
  r.data = reinterpret_cast<uintptr_t>(x.data());
  r.shape.assign(x.shape(), x.shape() + x.ndim());
  r.strides.assign(x.strides(), x.strides() + x.ndim());
  r.itemsize = x.itemsize();
  // The dtype from its number and byte order (no Python call on the common path; the name
  // only for the others, for messages).
  const py::dtype dt = x.dtype();
  const bool native = dt.byteorder() != '>';
  const int num = dt.num();
  if (num == py::detail::npy_api::NPY_FLOAT_ && native) {
    r.dtype = DType::Float32, r.dtype_name = "float32";
  } else if ((num == py::detail::npy_api::NPY_LONG_ || num == py::detail::npy_api::NPY_LONGLONG_) &&
             dt.itemsize() == 8 && native) {
    r.dtype = DType::Int64, r.dtype_name = "int64";
  } else if (num == py::detail::npy_api::NPY_BOOL_) {
    r.dtype = DType::Bool, r.dtype_name = "bool";
  } else {
    r.dtype_name = interned(py::str(dt));
  }
  r.contiguous = (x.flags() & py::array::c_style) != 0;
  r.writeable = x.writeable();
  r.kind = "numpy.ndarray";
  return r;
}

// The TypeError for an argument that is not a NumPy array (None included); `kind` names what
// was expected ("float32").
[[noreturn]] inline void not_np_array(const char* op, const char* name, const py::handle& obj,
                                      const char* kind = "float32") {
  type_fail(op, std::string("expected ") + name + " to be a numpy.ndarray of " + kind + ", got " +
                    std::string(py::str(py::type::of(obj).attr("__name__"))));
}

// A NumPy array argument (never converted: a copy of an output would lose it); `kind` names
// what was expected ("float32") in the TypeError for anything else.
inline py::array np_array(const char* op, const char* name, const py::handle& obj,
                          const char* kind = "float32") {
  if (!py::isinstance<py::array>(obj)) not_np_array(op, name, obj, kind);
  return py::reinterpret_borrow<py::array>(obj);
}

// An optional argument: its ArrayRef (present = false for None) and the array that keeps it.
// read, refuse and kList serve lists of arrays (ArrayList in bind/py_args.h).
struct NpArg {
  static constexpr const char* kList = "numpy";
  [[noreturn]] static void refuse(const char* op, const char* name, const py::handle& obj) {
    not_np_array(op, name, obj);
  }
  static void read(const char* op, const char* name, const py::handle& obj, ArrayRef* ref) {
    *ref = ref_of(np_array(op, name, obj), name);
  }

  // The array, null for None (a default py::array would be a new empty NumPy array, made and
  // freed on every call).
  py::array array = py::reinterpret_steal<py::array>(py::handle());
  ArrayRef ref;
  NpArg(const char* op, const char* name, const py::handle& obj, const char* kind = "float32") {
    if (obj.is_none()) {
      ref.name = name;
      ref.present = false;
      ref.kind = "numpy.ndarray";
      return;
    }
    array = np_array(op, name, obj, kind);
    ref = ref_of(array, name);
  }
  bool present() const { return ref.present; }
};

// The `isa` argument of every kernel binding (tests use it to run each ISA's kernels in one
// process): None means the ISA selected at import.
inline Isa isa_arg(const char* op, const py::handle& obj) {
  if (obj.is_none()) return selected_isa();
  if (!py::isinstance<py::str>(obj)) {
    type_fail(op, "expected isa to be None or a str, got " +
                      std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const std::string name = obj.cast<std::string>();
  Isa isa;
  if (!isa_from_name(name, &isa)) {
    value_fail(op, "expected isa to be one of 'default', 'avx2', 'avx512', got '" + name + "'");
  }
  if (!isa_supported(isa)) value_fail(op, "isa '" + name + "' is not supported by this CPU or build");
  return isa;
}

}  // namespace fastnn::bind
