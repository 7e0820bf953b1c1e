// Portable pooling kernels: forward (every option, one output at a time, scalar) and the
// backward scatters, which every ISA uses (they are memory-bound passes over dx).
#include <algorithm>
#include <cstring>

#include "cpu/pool2d_impl.h"
#include "ops/pool2d.h"

namespace fastnn {
namespace {

void max_planes(const Pool2dShape& s, const float* x, float* y, int64_t* idx, int64_t p0, int64_t p1) {
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const int64_t o = p * out + oh * s.OW + ow;
        max_one(s, x + p * in, oh, ow, y + o, idx + o);
      }
}

void avg_planes(const Pool2dShape& s, bool cip, const float* x, float* y, int64_t p0, int64_t p1) {
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) avg_one(s, cip, x + p * in, oh, ow, y + p * out + oh * s.OW + ow);
}

}  // namespace

const Pool2dKernels pool2d_kernels_default{max_planes, avg_planes};

bool max_pool2d_backward_planes(const Pool2dShape& s, const float* dy, const int64_t* idx,
                                const float* relu_x, float* dx, int64_t p0, int64_t p1) {
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  bool ok = true;
  for (int64_t p = p0; p < p1; ++p) {
    float* d = dx + p * in;
    const float* xr = relu_x ? relu_x + p * in : nullptr;
    std::memset(d, 0, sizeof(float) * in);
    for (int64_t o = p * out; o < (p + 1) * out; ++o) {
      const int64_t i = idx[o];
      if (i < 0 || i >= in) {  // a foreign or corrupted index: refuse, never write outside
        ok = false;
        continue;
      }
      if (xr && xr[i] <= 0.0f) continue;  // through the ReLU: torch's threshold_backward
      d[i] += dy[o];                      // overlapping windows: several outputs may add to one input
    }
  }
  return ok;
}

void avg_pool2d_backward_planes(const Pool2dShape& s, bool cip, const float* dy, float* dx, int64_t p0,
                                int64_t p1) {
  const int64_t in = s.H * s.W, out = s.OH * s.OW;
  for (int64_t p = p0; p < p1; ++p) {
    float* d = dx + p * in;
    std::memset(d, 0, sizeof(float) * in);
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        int64_t h0, h1, w0, w1;
        const float div = avg_divisor(s, cip, oh, ow, &h0, &h1, &w0, &w1);
        const float g = dy[p * out + oh * s.OW + ow] / div;  // PyTorch: dy / divisor, then adds
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) d[ih * s.W + iw] += g;
      }
  }
}

}  // namespace fastnn
