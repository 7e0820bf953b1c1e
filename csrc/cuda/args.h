// The CUDA binding's side of csrc/core/args.h: an argument read from __cuda_array_interface__
// into the ArrayRef that the ops' meta functions check, and outputs allocated through the
// runtime object of fastnn.cuda (`rt`: rt.empty(shape, dtype) gives a new device array, CuPy's
// or the emulator's stand-in; rt.stream is the cudaStream_t to launch on). The rules themselves
// are the ops' own, shared with the CPU binding.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

#include "core/args.h"
#include "ops/softmax.h"

namespace fastnn::cuda {

namespace py = pybind11;

// A CUDA array argument, or an optional one left out (None: ref.present is false). read,
// refuse (the TypeError for anything else) and kList serve lists of arrays (bind/py_args.h).
struct DevArg {
  static constexpr const char* kList = "CUDA";
  [[noreturn]] static void refuse(const char* op, const char* name, const py::handle& o) {
    arg_type_fail(op, std::string("expected ") + name + " to be a CUDA array like the other arguments, got " +
                          std::string(py::str(py::type::of(o).attr("__name__"))) +
                          " (NumPy and CUDA arrays cannot be mixed)");
  }
  static void read(const char* op, const char* name, const py::handle& o, ArrayRef* ref) {
    *ref = DevArg(op, name, o).ref;
  }

  py::object obj;
  ArrayRef ref;

  DevArg(const char* op, const char* name, const py::handle& o) {
    ref.name = name;
    ref.kind = "CUDA array";
    if (o.is_none()) {
      ref.present = false;
      return;
    }
    if (!py::hasattr(o, "__cuda_array_interface__")) refuse(op, name, o);
    obj = py::reinterpret_borrow<py::object>(o);
    const py::dict cai = o.attr("__cuda_array_interface__");
    for (const auto& d : cai["shape"]) ref.shape.push_back(d.cast<int64_t>());
    const std::string ts = cai["typestr"].cast<std::string>();
    ref.itemsize = ts.size() > 2 ? std::stoll(ts.substr(2)) : 0;
    if (ts == "<f4") {
      ref.dtype = DType::Float32, ref.dtype_name = "float32";
    } else if (ts == "<i8") {
      ref.dtype = DType::Int64, ref.dtype_name = "int64";
    } else if (ts == "|b1") {
      ref.dtype = DType::Bool, ref.dtype_name = "bool";
    } else {
      ref.dtype_name = dtype_name_of(ts);
    }
    ref.strides = c_strides(ref.shape, ref.itemsize);  // none given: C-contiguous
    if (cai.contains("strides") && !cai["strides"].is_none()) {
      Shape strides;
      for (const auto& s : cai["strides"]) strides.push_back(s.cast<int64_t>());
      ref.contiguous = ref.numel() == 0 || strides == ref.strides;
      ref.strides = strides;
    }
    const py::tuple data = cai["data"];
    ref.data = data[0].cast<uintptr_t>();
    ref.writeable = !data[1].cast<bool>();
  }

  static Shape c_strides(const Shape& shape, int64_t itemsize) {
    Shape s(shape.size(), 0);
    int64_t step = itemsize;
    for (size_t d = shape.size(); d-- > 0;) {
      s[d] = step;
      step *= shape[d] > 1 ? shape[d] : 1;
    }
    return s;
  }

  // NumPy's names of the common typestrs, so that messages read as on the CPU.
  static const char* dtype_name_of(const std::string& ts) {
    static const char* const names[][2] = {{"<f8", "float64"}, {"<f2", "float16"}, {"<i4", "int32"},
                                           {"<i2", "int16"},   {"|i1", "int8"},    {"|u1", "uint8"},
                                           {"<u4", "uint32"},  {"<u8", "uint64"}};
    for (const auto& n : names)
      if (ts == n[0]) return n[1];
    return interned("typestr '" + ts + "'");
  }
};

// The stream to launch on.
inline void* stream_of(const py::handle& rt) {
  return reinterpret_cast<void*>(rt.attr("stream").cast<uintptr_t>());
}

// An output (`out` unless named): the caller's array checked by check_out (the rules of every
// device), else a new device array from rt. *ref receives what it is.
inline py::object dev_out(const char* op, const py::handle& rt, const py::handle& out, const Shape& shape,
                          std::initializer_list<const ArrayRef*> inputs, ArrayRef* ref,
                          DType dtype = DType::Float32, const char* name = "out", bool in_place = false) {
  if (out.is_none()) {
    py::tuple dims(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) dims[d] = py::int_(shape[d]);
    DevArg made(op, name, rt.attr("empty")(dims, dtype == DType::Int64 ? "int64" : "float32"));
    *ref = made.ref;
    return made.obj;
  }
  DevArg given(op, name, out);
  check_out(op, given.ref, shape, inputs, dtype, in_place);
  *ref = given.ref;
  return given.obj;
}

// Every value of the int64 device array idx in [0, n) (read by a reduction on the device
// through the array's own min() and max()); `what` names n in the message.
inline void check_index_range(const char* op, const DevArg& idx, int64_t n, const char* what) {
  if (idx.ref.numel() == 0) return;
  const int64_t lo = py::int_(idx.obj.attr("min")()).cast<int64_t>();
  const int64_t hi = py::int_(idx.obj.attr("max")()).cast<int64_t>();
  if (lo < 0 || hi >= n) {
    arg_value_fail(op, std::string("expected ") + idx.ref.name + " in [0, " + what + ") = [0, " +
                           std::to_string(n) + "), got one outside");
  }
}

// Every target of a cross-entropy in [0, C) or ignore_index, checked on the device through the
// array's own operators (the first bad one reported, in the CPU's words).
inline void check_targets(const char* op, const CrossEntropyArgs& a, const DevArg& t) {
  if (a.N == 0) return;
  const py::object& v = t.obj;
  const py::object bad = v.attr("__ne__")(a.ignore_index)
                             .attr("__and__")(v.attr("__lt__")(0).attr("__or__")(v.attr("__ge__")(a.C)));
  if (!py::bool_(bad.attr("any")())) return;
  const int64_t row = py::int_(bad.attr("argmax")()).cast<int64_t>();
  cross_entropy_bad_target(op, a, py::int_(v[py::int_(row)]).cast<int64_t>(), row);
}

// A scratch device array of n float32s or float64s (T; none when n == 0) from rt.
template <class T>
py::object dev_scratch(const py::handle& rt, int64_t n, T** p) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float32 or float64 scratch");
  *p = nullptr;
  if (n == 0) return py::none();
  DevArg made("scratch", "scratch",
              rt.attr("empty")(py::make_tuple(n), std::is_same_v<T, float> ? "float32" : "float64"));
  *p = made.ref.ptr<T>();
  return made.obj;
}

}  // namespace fastnn::cuda
