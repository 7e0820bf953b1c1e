// The CUDA emulator's scheduler (see runtime.h).
#include "cuda/emu/runtime.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define FASTNN_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FASTNN_EMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FASTNN_EMU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FASTNN_EMU_TSAN 1
#endif
#endif
#ifdef FASTNN_EMU_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef FASTNN_EMU_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace fastnn {
namespace emu {
namespace {

// ThreadSanitizer sees each fiber as a thread. Switches do not synchronise; the happens-before
// edges are CUDA's: block start -> every thread, every thread before a barrier -> every thread
// after it (the same for __syncwarp within a warp), every thread -> block end. The scheduler's
// own bookkeeping (reading what a fiber waits for, writing what it receives) is not checked.
#ifdef FASTNN_EMU_TSAN
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
inline void hb_release(void* token) { __tsan_release(token); }
inline void hb_acquire(void* token) { __tsan_acquire(token); }
inline void ignore_begin() {
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
}
inline void ignore_end() {
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
}
#else
inline void hb_release(void*) {}
inline void hb_acquire(void*) {}
inline void ignore_begin() {}
inline void ignore_end() {}
#endif

constexpr size_t kStack = 256 * 1024;  // per fiber; a guard page below it
constexpr unsigned kMaxThreads = 1024;
constexpr size_t kMaxDynamicShared = 48 * 1024;  // without the opt-in attribute

enum class State { Ready, Barrier, Warp, Done, Failed };

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;  // mmap'ed, guard page first
  ThreadCoords coords;
  unsigned linear = 0;
  State state = State::Ready;
  // The blocking point it waits at.
  const char* file = nullptr;
  int line = 0;
  int kind = 0;
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int arg = 0, width = 32;
#ifdef FASTNN_EMU_TSAN
  void* tsan = nullptr;
#endif
};

// Fibers (their mapped stacks, and their TSan fibers) outlive a launch: each launch takes a set
// per worker from this pool and gives them back after the workers have joined, so later
// launches neither map and first-touch the stacks nor create TSan fibers again (under the
// sanitizers that setup, for every thread of every launch, took most of the run). Kept for the
// life of the process. Within a launch no set passes from one worker to another: a worker that
// finished early would hand its TSan fibers (and, through the pool's lock, an ordering) to a
// late one, and ThreadSanitizer would then see the two workers' blocks as one thread's
// sequential work and miss a race between them (seen on a loaded machine).
struct FiberSet {
  std::vector<Fiber> fibers;
};
std::mutex fiber_pool_mu;
std::vector<std::unique_ptr<FiberSet>>& fiber_pool() {
  static auto* pool = new std::vector<std::unique_ptr<FiberSet>>();  // never destroyed: no exit-time order
  return *pool;
}
std::unique_ptr<FiberSet> take_fiber_set() {
  std::lock_guard<std::mutex> lock(fiber_pool_mu);
  auto& pool = fiber_pool();
  if (pool.empty()) return std::make_unique<FiberSet>();
  std::unique_ptr<FiberSet> set = std::move(pool.back());
  pool.pop_back();
  return set;
}
void give_fiber_set(std::unique_ptr<FiberSet> set) {
  std::lock_guard<std::mutex> lock(fiber_pool_mu);
  fiber_pool().push_back(std::move(set));
}

struct Worker;
thread_local Worker* tl_worker = nullptr;

std::string where_of(const char* file, int line) {
  return std::string(file ? file : "?") + ":" + std::to_string(line);
}

struct Worker {
  FiberSet* set;  // this worker's, for the launch (taken and given back by launch())
  std::vector<Fiber>& fibers = set->fibers;
  std::vector<unsigned char> shared;
  ucontext_t sched;
  Fiber* current = nullptr;
  const std::function<void()>* kernel = nullptr;
  std::string error;
  char start_token = 0, done_token = 0, barrier_token = 0, warp_tokens[32] = {};
#ifdef FASTNN_EMU_ASAN
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
#endif
#ifdef FASTNN_EMU_TSAN
  void* sched_tsan = nullptr;
#endif

