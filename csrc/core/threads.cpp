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
#if defined(_OPENMP) && !defined(_WIN32)
#include <pthread.h>
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

// OpenMP runtimes do not survive fork(): the child has only the forking thread, and libgomp's
// pool still counts the parent's workers, so a parallel region in the child would wait for
// threads that do not exist. A child forked after fastnn handed out more than one thread runs
// single-threaded (fork_state() tells Python, which warns).
std::atomic<bool> g_threads_used{false};
std::atomic<bool> g_forked_child{false};

#if defined(_OPENMP) && !defined(_WIN32)
void after_fork_in_child() {
  if (g_threads_used.load(std::memory_order_relaxed)) g_forked_child.store(true, std::memory_order_relaxed);
}
const bool g_atfork_registered = pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0;
#endif

// Bumped by set_num_threads: each calling thread then writes fastnn's count into its own
// OpenMP setting (omp_set_num_threads) before reading that setting back as a limit.
std::atomic<unsigned> g_generation{0};
#ifdef _OPENMP
thread_local unsigned t_generation = ~0u;
#endif

}  // namespace

// The count, lowered by the calling thread's OpenMP limit: threadpoolctl's
// threadpool_limits(n, user_api="openmp") calls omp_set_num_threads(n) in every OpenMP runtime of
// the process, fastnn's included, and is honoured here while it lasts.
int get_num_threads() {
  int n = thread_count().load(std::memory_order_relaxed);
#ifdef _OPENMP
  if (g_forked_child.load(std::memory_order_relaxed)) return 1;
  const unsigned gen = g_generation.load(std::memory_order_acquire);
  if (t_generation != gen) {
    omp_set_num_threads(n);
    t_generation = gen;
  }
  const int limit = omp_get_max_threads();
  if (limit < n) n = limit < 1 ? 1 : limit;
  if (n > 1) g_threads_used.store(true, std::memory_order_relaxed);
#endif
  return n;
}

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument("fastnn.set_num_threads: expected a thread count >= 1, got " +
                                std::to_string(n));
  }
#ifndef _OPENMP
  n = 1;  // single-threaded build: the request is accepted and has no effect
#endif
  thread_count().store(n, std::memory_order_relaxed);
  const unsigned gen = g_generation.fetch_add(1, std::memory_order_acq_rel) + 1;
#ifdef _OPENMP
  omp_set_num_threads(n);  // this thread now; the others at their next get_num_threads()
  t_generation = gen;
#else
  (void)gen;
#endif
}

bool forked_child() { return g_forked_child.load(std::memory_order_relaxed); }

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
