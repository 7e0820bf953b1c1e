// Output arrays for the bindings, from a cache of freed blocks.
//
// A training loop allocates the same large outputs every step. Memory fresh from the OS costs
// a page fault per 4 KiB page on first touch (for a 6.4 MB activation gradient, more time than
// the kernel that fills it), and NumPy's allocator hands large blocks back to the OS when they
// are freed. So arrays of kMinCached bytes and more take their memory from here: when such an
// array dies its block returns to a cache, to be handed out again for the same size class,
// until the cache holds kCacheLimit bytes. Smaller arrays use NumPy's allocator. The GIL guards
// the cache: arrays are made (in bindings, before the GIL is released) and destroyed (capsule
// destructors) with it held.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "bind/arrays.h"
#include "core/memory.h"

namespace fastnn::bind {

namespace py = pybind11;

constexpr size_t kMinCached = size_t{1} << 20;   // 1 MiB
constexpr size_t kCacheLimit = size_t{1} << 30;  // 1 GiB held at most

// A 64-byte aligned block of at least `bytes` bytes (from the cache when one fits), and the
// capsule that returns it there when its array dies.
void* cached_block(size_t bytes, py::capsule* owner);

// Blocks held by the cache (not in use) and their bytes; empty_cache() frees them.
size_t cached_bytes();
void empty_cache();

// The bytes of this machine's physical memory (0: unknown).
int64_t physical_memory_bytes();

// A C-contiguous array of T: new memory from NumPy (data null), or data, which owner keeps
// alive. What py::array_t<T>(shape) and py::array_t<T>(shape, data, owner) make (the same
// dtype, strides, flags and base), without the two std::vectors pybind11 builds per array.
template <class T>
py::array_t<T> c_array(const Shape& shape, T* data = nullptr, py::handle owner = py::handle()) {
  static_assert(sizeof(Py_intptr_t) == sizeof(int64_t), "NumPy's sizes are 64-bit here");
  const size_t nd = shape.size();
  Shape strides(nd, static_cast<int64_t>(sizeof(T)));
  for (size_t d = nd; d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  auto& api = py::detail::npy_api::get();
  py::dtype dt = py::dtype::of<T>();
  auto a = py::reinterpret_steal<py::object>(
      api.PyArray_NewFromDescr_(api.PyArray_Type_, dt.release().ptr(), static_cast<int>(nd),
                                reinterpret_cast<Py_intptr_t*>(const_cast<int64_t*>(shape.data())),
                                reinterpret_cast<Py_intptr_t*>(strides.data()), data,
                                data ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0, nullptr));
  if (!a) throw py::error_already_set();
  if (data) api.PyArray_SetBaseObject_(a.ptr(), owner.inc_ref().ptr());
  return py::reinterpret_steal<py::array_t<T>>(a.release());
}

// An uninitialised C-contiguous array of T for op (nullptr: unnamed). A shape whose bytes
// overflow or exceed this machine's memory is a ValueError naming the op, before any allocation;
// an allocation that still fails is a MemoryError naming it.
template <class T>
py::array_t<T> new_array(const char* op, const Shape& shape) {
  int64_t n = 1;
  bool overflow = false;
  for (int64_t d : shape) {
    if (d < 0 || (d != 0 && n > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(sizeof(T)) / d)) {
      overflow = true;
    }
    n *= overflow ? 1 : d;
  }
  const int64_t mem = physical_memory_bytes();
  if (overflow || (mem > 0 && n * static_cast<int64_t>(sizeof(T)) > mem)) {
    arg_value_fail(op ? op : "?",
                   "expected an output that fits in memory, got shape " + shape_str(shape) +
                       (overflow ? " (more bytes than 2^63)"
                                 : " (" + std::to_string(n * static_cast<int64_t>(sizeof(T))) +
                                       " bytes; this machine has " + std::to_string(mem) + ")"));
  }
  const size_t bytes = static_cast<size_t>(n) * sizeof(T);
  try {
    if (bytes < kMinCached) return c_array<T>(shape);
    py::capsule owner;
    T* data = static_cast<T*>(cached_block(bytes, &owner));
    return c_array<T>(shape, data, owner);
  } catch (const std::bad_alloc&) {
    PyErr_SetString(PyExc_MemoryError,
                    (std::string("fastnn.ops.") + (op ? op : "?") + ": cannot allocate " +
                     std::to_string(bytes) + " bytes for an output of shape " + shape_str(shape))
                        .c_str());
    throw py::error_already_set();
  }
}

// Runs the kernel call f with the GIL released and returns what it returns. A working buffer
// the kernel cannot allocate is a MemoryError naming op and, where the allocator said, the
// bytes asked for (the checks before the call bound what a kernel asks for by its inputs and
// output, so this is a machine short of memory, not an argument a check could refuse).
template <class F>
decltype(auto) run_kernel(const char* op, F&& f) {
  size_t bytes = 0;
  try {
    py::gil_scoped_release release;
    return f();
  } catch (const OutOfMemory& e) {
    bytes = e.bytes();
  } catch (const std::bad_alloc&) {
  }
  const std::string size = bytes ? " (" + std::to_string(bytes) + " bytes)" : "";
  PyErr_SetString(
      PyExc_MemoryError,
      (std::string("fastnn.ops.") + op + ": cannot allocate the kernel's working memory" + size).c_str());
  throw py::error_already_set();
}

// The output of a binding: a new float32 array of `shape` when out_obj is None, else the
// caller's `out` checked: float32, C-contiguous, writeable, of that shape, sharing no memory
// with the inputs; with in_place, it may be one of the inputs exactly (an in-place update).
inline py::array out_or_new(const char* op, py::handle out_obj, const Shape& shape,
                            std::initializer_list<std::pair<const char*, const py::array*>> inputs,
                            bool in_place = false) {
  if (out_obj.is_none()) return new_array<float>(op, shape);
  py::array out = f32_array(op, "out", out_obj);
  require_writeable(op, "out", out);
  if (shape_of(out) != shape) {
    value_fail(op, "expected out of shape " + shape_str(shape) + ", got " + shape_str(out));
  }
  for (const auto& [name, in] : inputs) {
    if (!(in_place && out.data() == in->data())) require_no_overlap(op, "out", out, name, *in);
  }
  return out;
}

// out_or_new for ops with a meta function: the caller's `out` checked by check_out (the same
// rules on every device; with in_place it may be one of the inputs exactly), else a new
// float32 array.
inline py::array out_checked(const char* op, py::handle out_obj, const Shape& shape,
                             std::initializer_list<const ArrayRef*> inputs, bool in_place = false) {
  if (out_obj.is_none()) return new_array<float>(op, shape);
  py::array out = np_array(op, "out", out_obj);
  check_out(op, ref_of(out, "out"), shape, inputs, DType::Float32, in_place);
  return out;
}

}  // namespace fastnn::bind
