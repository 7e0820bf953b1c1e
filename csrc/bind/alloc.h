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
#include <vector>

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

// An uninitialised C-contiguous array of T.
template <class T>
py::array_t<T> new_array(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const size_t bytes = static_cast<size_t>(n) * sizeof(T);
  if (bytes < kMinCached) return py::array_t<T>(shape);
  py::capsule owner;
  T* data = static_cast<T*>(cached_block(bytes, &owner));
  return py::array_t<T>(shape, data, owner);
}

}  // namespace fastnn::bind
