// Thread-count state and OpenMP runtime facts for show_config().
#include "core/threads.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#if defined(_OPENMP) && (defined(__linux__) || defined(__APPLE__))
#include <dlfcn.h>
#endif

namespace fastnn {
namespace {

int env_threads(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 0;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);  // OMP_NUM_THREADS may be a list "4,2": take the first
  if (end == v || n < 1) return 0;
  return n > 4096 ? 4096 : static_cast<int>(n);
}

int initial_threads() {
  int n = env_threads("FASTNN_NUM_THREADS");
  if (n == 0) n = env_threads("OMP_NUM_THREADS");
  if (n == 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n < 1) n = 1;
#ifndef _OPENMP
  n = 1;
#endif
  return n;
}

std::atomic<int>& thread_count() {
  static std::atomic<int> n{initial_threads()};
  return n;
}

}  // namespace

int get_num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument("fastnn.set_num_threads: expected a thread count >= 1, got " +
                                std::to_string(n));
  }
#ifndef _OPENMP
  n = 1;  // single-threaded build: the request is accepted and has no effect
#endif
  thread_count().store(n, std::memory_order_relaxed);
}

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

int openmp_version() {
#ifdef _OPENMP
  return _OPENMP;
#else
  return 0;
#endif
}

const char* openmp_library() {
#if defined(_OPENMP) && (defined(__linux__) || defined(__APPLE__))
  static std::string name = [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&omp_get_num_threads), &info) && info.dli_fname) {
      std::string path = info.dli_fname;
      return path.substr(path.find_last_of('/') + 1);
    }
    return std::string();
  }();
  return name.c_str();
#else
  return "";
#endif
}

}  // namespace fastnn
