// pool2d front door (the output-size rule and the option checks are pool2d_meta.cpp's): the
// per-ISA dispatch of the forward kernels, and the split of the N*C planes over threads.
#include "ops/pool2d.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {
namespace {

// Below this many window reads (or, backward, elements written) per thread a second thread
// costs more than it saves.
constexpr double kWorkPerThread = 1.0e5;

int threads_for(double work, int64_t planes, int nthreads) {
  const int useful = static_cast<int>(std::min<double>(work / kWorkPerThread, planes));
  return std::max(1, std::min(nthreads, useful));
}

// f(p0, p1) on contiguous plane ranges, one per thread.
template <class F>
void over_planes(int64_t planes, int nt, F&& f) {
  parallel(nt, [&](int tid, int cnt) {
    long p0, p1;
    split_range(planes, tid, cnt, &p0, &p1);
    if (p0 < p1) f(p0, p1);
  });
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, int64_t* idx, Isa isa, int nthreads) {
  const double work = static_cast<double>(s.planes()) * s.OH * s.OW * s.KH * s.KW;
  const Pool2dKernels& k = FASTNN_KERNEL_TABLE(pool2d_kernels, isa);
  over_planes(s.planes(), threads_for(work, s.planes(), nthreads),
              [&](int64_t p0, int64_t p1) { k.max_planes(s, x, y, idx, p0, p1); });
}

void avg_pool2d_forward(const Pool2dShape& s, bool count_include_pad, const float* x, float* y, Isa isa,
                        int nthreads) {
  const double work = static_cast<double>(s.planes()) * s.OH * s.OW * s.KH * s.KW;
  const Pool2dKernels& k = FASTNN_KERNEL_TABLE(pool2d_kernels, isa);
  over_planes(s.planes(), threads_for(work, s.planes(), nthreads),
              [&](int64_t p0, int64_t p1) { k.avg_planes(s, count_include_pad, x, y, p0, p1); });
}

void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int64_t* idx, const float* relu_x,
                         float* dx, int nthreads) {
  const double work = static_cast<double>(s.planes()) * (s.H * s.W + s.OH * s.OW);
  const int nt = threads_for(work, s.planes(), nthreads);
  std::vector<char> bad(nt, 0);  // per thread: an OpenMP region must not throw
  parallel(nt, [&](int tid, int cnt) {
    long p0, p1;
    split_range(s.planes(), tid, cnt, &p0, &p1);
    if (p0 < p1 && !max_pool2d_backward_planes(s, dy, idx, relu_x, dx, p0, p1)) bad[tid] = 1;
  });
  for (char b : bad) {
    if (b) {
      throw std::invalid_argument("fastnn.ops.max_pool2d_backward: expected indices in [0, H*W) = [0, " +
                                  std::to_string(s.H * s.W) + "), got one outside (dx is not valid)");
    }
  }
}

void avg_pool2d_backward(const Pool2dShape& s, bool count_include_pad, const float* dy, float* dx,
                         int nthreads) {
  const double work = static_cast<double>(s.planes()) * (s.H * s.W + s.OH * s.OW * s.KH * s.KW);
  over_planes(s.planes(), threads_for(work, s.planes(), nthreads), [&](int64_t p0, int64_t p1) {
    avg_pool2d_backward_planes(s, count_include_pad, dy, dx, p0, p1);
  });
}

void global_avg_pool2d_forward(int64_t planes, int64_t hw, const float* x, float* y, int nthreads) {
  const double work = static_cast<double>(planes) * hw;
  over_planes(planes, threads_for(work, planes, nthreads), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* v = x + p * hw;
      // Four double partial sums in a fixed pattern: exact enough that the float32 mean is
      // correctly rounded in practice, and independent of the thread count.
      double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      int64_t i = 0;
      for (; i + 4 <= hw; i += 4) {
        a0 += v[i];
        a1 += v[i + 1];
        a2 += v[i + 2];
        a3 += v[i + 3];
      }
      for (; i < hw; ++i) a0 += v[i];
      y[p] = static_cast<float>(((a0 + a1) + (a2 + a3)) / static_cast<double>(hw));
    }
  });
}

void global_avg_pool2d_backward(int64_t planes, int64_t hw, const float* dy, float* dx, int nthreads) {
  const double work = static_cast<double>(planes) * hw;
  over_planes(planes, threads_for(work, planes, nthreads), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float g = dy[p] / static_cast<float>(hw);
      std::fill(dx + p * hw, dx + (p + 1) * hw, g);
    }
  });
}

}  // namespace fastnn
