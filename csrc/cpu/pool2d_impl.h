// One output of max / average pooling, scalar, in PyTorch's order; compiled into the portable
// unit (the whole plane) and the AVX2 and AVX-512 units (the border outputs their vector loops
// leave).
// Anonymous namespace: the differently compiled copies never merge at link time.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>

#include "ops/pool2d.h"

namespace fastnn {
namespace {

// Max over the window of output (oh, ow) of the plane x (H x W). Rows/columns outside the
// input are skipped (stepping by the dilation from the first one inside), as PyTorch does.
inline void max_one(const Pool2dShape& s, const float* x, int64_t oh, int64_t ow, float* y, int64_t* idx) {
  int64_t h0 = oh * s.SH - s.PH, w0 = ow * s.SW - s.PW;
  const int64_t h1 = std::min(h0 + (s.KH - 1) * s.DH + 1, s.H);
  const int64_t w1 = std::min(w0 + (s.KW - 1) * s.DW + 1, s.W);
  if (h0 < 0) h0 += (-h0 + s.DH - 1) / s.DH * s.DH;  // the first tap inside, in O(1)
  if (w0 < 0) w0 += (-w0 + s.DW - 1) / s.DW * s.DW;  // the first tap inside, in O(1)
  float m = -std::numeric_limits<float>::infinity();
  int64_t mi = h0 * s.W + w0;
  for (int64_t ih = h0; ih < h1; ih += s.DH) {
    for (int64_t iw = w0; iw < w1; iw += s.DW) {
      const float v = x[ih * s.W + iw];
      if (v > m || v != v) {  // first maximum wins; NaN replaces anything
        m = v;
        mi = ih * s.W + iw;
      }
    }
  }
  *y = m;
  *idx = mi;
}

// Window rows [h0, h1) inside the input and the count_include_pad size of output row oh.
struct AvgRows {
  int64_t h0, h1, pool_h;
};
inline AvgRows avg_rows(const Pool2dShape& s, int64_t oh) {
  const int64_t hs = oh * s.SH - s.PH;
  const int64_t he = std::min(hs + s.KH, s.H + s.PH);
  return {std::max<int64_t>(hs, 0), std::min(he, s.H), he - hs};
}

// Divisor of output (oh, ow): the window clipped to the padded input, or to the input.
inline float avg_divisor(const Pool2dShape& s, bool cip, int64_t oh, int64_t ow, int64_t* h0, int64_t* h1,
                         int64_t* w0, int64_t* w1) {
  const AvgRows r = avg_rows(s, oh);
  const int64_t ws = ow * s.SW - s.PW;
  const int64_t we = std::min(ws + s.KW, s.W + s.PW);
  const int64_t pool_w = we - ws;
  *h0 = r.h0;
  *h1 = r.h1;
  *w0 = std::max<int64_t>(ws, 0);
  *w1 = std::min(we, s.W);
  return static_cast<float>(cip ? r.pool_h * pool_w : (*h1 - *h0) * (*w1 - *w0));
}

inline void avg_one(const Pool2dShape& s, bool cip, const float* x, int64_t oh, int64_t ow, float* y) {
  int64_t h0, h1, w0, w1;
  const float d = avg_divisor(s, cip, oh, ow, &h0, &h1, &w0, &w1);
  if (h0 >= h1 || w0 >= w1) {  // (cannot happen with padding <= kernel / 2; PyTorch writes 0)
    *y = 0.0f;
    return;
  }
  float sum = 0.0f;  // float, in (kh, kw) order, as PyTorch's NCHW kernel
  for (int64_t ih = h0; ih < h1; ++ih)
    for (int64_t iw = w0; iw < w1; ++iw) sum += x[ih * s.W + iw];
  *y = sum / d;
}

}  // namespace
}  // namespace fastnn
