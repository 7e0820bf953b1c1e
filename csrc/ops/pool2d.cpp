// pool2d front door: the output-size rule and PyTorch's option checks (in one place), the
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

std::string pair(int64_t a, int64_t b) { return "(" + std::to_string(a) + ", " + std::to_string(b) + ")"; }

}  // namespace

int64_t pool2d_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  const int64_t q = num >= 0 ? num / s : -((-num + s - 1) / s);  // floor division
  int64_t out = q + 1;
  // The last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

void pool2d_shape(const char* op, Pool2dShape* s) {
  auto fail = [op](const std::string& what) {
    throw std::invalid_argument(std::string("fastnn.ops.") + op + ": " + what);
  };
  if (s->KH < 1 || s->KW < 1) fail("kernel size should be greater than zero, but got " + pair(s->KH, s->KW));
  if (s->SH < 1 || s->SW < 1) fail("stride should be greater than zero, but got " + pair(s->SH, s->SW));
  if (s->DH < 1 || s->DW < 1) fail("dilation should be greater than zero, but got " + pair(s->DH, s->DW));
  if (s->PH < 0 || s->PW < 0) fail("pad must be non-negative, but got " + pair(s->PH, s->PW));
  if (s->PH > s->KH / 2 || s->PW > s->KW / 2) {
    fail("pad should be at most half of kernel size, but got pad=" + pair(s->PH, s->PW) +
         ", kernel_size=" + pair(s->KH, s->KW));
  }
  if (s->N < 0 || s->C < 1 || s->H < 1 || s->W < 1) {
    fail("expected x of shape (N, C, H, W) with non-zero C, H, W (N may be 0), got (" + std::to_string(s->N) +
         ", " + std::to_string(s->C) + ", " + std::to_string(s->H) + ", " + std::to_string(s->W) + ")");
  }
  if (s->H * s->W > std::numeric_limits<int32_t>::max()) {
    fail("expected an H*W plane of at most 2^31-1 elements, got H=" + std::to_string(s->H) +
         " W=" + std::to_string(s->W));
  }
  s->OH = pool2d_out_size(s->H, s->KH, s->SH, s->PH, s->DH, s->ceil_mode);
  s->OW = pool2d_out_size(s->W, s->KW, s->SW, s->PW, s->DW, s->ceil_mode);
  if (s->OH < 1 || s->OW < 1) {
    fail("Given input size: (" + std::to_string(s->C) + "x" + std::to_string(s->H) + "x" +
         std::to_string(s->W) + "). Calculated output size: (" + std::to_string(s->C) + "x" +
         std::to_string(s->OH) + "x" + std::to_string(s->OW) + "). Output size is too small");
  }
}

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
