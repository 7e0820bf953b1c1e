#include "core/memory.h"

#include <cstdlib>
#include <cstring>
#include <limits>

namespace fastnn {

void* aligned_bytes(size_t bytes) {
  if (bytes > std::numeric_limits<size_t>::max() - 63) throw OutOfMemory(bytes);
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (p == nullptr) throw OutOfMemory(bytes);
  return p;
}

void FreeDeleter::operator()(void* p) const { std::free(p); }

AlignedFloats aligned_zeros(size_t n) {
  if (n > std::numeric_limits<size_t>::max() / sizeof(float))
    throw OutOfMemory(std::numeric_limits<size_t>::max());
  const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  void* p = aligned_bytes(bytes);
  std::memset(p, 0, bytes == 0 ? 64 : bytes);
  return AlignedFloats(static_cast<float*>(p));
}

}  // namespace fastnn