  explicit Worker(FiberSet* s) : set(s) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  static size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

  void ensure(size_t n) {
    while (fibers.size() < n) {
      fibers.emplace_back();
      Fiber& f = fibers.back();
      void* p = mmap(nullptr, kStack + page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("CUDA emulator: out of memory for fiber stacks");
      mprotect(p, page(), PROT_NONE);  // guard page: a stack overflow faults
      f.stack = static_cast<char*>(p);
#ifdef FASTNN_EMU_TSAN
      ignore_end();  // a fiber starts with its creator's ignores: create it checked
      f.tsan = __tsan_create_fiber(0);
      ignore_begin();
#endif
    }
  }

  // Switch from the scheduler into fiber f, and back when it blocks or ends.
  void resume(Fiber& f) {
    current = &f;
#ifdef FASTNN_EMU_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack + page(), kStack);
#endif
#ifdef FASTNN_EMU_TSAN
    __tsan_switch_to_fiber(f.tsan, __tsan_switch_to_fiber_no_sync);
#endif
    swapcontext(&sched, &f.ctx);
#ifdef FASTNN_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    current = nullptr;
  }

  // From the running fiber back to the scheduler.
  // Every yield releases: the block's end then follows everything each thread did, also for
  // the threads of a failed block that are never resumed.
  void yield() {
    Fiber& f = *current;
    ucontext_t* ctx = &f.ctx;
#ifdef FASTNN_EMU_ASAN
    void* fake = nullptr;
    void** keep = f.state == State::Done || f.state == State::Failed ? nullptr : &fake;
#endif
#ifdef FASTNN_EMU_TSAN
    void* to = sched_tsan;
#endif
    hb_release(&done_token);  // the last access of this worker's memory before the switch
#ifdef FASTNN_EMU_ASAN
    __sanitizer_start_switch_fiber(keep, sched_bottom, sched_size);
#endif
#ifdef FASTNN_EMU_TSAN
    __tsan_switch_to_fiber(to, __tsan_switch_to_fiber_no_sync);
#endif
    swapcontext(ctx, &sched);
#ifdef FASTNN_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, &sched_bottom, &sched_size);
#endif
  }

  static void entry() {
    Worker* w = tl_worker;
#ifdef FASTNN_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &w->sched_bottom, &w->sched_size);
#endif
    hb_acquire(&w->start_token);
    try {
      (*w->kernel)();
      w->current->state = State::Done;
    } catch (const std::exception& e) {
      if (w->error.empty()) w->error = e.what();
      w->current->state = State::Failed;
    }
    w->yield();  // never resumed again
  }

  void fail(const std::string& msg) {
    if (error.empty()) error = msg;
  }

  // Runs one block to its end (or to the first misuse, recorded in error).
  void run_block(const uint3& bid, dim3 block, dim3 grid, size_t shared_bytes, int order, std::mt19937& rng) {
    const unsigned n = block.x * block.y * block.z;
    ensure(n);
    shared.assign(shared_bytes + 16, 0xFF);  // NaN bytes: unwritten reads show
    for (unsigned i = 0; i < n; ++i) {
      Fiber& f = fibers[i];
      f.linear = i;
      f.coords =
          ThreadCoords{{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)}, bid, block, grid};
      f.state = State::Ready;
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack + page();
      f.ctx.uc_stack.ss_size = kStack;
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, &Worker::entry, 0);
    }
    hb_release(&start_token);
    struct BlockEnd {  // every thread's work happens before the block's end, however it ends
      Worker* w;
      ~BlockEnd() { hb_acquire(&w->done_token); }
    } block_end{this};
    std::vector<unsigned> seq(n);
    for (unsigned i = 0; i < n; ++i) seq[i] = order == 1 ? n - 1 - i : i;
    while (error.empty()) {
      if (order == 2) std::shuffle(seq.begin(), seq.end(), rng);
      bool ran = false;
      for (unsigned i : seq) {
        if (fibers[i].state != State::Ready) continue;
        resume(fibers[i]);
        ran = true;
        if (!error.empty()) return;
      }
      if (!error.empty()) return;
      if (resolve_warps(n)) continue;
      if (!error.empty()) return;
      // Barrier: every thread that has not ended must wait at the same one.
      unsigned done = 0, at_barrier = 0;
      const Fiber* first = nullptr;
      for (unsigned i = 0; i < n; ++i) {
        const Fiber& f = fibers[i];
        if (f.state == State::Done) ++done;
        if (f.state == State::Barrier) {
          ++at_barrier;
          if (!first)
            first = &f;
          else if (f.file != first->file || f.line != first->line)
            return fail("CUDA emulator: divergent __syncthreads in block (" + std::to_string(bid.x) + "," +
                        std::to_string(bid.y) + "): threads wait at " + where_of(first->file, first->line) +
                        " and at " + where_of(f.file, f.line));
        }
      }
      if (done == n) return;
      if (at_barrier > 0 && at_barrier + done == n) {
        if (done > 0)
          return fail("CUDA emulator: __syncthreads at " + where_of(first->file, first->line) +
                      " is not reached by every thread of its block: " + std::to_string(done) + " of " +
                      std::to_string(n) + " have returned");
        for (unsigned i = 0; i < n; ++i) fibers[i].state = State::Ready;
        continue;
      }
      if (!ran) {  // nothing runnable and nothing to release: describe the first waiter
        for (unsigned i = 0; i < n; ++i) {
          const Fiber& f = fibers[i];
          if (f.state == State::Warp || f.state == State::Barrier)
            return fail("CUDA emulator: deadlock: thread " + std::to_string(i) + " waits at " +
                        where_of(f.file, f.line) +
                        (f.state == State::Warp ? " (a warp collective whose lanes wait elsewhere)"
                                                : " (__syncthreads while others wait in a warp collective)"));
        }
        return fail("CUDA emulator: internal error: no runnable thread");
      }
    }
  }

