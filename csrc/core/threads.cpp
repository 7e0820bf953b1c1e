// Thread-count state and OpenMP runtime facts for show_config().
#include "core/threads.h"

#include <atomic>
#include <chrono>
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
#if defined(_OPENMP) && defined(__linux__)
#include <sys/resource.h>
#define FASTNN_HAVE_RUSAGE_THREAD 1
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

// Contention (threads.h): the last two preemptions seen and the counters behind contention_stats.
constexpr int64_t kContentionWindowNs = 50'000'000;  // 50 ms
constexpr int64_t kCheckIntervalNs = 1'000'000;      // a thread asks the OS at most once a ms
std::atomic<int64_t> g_last_preempt_ns{INT64_MIN / 2}, g_prev_preempt_ns{INT64_MIN / 2};
std::atomic<long long> g_preemptions{0}, g_single_regions{0};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool adaptive_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FASTNN_ADAPTIVE_THREADS");
    return v == nullptr || std::string(v) != "0";
  }();
  return on;
}

}  // namespace

int contention_threads(int nthreads) {
  if (nthreads <= 1 || !adaptive_enabled()) return nthreads;
  const int64_t now = now_ns();
  // Two preemptions within the window, the later one recent: another process competes for
  // our cores now. One is noise (a kernel thread, a timer).
  const int64_t last = g_last_preempt_ns.load(std::memory_order_relaxed);
  const int64_t prev = g_prev_preempt_ns.load(std::memory_order_relaxed);
  if (now - last < kContentionWindowNs && last - prev < kContentionWindowNs) {
    g_single_regions.fetch_add(1, std::memory_order_relaxed);
    return 1;
  }
  return nthreads;
}

void contention_check() {
#ifdef FASTNN_HAVE_RUSAGE_THREAD
  thread_local int64_t last_check = 0;
  thread_local long last_nivcsw = -1;
  const int64_t now = now_ns();
  if (now - last_check < kCheckIntervalNs) return;
  last_check = now;
  rusage ru;
  if (getrusage(RUSAGE_THREAD, &ru) != 0) return;
  const long n = ru.ru_nivcsw;
  if (last_nivcsw >= 0 && n > last_nivcsw) {
    g_preemptions.fetch_add(n - last_nivcsw, std::memory_order_relaxed);
    g_prev_preempt_ns.store(g_last_preempt_ns.exchange(now, std::memory_order_relaxed),
                            std::memory_order_relaxed);
  }
  last_nivcsw = n;
#endif
}

ContentionStats contention_stats() {
  ContentionStats s;
  s.preemptions = g_preemptions.load(std::memory_order_relaxed);
  s.single_regions = g_single_regions.load(std::memory_order_relaxed);
  s.enabled = adaptive_enabled();
  return s;
}

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
