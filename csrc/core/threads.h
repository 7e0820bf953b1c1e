// The process-wide thread count and the one parallel-region helper every kernel uses.
//
// The count starts from FASTNN_NUM_THREADS, then OMP_NUM_THREADS, then the number of cores,
// and is passed to each parallel region explicitly; a lower omp_set_num_threads limit in the
// calling thread (threadpoolctl) caps it, and a forked child runs single-threaded. Kernels split work over
// outputs with a static, thread-count-independent blocking, so results never depend on the count. Without
// OpenMP everything runs on the calling thread and the count is 1.
#pragma once
#ifdef _OPENMP
#include <omp.h>
#endif

#include <exception>

namespace fastnn {

int get_num_threads();        // the count, lowered by the calling thread's omp_set_num_threads
void set_num_threads(int n);  // n >= 1; throws std::invalid_argument otherwise
bool forked_child();          // forked after kernels ran threaded: single-threaded from then on
bool openmp_enabled();
int openmp_version();          // _OPENMP (yyyymm), 0 without OpenMP
const char* openmp_library();  // file name of the OpenMP runtime, "" if unknown

// Cores taken by other processes. A parallel region waits for its slowest thread, and the
// kernels' static splits and barriers wait for every thread at each step: when another process
// keeps one of our cores busy, the thread that shares it runs a fraction of the time and two
// threads ran 2-20x slower than one. Each thread of a region counts the times the OS took its
// core away (involuntary context switches, getrusage RUSAGE_THREAD) as the region ends, at most
// once a millisecond; while such preemptions keep coming (two within 50 ms), regions run on
// the calling thread alone, and after 50 ms without one they try every thread again. Results
// do not depend on the thread count, so this changes speed only. FASTNN_ADAPTIVE_THREADS=0
// turns it off (read once).
int contention_threads(int nthreads);  // nthreads, or 1 while cores are seen taken
void contention_check();               // the calling thread's preemptions since its last check
struct ContentionStats {
  long long preemptions = 0;     // involuntary switches seen in regions' threads
  long long single_regions = 0;  // regions run on one thread because of them
  bool enabled = true;
};
ContentionStats contention_stats();

// Runs f(tid, nthreads) on up to `nthreads` threads; f must use the nthreads it is given.
template <class F>
void parallel(int nthreads, F&& f) {
#ifdef _OPENMP
  if (nthreads > 1 && !omp_in_parallel() && (nthreads = contention_threads(nthreads)) > 1) {
#pragma omp parallel num_threads(nthreads)
    {
      f(omp_get_thread_num(), omp_get_num_threads());
      contention_check();
    }
    return;
  }
#endif
  (void)nthreads;
  f(0, 1);
}

// parallel() for a body that may throw (a packing buffer's bad_alloc): an exception must not
// leave an OpenMP region (it would terminate the process), so each thread's is caught, and the
// first is rethrown on the calling thread once the region has ended.
template <class F>
void parallel_for(int nthreads, F&& f) {
  std::exception_ptr error;
  parallel(nthreads, [&](int tid, int nt) {
    try {
      f(tid, nt);
    } catch (...) {
#ifdef _OPENMP
#pragma omp critical(fastnn_parallel_for_error)
#endif
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
}

// Barrier among the threads of the enclosing parallel() region. Call it only when that region
// has nt > 1: a single-thread region run inside another team (a batch split over threads) would
// otherwise wait on the outer team.
inline void barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

// Static split of [0, n) into nt contiguous ranges: thread t gets [begin, end).
inline void split_range(long n, int t, int nt, long* begin, long* end) {
  *begin = n * t / nt;
  *end = n * (t + 1) / nt;
}

}  // namespace fastnn