  // Completes every warp collective whose mask's lanes have all arrived; true if any did.
  bool resolve_warps(unsigned n) {
    bool any = false;
    for (unsigned w0 = 0; w0 < n; w0 += 32) {
      const unsigned lanes = std::min(32u, n - w0);
      for (unsigned l = 0; l < lanes; ++l) {
        Fiber& f = fibers[w0 + l];
        if (f.state != State::Warp) continue;
        // Every lane named in the mask must wait at a collective of the same kind.
        bool complete = true;
        for (unsigned m = 0; m < 32; ++m) {
          if (!(f.mask >> m & 1u)) continue;
          if (m >= lanes)
            return fail("CUDA emulator: warp collective at " + where_of(f.file, f.line) + " names lane " +
                        std::to_string(m) + ", past the block's " + std::to_string(n) + " threads"),
                   false;
          const Fiber& o = fibers[w0 + m];
          if (o.state == State::Done || o.state == State::Failed)
            return fail("CUDA emulator: warp collective at " + where_of(f.file, f.line) + " names lane " +
                        std::to_string(m) + ", which has exited"),
                   false;
          if (o.state == State::Ready) complete = false;  // not there yet
          if (o.state == State::Barrier)
            return fail("CUDA emulator: warp collective at " + where_of(f.file, f.line) + " names lane " +
                        std::to_string(m) + ", which waits at __syncthreads " + where_of(o.file, o.line)),
                   false;
          if (o.state == State::Warp && (o.kind != f.kind || o.mask != f.mask))
            return fail("CUDA emulator: lanes of one warp meet different collectives (or masks) at " +
                        where_of(f.file, f.line) + " and " + where_of(o.file, o.line)),
                   false;
        }
        if (!complete) continue;
        if (!(f.mask >> l & 1u))
          return fail("CUDA emulator: lane " + std::to_string(l) + " calls a warp collective at " +
                      where_of(f.file, f.line) + " with a mask that leaves it out"),
                 false;
        // Compute each participant's result.
        uint64_t vote = 0;
        for (unsigned m = 0; m < 32; ++m)
          if (f.mask >> m & 1u) vote |= (fibers[w0 + m].value ? 1ull : 0ull) << m;
        for (unsigned m = 0; m < 32; ++m) {
          if (!(f.mask >> m & 1u)) continue;
          Fiber& o = fibers[w0 + m];
          if (o.kind >= 4) {
            o.result = o.kind == 4 ? vote : o.kind == 5 ? (vote != 0) : (vote == (uint64_t)o.mask);
          } else if (o.kind >= 0) {
            const int width = o.width, seg = static_cast<int>(m) / width * width;
            int src = static_cast<int>(m);
            if (o.kind == 0)
              src = seg + ((o.arg % width) + width) % width;
            else if (o.kind == 1)
              src = static_cast<int>(m) - o.arg >= seg ? static_cast<int>(m) - o.arg : static_cast<int>(m);
            else if (o.kind == 2)
              src = static_cast<int>(m) + o.arg < seg + width ? static_cast<int>(m) + o.arg
                                                              : static_cast<int>(m);
            else
              src = (static_cast<int>(m) ^ o.arg) < seg + width && (static_cast<int>(m) ^ o.arg) >= seg
                        ? (static_cast<int>(m) ^ o.arg)
                        : static_cast<int>(m);
            if (src < 0 || src >= 32 || !(f.mask >> src & 1u))
              return fail("CUDA emulator: shuffle at " + where_of(o.file, o.line) + ": lane " +
                          std::to_string(m) + " reads lane " + std::to_string(src) + ", outside the mask"),
                     false;
            o.result = fibers[w0 + src].value;
          }
        }
        for (unsigned m = 0; m < 32; ++m)
          if (f.mask >> m & 1u) fibers[w0 + m].state = State::Ready;
        any = true;
      }
    }
    return any;
  }
};

