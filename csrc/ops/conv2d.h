// conv2d: 2-D convolution (cross-correlation, PyTorch's Conv2d) on NCHW float32.
//
//   forward:          y[b, oc, oh, ow] = act(bias[oc] + sum_{c, kh, kw} w[oc, c, kh, kw] *
//                         x[b, g*Cg + c, oh*SH - PT + kh*DH, ow*SW - PL + kw*DW])      (y =)
//                     x (B, C, H, W), w (OC, C/G, KH, KW), bias (OC,) or null, y (B, OC, OH, OW),
//                     g = oc / (OC/G); taps outside the input read zero.
//   backward_data:    dx = d(sum y*dy)/dx                                             (dx =)
//   backward_weight:  dw = d(sum y*dy)/dw, summed over the batch                      (dw =)
//   backward_bias:    db[oc] = sum_{b, oh, ow} dy[b, oc, oh, ow]                      (db =)
//   Padding may be asymmetric (PyTorch's 'same' puts the odd pixel at the bottom/right).
//   3x3 kernels with unit stride and dilation, one group and >= 16 channels each way run as
//   Winograd F(2x2, 3x3) on AVX2 and AVX-512 (conv2d_winograd.cpp; a worst-case rounding bound a
//   few times the direct sum's; FASTNN_CONV_WINOGRAD=0 turns it off); most others with unit stride along W
//   run the direct AVX2 / AVX-512 kernels. The rest, and the portable build, are
//   lowered to gemm per image and group on column blocks of the im2col matrix
//   (C/G*KH*KW x OW-rows of output pixels), so no whole-image im2col buffer exists for large
//   inputs; images of at most 256 output pixels go several to a column block, side by side
//   (up to 512 columns), and a kernel that covers the whole unpadded image (one output pixel,
//   one group) is one gemm over the batch, a fully connected layer. Parallel over images or
//   blocks of images (one thread each, own column buffer) when there are at least as many as
//   threads, else inside each gemm; backward_weight sums the batch in a fixed order that
//   depends on the shape only. Results are bit-identical for every thread count.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/args.h"
#include "core/cpu.h"
#include "ops/gemm.h"

namespace fastnn {

// All sizes of one convolution; output sizes are computed here and nowhere else.
struct Conv2dShape {
  int64_t B = 0, C = 0, H = 0, W = 0;      // input
  int64_t OC = 0, KH = 1, KW = 1;          // weight (OC, C/G, KH, KW)
  int64_t SH = 1, SW = 1;                  // stride
  int64_t PT = 0, PB = 0, PL = 0, PR = 0;  // padding top, bottom, left, right
  int64_t DH = 1, DW = 1;                  // dilation
  int64_t G = 1;                           // groups

  int64_t OH() const { return (H + PT + PB - DH * (KH - 1) - 1) / SH + 1; }
  int64_t OW() const { return (W + PL + PR - DW * (KW - 1) - 1) / SW + 1; }
  int64_t Cg() const { return C / G; }
  int64_t OCg() const { return OC / G; }
  int64_t Kg() const { return Cg() * KH * KW; }  // gemm K of the forward
  // A 1x1 kernel with stride 1 and no padding: the image is its own column matrix.
  bool pointwise() const {
    return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PB == 0 && PL == 0 && PR == 0;
  }
};

// Throws ArgError (ValueError) naming conv2d on an impossible shape: sizes < 1, C or OC not
// divisible by G, an effective kernel larger than the padded input, sizes past 32-bit tile
// arithmetic.
void conv2d_check(const char* op, const Conv2dShape& s);

// stride (SH, SW), padding (top, bottom, left, right), dilation (DH, DW) and groups, as
// fastnn.ops.conv2d_* pass them (after conv2d_params: ints only).
struct Conv2dParams {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 4> pad{0, 0, 0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
};

// The rules of each conv2d entry on every device (csrc/ops/conv2d_meta.cpp): the arrays'
// dtypes, layouts and shapes checked (ArgError naming conv2d), the shape struct returned. An
// optional array is passed with present = false. The output shapes are conv2d_y_shape(s), the
// input shape and the weight shape, and (OC,) for the bias.
Conv2dShape conv2d_forward_meta(const char* op, const ArrayRef& x, const ArrayRef& w, const ArrayRef& bias,
                                const Conv2dParams& p, const std::string* activation, Activation* act);
Conv2dShape conv2d_backward_data_meta(const char* op, const ArrayRef& dy, const ArrayRef& w,
                                      const Shape& input_shape, const Conv2dParams& p);
Conv2dShape conv2d_backward_weight_meta(const char* op, const ArrayRef& dy, const ArrayRef& x,
                                        const Shape& weight_shape, const Conv2dParams& p);
Conv2dShape conv2d_backward_bias_meta(const char* op, const ArrayRef& dy);
// The shape struct of an input and a weight shape (4-D each), checked by conv2d_check.
Conv2dShape conv2d_shape(const char* op, const Shape& input_shape, const Shape& weight_shape,
                         const Conv2dParams& p);
Shape conv2d_y_shape(const Conv2dShape& s);

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, Activation act,
                    float* y, Isa isa, int nthreads);
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx, Isa isa,
                          int nthreads);
