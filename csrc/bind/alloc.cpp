// The block cache behind new_array (see alloc.h).
#include "bind/alloc.h"

#include <cstdlib>
#if __has_include(<unistd.h>)
#include <unistd.h>
#endif
#include <new>
#include <unordered_map>

#include "core/memory.h"

namespace fastnn::bind {
namespace {

constexpr size_t kHeader = 64;              // the block's size class, kept before its data
constexpr size_t kClass = size_t{1} << 16;  // size classes: multiples of 64 KiB

struct Cache {
  std::unordered_map<size_t, std::vector<char*>> free;  // size class -> blocks (header first)
  size_t bytes = 0;
};

// Never destroyed: arrays may die after static destructors have run (at interpreter exit).
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

void give_back(void* data) {
  char* block = static_cast<char*>(data) - kHeader;
  const size_t cls = *reinterpret_cast<size_t*>(block);
  Cache& c = cache();
  if (c.bytes + cls <= kCacheLimit) {
    c.free[cls].push_back(block);
    c.bytes += cls;
  } else {
    std::free(block);
  }
}

}  // namespace

void* cached_block(size_t bytes, py::capsule* owner) {
  const size_t cls = (bytes + kClass - 1) / kClass * kClass;
  Cache& c = cache();
  char* block = nullptr;
  auto it = c.free.find(cls);
  if (it != c.free.end() && !it->second.empty()) {
    block = it->second.back();
    it->second.pop_back();
    c.bytes -= cls;
  } else {
    block = static_cast<char*>(aligned_bytes(cls + kHeader));
    *reinterpret_cast<size_t*>(block) = cls;
  }
  void* data = block + kHeader;
  *owner = py::capsule(data, [](void* p) { give_back(p); });
  return data;
}

size_t cached_bytes() { return cache().bytes; }

int64_t physical_memory_bytes() {
  static const int64_t bytes = [] {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : int64_t{0};
#else
    return int64_t{0};
#endif
  }();
  return bytes;
}

void empty_cache() {
  Cache& c = cache();
  for (auto& [cls, blocks] : c.free)
    for (char* b : blocks) std::free(b);
  c.free.clear();
  c.bytes = 0;
}

}  // namespace fastnn::bind