int order_from_env() {
  const char* o = std::getenv("FASTNN_EMU_ORDER");
  if (!o || !*o || std::string(o) == "forward") return 0;
  if (std::string(o) == "reverse") return 1;
  if (std::string(o) == "random") return 2;
  throw std::runtime_error(std::string("FASTNN_EMU_ORDER must be forward, reverse or random, not ") + o);
}

Worker& this_worker() {
  if (!tl_worker || !tl_worker->current)
    throw std::logic_error("CUDA emulator: a device function called outside a kernel launch");
  return *tl_worker;
}

}  // namespace

const ThreadCoords& coords() { return this_worker().current->coords; }

void sync_threads(const char* file, int line) {
  Worker& w = this_worker();
  Fiber& f = *w.current;
  f.state = State::Barrier;
  f.file = file;
  f.line = line;
  hb_release(&w.barrier_token);
  w.yield();
  hb_acquire(&w.barrier_token);
}

static uint64_t block_on_warp(int kind, unsigned mask, uint64_t value, int arg, int width, const char* file,
                              int line) {
  Worker& w = this_worker();
  Fiber& f = *w.current;
  if (width <= 0 || width > 32 || (width & (width - 1)))
    throw std::runtime_error("CUDA emulator: shuffle width " + std::to_string(width) + " at " +
                             where_of(file, line) + " is not a power of two <= 32");
  f.state = State::Warp;
  f.kind = kind;
  f.mask = mask;
  f.value = value;
  f.arg = arg;
  f.width = width;
  f.file = file;
  f.line = line;
  w.yield();
  return f.result;
}

void sync_warp(unsigned mask, const char* file, int line) {
  Worker& w = this_worker();
  char* token = &w.warp_tokens[w.current->linear / 32 % 32];
  hb_release(token);
  block_on_warp(-1, mask, 0, 0, 32, file, line);
  hb_acquire(token);
}

