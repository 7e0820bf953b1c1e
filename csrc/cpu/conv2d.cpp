// im2col / col2im for conv2d: the data movement between an NCHW image and the column matrix
// that turns a convolution into gemm. Portable code (stride-1 rows are contiguous copies the
// compiler turns into vector moves); the arithmetic lives in the gemm micro-kernels.
#include <algorithm>
#include <cstring>

#include "ops/conv2d.h"

namespace fastnn {
namespace {

// The output positions o in [0, n) whose input position o*stride + off lies inside [0, size):
// [lo, hi) (the rest read padding). off is tap*dilation - leading padding.
void valid_range(int64_t n, int64_t stride, int64_t off, int64_t size, int64_t* lo, int64_t* hi) {
  auto first_at_least = [&](int64_t bound) {  // smallest o with o*stride + off >= bound
    const int64_t t = bound - off;
    return t <= 0 ? 0 : (t + stride - 1) / stride;
  };
  *lo = std::min(n, first_at_least(0));
  *hi = std::max(*lo, std::min(n, first_at_least(size)));
}

// Output columns [lo, hi) of kernel column kw that read inside the image.
void valid_cols(const Conv2dShape& s, int64_t kw, int64_t* lo, int64_t* hi) {
  valid_range(s.OW(), s.SW, kw * s.DW - s.PL, s.W, lo, hi);
}

// Output rows [r0, r1) of the block [oh0, oh0 + noh) that read inside the image for kernel row kh.
void valid_rows(const Conv2dShape& s, int64_t kh, int64_t oh0, int64_t noh, int64_t* r0, int64_t* r1) {
  int64_t lo, hi;
  valid_range(s.OH(), s.SH, kh * s.DH - s.PT, s.H, &lo, &hi);
  *r0 = std::clamp(lo, oh0, oh0 + noh);
  *r1 = std::clamp(hi, *r0, oh0 + noh);
}

// Columns outside [lo, hi) of `rows` rows of width OW zeroed: the taps that fall on the padding.
void zero_outside(float* block, int64_t rows, int64_t OW, int64_t lo, int64_t hi) {
  for (int64_t r = 0; r < rows; ++r, block += OW) {
    std::fill(block, block + lo, 0.0f);
    std::fill(block + hi, block + OW, 0.0f);
  }
}

// Stride 1 along both axes and an output as wide as the input ('same' padding): a kernel tap
// maps the column block onto the image by one constant shift of the flat index, so im2col and
// col2im move whole blocks instead of row pieces (the taps that fall on the padding, which
// would wrap into the neighbouring row, are zeroed separately).
bool is_flat(const Conv2dShape& s) { return s.SW == 1 && s.SH == 1 && s.OW() == s.W; }

}  // namespace

void conv2d_im2col(const Conv2dShape& s, const float* x, int64_t g, int64_t oh0, int64_t noh, float* col,
                   int64_t ldcol) {
  const int64_t OW = s.OW(), Cg = s.Cg();
  const bool flat = is_flat(s);
  const float* xg = x + g * Cg * s.H * s.W;
  for (int64_t c = 0; c < Cg; ++c) {
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        float* row = col + ((c * s.KH + kh) * s.KW + kw) * ldcol;
        int64_t lo, hi;
        valid_cols(s, kw, &lo, &hi);
        if (flat) {  // one shifted copy from the first valid tap to the last, the rest zeroed
          const float* xc = xg + c * s.H * s.W;
          int64_t r0, r1;  // output rows of the block whose input row is inside the image
          valid_rows(s, kh, oh0, noh, &r0, &r1);
          const int64_t shift = (kh * s.DH - s.PT) * s.W + kw * s.DW - s.PL;
          const int64_t first = r0 * OW + lo, last = (r1 - 1) * OW + hi;  // flat, in the image
          if (r1 <= r0 || hi <= lo) {  // every tap of this block is on the padding
            std::fill(row, row + noh * OW, 0.0f);
            continue;
          }
          std::fill(row, row + first - oh0 * OW, 0.0f);
          std::memcpy(row + first - oh0 * OW, xc + first + shift, sizeof(float) * (last - first));
          std::fill(row + last - oh0 * OW, row + noh * OW, 0.0f);
          zero_outside(row + (r0 - oh0) * OW, r1 - r0, OW, lo, hi);  // wrapped neighbours
          continue;
        }
        const int64_t iw0 = lo * s.SW - s.PL + kw * s.DW;  // input column of output column lo
        for (int64_t oh = oh0; oh < oh0 + noh; ++oh, row += OW) {
          const int64_t ih = oh * s.SH - s.PT + kh * s.DH;
          if (ih < 0 || ih >= s.H) {
            std::fill(row, row + OW, 0.0f);
            continue;
          }
          const float* src = xg + (c * s.H + ih) * s.W + iw0;
          std::fill(row, row + lo, 0.0f);
          if (s.SW == 1) {
            std::memcpy(row + lo, src, sizeof(float) * (hi - lo));
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) row[ow] = src[(ow - lo) * s.SW];
          }
          std::fill(row + hi, row + OW, 0.0f);
        }
      }
    }
  }
}

