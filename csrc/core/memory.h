// Working memory of the kernels: 64-byte aligned blocks whose failure says how much was asked.
//
// A kernel allocates its working buffers (packed panels, im2col columns, per-thread partials)
// after the binding has released the GIL. When one cannot be had, OutOfMemory carries the bytes
// asked for to the binding, which reports a MemoryError naming the op and the size
// (run_kernel, csrc/bind/alloc.h); an allocation by a std::vector reports the op alone.
#pragma once
#include <cstddef>
#include <memory>
#include <new>

namespace fastnn {

class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(size_t bytes) : bytes_(bytes) {}
  size_t bytes() const { return bytes_; }
  const char* what() const noexcept override { return "fastnn: out of memory for a working buffer"; }

 private:
  size_t bytes_;
};

// At least `bytes` bytes (rounded up to 64), 64-byte aligned; throws OutOfMemory. Free with
// std::free.
void* aligned_bytes(size_t bytes);

struct FreeDeleter {
  void operator()(void* p) const;
};
using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

// n floats, 64-byte aligned, zeroed (the buffer rounded up to 64 bytes is zeroed throughout).
AlignedFloats aligned_zeros(size_t n);

}  // namespace fastnn