uint64_t warp_collective(int kind, unsigned mask, uint64_t value, int arg, int width, const char* file,
                         int line) {
  return block_on_warp(kind, mask, value, arg, width, file, line);
}

void* dynamic_shared() { return this_worker().shared.data(); }

void launch(dim3 grid, dim3 block, size_t shared_bytes, const char* where,
            const std::function<void()>& kernel) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads)
    throw std::runtime_error(std::string("CUDA emulator: launch at ") + where + " with " +
                             std::to_string(threads) + " threads per block (1..1024)");
  if (uint64_t{grid.x} * grid.y * grid.z == 0)
    throw std::runtime_error(std::string("CUDA emulator: launch at ") + where + " with an empty grid");
  if (block.z > 64 || grid.y > 65535 || grid.z > 65535)
    throw std::runtime_error(std::string("CUDA emulator: launch at ") + where +
                             " past CUDA's grid or block limits");
  if (shared_bytes > kMaxDynamicShared)
    throw std::runtime_error(std::string("CUDA emulator: launch at ") + where + " asks for " +
                             std::to_string(shared_bytes) +
                             " bytes of dynamic shared memory (48 KiB without opt-in)");
  const int order = order_from_env();
  const char* seed_env = std::getenv("FASTNN_EMU_SEED");
  const unsigned seed = seed_env ? static_cast<unsigned>(std::strtoul(seed_env, nullptr, 10)) : 1u;
  const char* workers_env = std::getenv("FASTNN_EMU_WORKERS");
  const uint64_t nblocks = uint64_t{grid.x} * grid.y * grid.z;
  int nworkers = workers_env ? std::atoi(workers_env) : 2;
  nworkers = static_cast<int>(std::max<uint64_t>(1, std::min<uint64_t>(nworkers, nblocks)));

  std::vector<std::unique_ptr<FiberSet>> sets;
  for (int i = 0; i < nworkers; ++i) sets.push_back(take_fiber_set());
  struct GiveBack {  // after the workers have joined, however the launch ends
    std::vector<std::unique_ptr<FiberSet>>& sets;
    ~GiveBack() {
      for (auto& s : sets) give_fiber_set(std::move(s));
    }
  } give_back{sets};

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::string error;
  auto work = [&](int wid) {
    ignore_begin();  // this thread is the scheduler; the kernel runs in the fibers
    Worker w(sets[static_cast<size_t>(wid)].get());
    tl_worker = &w;
    w.kernel = &kernel;
    std::mt19937 rng(seed + 7919u * static_cast<unsigned>(wid));
#ifdef FASTNN_EMU_TSAN
    w.sched_tsan = __tsan_get_current_fiber();
#endif
    // Block b runs on worker b % nworkers: a fixed split (neighbouring blocks on different
    // workers, whatever the timing, so ThreadSanitizer sees a race between them every run), and
    // nothing shared between workers that could order one block after another for it.
    for (uint64_t b = static_cast<uint64_t>(wid); b < nblocks && !stop.load(std::memory_order_relaxed);
         b += static_cast<uint64_t>(nworkers)) {
      const uint3 bid{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                      static_cast<unsigned>(b / (uint64_t{grid.x} * grid.y))};
      w.run_block(bid, block, grid, shared_bytes, order, rng);
      if (!w.error.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        if (error.empty()) error = w.error + " (kernel launched at " + where + ")";
        stop.store(true, std::memory_order_relaxed);  // the other workers stop at their next block
        break;
      }
    }
    tl_worker = nullptr;
    ignore_end();
  };
  if (nworkers == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    for (int i = 0; i < nworkers; ++i) pool.emplace_back(work, i);
    for (std::thread& t : pool) t.join();
  }
  if (!error.empty()) throw std::runtime_error(error);
}

}  // namespace emu
}  // namespace fastnn