void conv2d_backward_weight(const Conv2dShape& s, const float* dy, const float* x, float* dw, Isa isa,
                            int nthreads);
void conv2d_backward_bias(const Conv2dShape& s, const float* dy, float* db, int nthreads);

// Winograd F(2x2, 3x3) for 3x3 kernels with unit stride and dilation, one group, at least 16
// input and output channels, outputs of 4x4 and more, at most 16 MiB of transformed data per
// image (csrc/ops/conv2d_winograd.cpp): false when it does not apply, or when
// FASTNN_CONV_WINOGRAD=0, and the caller goes on to the direct kernels.
bool conv2d_forward_winograd(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                             Activation act, float* y, Isa isa, int nthreads);
bool conv2d_winograd_enabled();           // FASTNN_CONV_WINOGRAD is not 0 (read once)
bool conv2d_winograd_available(Isa isa);  // enabled, and isa has the transforms (below)
// Its per-ISA transforms (csrc/cpu/winograd_impl.h): the input of nimg images to V[(xi*C + c)*ldv
// + tile] (through pad, pad_floats(s) of scratch zeroed before the first call; up to 7 floats
// past each row's last tile written), and the products M[(xi*OC + oc)*ldm + tile] to the output
// with bias and activation (up to 7 floats past each row's last tile read).
struct WinogradKernels {
  void (*input)(const Conv2dShape& s, const float* x, int64_t nimg, float* v, int64_t ldv, float* pad);
  void (*output)(const Conv2dShape& s, const float* m, int64_t ldm, int64_t nimg, const float* bias,
                 bool relu, float* y);
  int64_t (*pad_floats)(const Conv2dShape& s);
};

// The per-ISA kernels of conv2d: the portable unit has none (csrc/cpu/conv2d.cpp: column blocks
// and gemm serve every shape); csrc/cpu/avx2/conv2d.cpp and csrc/cpu/avx512/conv2d.cpp have
// them all. A null entry: this ISA has no such path; a direct kernel returning false declines
// the shape, and the caller goes on to the next path.
struct Conv2dKernels {
  // The direct forward. Declines a stride along W, an empty batch, a padded copy of the input
  // past 2^31 floats; AVX2 (pixels in lanes) also the 1x1 shortcut (a plain gemm already) and
  // strided rows narrower than 4. Where it exists, backward_data with stride 1 runs as its transposed
  // forward.
  bool (*forward_direct)(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                         Activation act, float* y, int nthreads);
  // The direct backward_weight for 3-wide kernels with stride 1 and at least 16 (AVX2: 8) output
  // channels per group; AVX2 also declines a (K x OC/G) weight gradient past 128K floats.
  bool (*backward_weight_direct)(const Conv2dShape& s, const float* dy, const float* x, float* dw,
                                 int nthreads);
  WinogradKernels winograd;  // null entries: no Winograd on this ISA
};
extern const Conv2dKernels conv2d_kernels_default, conv2d_kernels_avx2, conv2d_kernels_avx512;

// Rows [oh0, oh0 + noh) of image x's im2col matrix for group g: col[(c*KH + kh)*KW + kw][p]
// with p over those output rows' pixels (row stride ldcol). col2im adds such a block back (and
// may zero the block's entries for taps on the padding: col is scratch).
void conv2d_im2col(const Conv2dShape& s, const float* x, int64_t g, int64_t oh0, int64_t noh, float* col,
                   int64_t ldcol);
void conv2d_col2im(const Conv2dShape& s, float* col, int64_t ldcol, int64_t g, int64_t oh0, int64_t noh,
                   float* dx);
// The whole image's im2col block through a zero-padded copy xp (conv2d_padded_floats(s)
// floats of scratch: C/G x (PT + H + PB) x (PL + W + PR)): strided reads with no bounds
// checks, for small images whose rows are a few pixels. col2im_padded sums into xp and then
// overwrites group g's channels of dx (no need to zero dx first).
int64_t conv2d_padded_floats(const Conv2dShape& s);
void conv2d_im2col_padded(const Conv2dShape& s, const float* x, int64_t g, float* xp, float* col,
                          int64_t ldcol);
void conv2d_col2im_padded(const Conv2dShape& s, const float* col, int64_t ldcol, int64_t g, float* xp,
                          float* dx);

}  // namespace fastnn
