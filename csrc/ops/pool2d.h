// pool2d: max and average pooling over the H, W planes of NCHW float32 tensors, and global
// average pooling (adaptive_avg_pool2d to 1x1). Semantics are PyTorch's.    (outputs: =)
//
//   x (N, C, H, W) -> y (N, C, OH, OW), window KH x KW, stride SH/SW, padding PH/PW
//   (max: padding is -inf, i.e. ignored; avg: zeros), dilation DH/DW (max only).
//   OH = floor_or_ceil((H + 2 PH - DH (KH - 1) - 1) / SH) + 1, and with ceil_mode the last
//   window must start inside the input or the left padding (pool2d_out_size, the one place).
//   max: y = max over the window, idx (int64) = ih * W + iw of the first maximum in (kh, kw)
//        order, NaN wins (a later NaN replaces an earlier one), as PyTorch returns them.
//        backward: dx = 0, then dx[n, c].flat[idx] += dy (reads only dy and idx).
//   avg: y = sum / d, d = window size clipped to the padded input (count_include_pad) or to
//        the input (not); backward spreads dy / d over the window (dx = 0 first).
//   global: y (N, C, 1, 1) = mean over H x W (sum in double); backward dx = dy / (H W).
// Parallel over the N*C planes (each plane by one thread, in a fixed order): results are
// bit-identical for every thread count and, for max and avg forward, between ISAs.
#pragma once
#include <cstdint>
#include <vector>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

struct Pool2dShape {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t KH = 1, KW = 1, SH = 1, SW = 1, PH = 0, PW = 0, DH = 1, DW = 1;
  bool ceil_mode = false;
  int64_t OH = 0, OW = 0;  // set by pool2d_shape
  int64_t planes() const { return N * C; }
};

// PyTorch's pooling_output_shape: floor or ceil, and the ceil-mode correction.
int64_t pool2d_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode);

// Checks the sizes and options as PyTorch does and fills OH, OW; throws std::invalid_argument
// ("fastnn.ops.<op>: ...", a ValueError in Python) on kernel/stride/dilation < 1, padding
// above half the kernel, C/H/W == 0, an output smaller than 1x1, or a plane of >= 2^31 elements.
void pool2d_shape(const char* op, Pool2dShape* s);

// The rules of each pooling entry on every device (csrc/ops/pool2d_meta.cpp; ArgError naming
// op). `params` holds the options (kernel, stride, padding, dilation, ceil_mode); the input's
// sizes come from x, checked float32 NCHW; the result is the checked shape struct. The
// backward also checks dy (and the max backward's int64 indices, when present) against the
// pooled shape pool2d_y_shape(s). global_avg_pool2d_meta: x (and dy when present) of the
// global pooling (OH = OW = 1).
Pool2dShape pool2d_forward_meta(const char* op, const ArrayRef& x, const Pool2dShape& params);
Pool2dShape pool2d_backward_meta(const char* op, const ArrayRef& dy, const ArrayRef& x,
                                 const ArrayRef& indices, const Pool2dShape& params);
Pool2dShape global_avg_pool2d_meta(const char* op, const ArrayRef& x, const ArrayRef& dy);
Shape pool2d_y_shape(const Pool2dShape& s);

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, int64_t* idx, Isa isa, int nthreads);
// Throws std::invalid_argument when an index is outside [0, H*W) (nothing is written there).
// relu_x non-null: x is the output of a ReLU, and dx is the gradient through that ReLU too
// (dy reaches x[i] only where x[i] > 0, or NaN: torch's threshold_backward), which saves the
// ReLU backward's pass over the whole activation.
void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int64_t* idx, const float* relu_x,
                         float* dx, int nthreads);
void avg_pool2d_forward(const Pool2dShape& s, bool count_include_pad, const float* x, float* y, Isa isa,
                        int nthreads);
void avg_pool2d_backward(const Pool2dShape& s, bool count_include_pad, const float* dy, float* dx,
                         int nthreads);
// planes = N*C, hw = H*W.
void global_avg_pool2d_forward(int64_t planes, int64_t hw, const float* x, float* y, int nthreads);
void global_avg_pool2d_backward(int64_t planes, int64_t hw, const float* dy, float* dx, int nthreads);

// The per-ISA forward kernels on planes [p0, p1) (csrc/cpu/pool2d.cpp, csrc/cpu/avx2/pool2d.cpp,
// csrc/cpu/avx512/pool2d.cpp; the AVX ones hand the shapes they do not vectorise to the
// portable table's).
struct Pool2dKernels {
  void (*max_planes)(const Pool2dShape& s, const float* x, float* y, int64_t* idx, int64_t p0, int64_t p1);
  void (*avg_planes)(const Pool2dShape& s, bool cip, const float* x, float* y, int64_t p0, int64_t p1);
};
extern const Pool2dKernels pool2d_kernels_default, pool2d_kernels_avx2, pool2d_kernels_avx512;

// Portable backward kernels on planes [p0, p1); max returns false on an index out of range.
bool max_pool2d_backward_planes(const Pool2dShape& s, const float* dy, const int64_t* idx,
                                const float* relu_x, float* dx, int64_t p0, int64_t p1);
void avg_pool2d_backward_planes(const Pool2dShape& s, bool cip, const float* dy, float* dx, int64_t p0,
                                int64_t p1);

}  // namespace fastnn