void conv2d_col2im(const Conv2dShape& s, float* col, int64_t ldcol, int64_t g, int64_t oh0, int64_t noh,
                   float* dx) {
  const int64_t OW = s.OW(), Cg = s.Cg();
  const bool flat = is_flat(s);
  float* dxg = dx + g * Cg * s.H * s.W;
  for (int64_t c = 0; c < Cg; ++c) {
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        float* row = col + ((c * s.KH + kh) * s.KW + kw) * ldcol;
        int64_t lo, hi;
        valid_cols(s, kw, &lo, &hi);
        if (flat) {  // padding taps zeroed in the (scratch) column block, then one shifted add
          float* dxc = dxg + c * s.H * s.W;
          int64_t r0, r1;
          valid_rows(s, kh, oh0, noh, &r0, &r1);
          if (r1 <= r0 || hi <= lo) continue;  // every tap of this block is on the padding
          const int64_t shift = (kh * s.DH - s.PT) * s.W + kw * s.DW - s.PL;
          zero_outside(row + (r0 - oh0) * OW, r1 - r0, OW, lo, hi);
          // From the first valid element to the last: the flat range never leaves this channel
          // of this image (its ends are padding taps that would land in a neighbour, or outside).
          const int64_t first = r0 * OW + lo, last = (r1 - 1) * OW + hi;
          const float* src = row + first - oh0 * OW;
          float* dst = dxc + first + shift;
          for (int64_t i = 0; i < last - first; ++i) dst[i] += src[i];
          continue;
        }
        const int64_t iw0 = lo * s.SW - s.PL + kw * s.DW;
        for (int64_t oh = oh0; oh < oh0 + noh; ++oh, row += OW) {
          const int64_t ih = oh * s.SH - s.PT + kh * s.DH;
          if (ih < 0 || ih >= s.H) continue;  // taps on the padding have no input to reach
          float* dst = dxg + (c * s.H + ih) * s.W + iw0;
          if (s.SW == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow - lo] += row[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) dst[(ow - lo) * s.SW] += row[ow];
          }
        }
      }
    }
  }
}

int64_t conv2d_padded_floats(const Conv2dShape& s) {
  return s.Cg() * (s.PT + s.H + s.PB) * (s.PL + s.W + s.PR);
}

namespace {

// Row `n` outputs of a strided read: dst[o] = src[o * stride], with the stride a constant
// for the common cases so the loop has no multiply.
template <class Op>
inline void strided_row(float* dst, const float* src, int64_t n, int64_t stride, Op op) {
  if (stride == 1) {
    for (int64_t o = 0; o < n; ++o) op(dst[o], src[o]);
  } else if (stride == 2) {
    for (int64_t o = 0; o < n; ++o) op(dst[o], src[2 * o]);
  } else {
    for (int64_t o = 0; o < n; ++o) op(dst[o], src[o * stride]);
  }
}

}  // namespace

void conv2d_im2col_padded(const Conv2dShape& s, const float* x, int64_t g, float* xp, float* col,
                          int64_t ldcol) {
  const int64_t OH = s.OH(), OW = s.OW(), Cg = s.Cg(), Hp = s.PT + s.H + s.PB, Wp = s.PL + s.W + s.PR;
  const float* xg = x + g * Cg * s.H * s.W;
  std::fill(xp, xp + Cg * Hp * Wp, 0.0f);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t h = 0; h < s.H; ++h)
      std::memcpy(xp + (c * Hp + s.PT + h) * Wp + s.PL, xg + (c * s.H + h) * s.W, sizeof(float) * s.W);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        float* row = col + ((c * s.KH + kh) * s.KW + kw) * ldcol;
        const float* src = xp + (c * Hp + kh * s.DH) * Wp + kw * s.DW;
        for (int64_t oh = 0; oh < OH; ++oh)
          strided_row(row + oh * OW, src + oh * s.SH * Wp, OW, s.SW, [](float& d, float v) { d = v; });
      }
}

void conv2d_col2im_padded(const Conv2dShape& s, const float* col, int64_t ldcol, int64_t g, float* xp,
                          float* dx) {
  const int64_t OH = s.OH(), OW = s.OW(), Cg = s.Cg(), Hp = s.PT + s.H + s.PB, Wp = s.PL + s.W + s.PR;
  std::fill(xp, xp + Cg * Hp * Wp, 0.0f);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const float* row = col + ((c * s.KH + kh) * s.KW + kw) * ldcol;
        float* dst = xp + (c * Hp + kh * s.DH) * Wp + kw * s.DW;
        for (int64_t oh = 0; oh < OH; ++oh) {
          float* d = dst + oh * s.SH * Wp;
          const float* r = row + oh * OW;
          if (s.SW == 1) {
            for (int64_t o = 0; o < OW; ++o) d[o] += r[o];
          } else if (s.SW == 2) {
            for (int64_t o = 0; o < OW; ++o) d[2 * o] += r[o];
          } else {
            for (int64_t o = 0; o < OW; ++o) d[o * s.SW] += r[o];
          }
        }
      }
  float* dxg = dx + g * Cg * s.H * s.W;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t h = 0; h < s.H; ++h)
      std::memcpy(dxg + (c * s.H + h) * s.W, xp + (c * Hp + s.PT + h) * Wp + s.PL, sizeof(float) * s.W);
}

// No direct or Winograd kernels: column blocks and gemm for every shape.
const Conv2dKernels conv2d_kernels_default{};

}  // namespace fastnn
