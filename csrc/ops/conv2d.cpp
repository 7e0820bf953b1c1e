// conv2d front door: shape checks, the per-image / per-group / per-row-block lowering to gemm,
// the 1x1 shortcut (the input is its own column matrix), and the threading over images.
#include "ops/conv2d.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/threads.h"

namespace fastnn {
namespace {

// Column blocks hold about this many floats (1 MiB: the block and the gemm's packed panels
// stay in L2).
constexpr int64_t kColBudget = 256 * 1024;

// Output rows per column block.
int64_t rows_per_block(const Conv2dShape& s) {
  const int64_t per_row = s.Kg() * s.OW();
  return std::max<int64_t>(1, std::min(s.OH(), kColBudget / std::max<int64_t>(1, per_row)));
}

// Runs body(b, nt_inner, col) for every image b: images split over threads (each with its own
// column buffer, gemm on one thread) when there are enough of them, else one after another
// with the threads inside each gemm. Either way each image's arithmetic is the same.
template <class F>
void for_each_image(const Conv2dShape& s, int nthreads, size_t col_floats, F&& body) {
  const int outer = static_cast<int>(std::min<int64_t>(nthreads, s.B));
  if (outer <= 1 || s.B < nthreads) {
    std::vector<float> col(col_floats);
    for (int64_t b = 0; b < s.B; ++b) body(b, nthreads, col.data());
    return;
  }
  std::vector<std::vector<float>> cols(outer, std::vector<float>(col_floats));
  parallel_for(outer, [&](int tid, int nt) {
    long b0, b1;
    split_range(s.B, tid, nt, &b0, &b1);
    for (long b = b0; b < b1; ++b) body(b, 1, cols[tid].data());
  });
}

// Small images are lowered several at a time: a gemm over one image's few output pixels (49
// for a 4x4 stride-2 layer at 7x7) leaves the micro-kernel's column panels short and packs the
// weights once per image. Up to kBlockCols pixels of consecutive images sit side by side in one
// column block (image i's pixel p in column i*OHW + p), within kBlockBudget floats.
constexpr int64_t kBlockCols = 512;
constexpr int64_t kBlockBudget = 512 * 1024;

// Images per column block: 1 (one image at a time, in row blocks) unless an image has at most
// kBlockCols / 2 output pixels. Depends on the shape only, so backward_weight's order of sums
// is the same for every thread count.
int64_t images_per_block(const Conv2dShape& s) {
  const int64_t OHW = s.OH() * s.OW();
  if (s.pointwise() || OHW == 0 || 2 * OHW > kBlockCols) return 1;
  const int64_t by_budget = kBlockBudget / std::max<int64_t>(1, (s.Kg() + s.OCg()) * OHW);
  return std::max<int64_t>(1, std::min({kBlockCols / OHW, by_budget, s.B}));
}

// Runs body(b0, n, nt_inner, buf) for the blocks of n <= nb consecutive images from b0: blocks
// split over threads (own buffer, gemm on one thread) when there are enough of them, else one
// after another with the threads inside each gemm.
template <class F>
void for_each_image_block(const Conv2dShape& s, int64_t nb, int nthreads, size_t buf_floats, F&& body) {
  const int64_t blocks = (s.B + nb - 1) / nb;
  const int outer = static_cast<int>(std::min<int64_t>(nthreads, blocks));
  if (outer <= 1 || blocks < nthreads) {
    std::vector<float> buf(buf_floats);
    for (int64_t k = 0; k < blocks; ++k) body(k * nb, std::min(nb, s.B - k * nb), nthreads, buf.data());
    return;
  }
  std::vector<std::vector<float>> bufs(outer, std::vector<float>(buf_floats));
  parallel_for(outer, [&](int tid, int nt) {
    long k0, k1;
    split_range(blocks, tid, nt, &k0, &k1);
    for (long k = k0; k < k1; ++k) body(k * nb, std::min(nb, s.B - k * nb), 1, bufs[tid].data());
  });
}

// Scratch floats for a padded copy of one image group (0: the blocks use the bounds-checked
// im2col): small images go through one, unless the padding makes it large.
int64_t padded_scratch(const Conv2dShape& s) {
  const int64_t f = conv2d_padded_floats(s);
  return f <= kBlockBudget ? f : 0;
}

// Image x's im2col block for group g (all its output rows), through xp when there is one.
void image_im2col(const Conv2dShape& s, const float* x, int64_t g, float* xp, float* col, int64_t ldcol) {
  if (xp)
    conv2d_im2col_padded(s, x, g, xp, col, ldcol);
  else
    conv2d_im2col(s, x, g, 0, s.OH(), col, ldcol);
}

// dy of images [b0, b0 + n), group g, side by side: cat (OCg x n*OHW).
void gather_images(const Conv2dShape& s, const float* dy, int64_t b0, int64_t n, int64_t g, float* cat) {
  const int64_t OHW = s.OH() * s.OW(), OCg = s.OCg();
  for (int64_t o = 0; o < OCg; ++o)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(cat + o * n * OHW + i * OHW, dy + ((b0 + i) * s.OC + g * OCg + o) * OHW,
                  OHW * sizeof(float));
}

// The kernel covers the whole (unpadded) image, so the output is one pixel: a fully connected
// layer on the flattened images, x (B x K) and w (OC x K). One gemm over the batch, where a
// gemm per image would be a matrix-vector product (DCGAN's 7x7 first and last layers).
bool whole_image(const Conv2dShape& s) {
  return s.G == 1 && s.B > 0 && s.KH == s.H && s.KW == s.W && s.DH == 1 && s.DW == 1 && s.PT == 0 &&
         s.PB == 0 && s.PL == 0 && s.PR == 0;
}

void forward_whole_image(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                         Activation act, float* y, Isa isa, int nthreads) {
  const int64_t K = s.Kg();
  GemmArgs a;
  a.K = K;
  a.act = act;
  if (s.OC >= 16 || s.OC >= s.B) {  // y (B x OC) = x (B x K) @ w^T + bias
    a.M = s.B;
    a.N = s.OC;
    a.a = x;
    a.lda = K;
    a.b = w;
    a.ldb = K;
    a.trans_b = true;
    a.bias = bias;
    a.out = y;
    a.ldc = s.OC;
    gemm(a, isa, nthreads);
    return;
  }
  // Few outputs per image (a discriminator's last layer): y^T (OC x B) = w @ x^T + bias, so
  // the short side is the micro-kernel's rows, not its wider column panel.
  std::vector<float> yt(s.OC == 1 ? 0 : static_cast<size_t>(s.OC * s.B));
  a.M = s.OC;
  a.N = s.B;
  a.a = w;
  a.lda = K;
  a.b = x;
  a.ldb = K;
  a.trans_b = true;
  a.bias_row = bias;
  a.out = s.OC == 1 ? y : yt.data();
  a.ldc = s.B;
  gemm(a, isa, nthreads);
  if (s.OC > 1)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t o = 0; o < s.OC; ++o) y[b * s.OC + o] = yt[o * s.B + b];
}

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, Activation act,
                    float* y, Isa isa, int nthreads) {
  conv2d_check("conv2d_forward", s);
  if (conv2d_forward_winograd(s, x, w, bias, act, y, isa, nthreads)) return;
  if (whole_image(s)) return forward_whole_image(s, x, w, bias, act, y, isa, nthreads);
  const Conv2dKernels& k = FASTNN_KERNEL_TABLE(conv2d_kernels, isa);
  if (s.B > 0 && k.forward_direct && k.forward_direct(s, x, w, bias, act, y, nthreads)) return;
  const int64_t OHW = s.OH() * s.OW(), HW = s.H * s.W, Kg = s.Kg(), OCg = s.OCg();
  const int64_t nb = images_per_block(s);
  if (nb > 1) {
    const int64_t pf = padded_scratch(s);
    for_each_image_block(
        s, nb, nthreads, (Kg + OCg) * nb * OHW + pf, [&](int64_t b0, int64_t n, int nt, float* buf) {
          float *col = buf, *cat = buf + Kg * n * OHW, *xp = pf ? cat + OCg * n * OHW : nullptr;
          for (int64_t g = 0; g < s.G; ++g) {
            for (int64_t i = 0; i < n; ++i)
              image_im2col(s, x + (b0 + i) * s.C * HW, g, xp, col + i * OHW, n * OHW);
            GemmArgs a;  // cat (OCg x n*OHW) = w[g] (OCg x Kg) @ col (Kg x n*OHW) + bias
            a.M = OCg;
            a.N = n * OHW;
            a.K = Kg;
            a.a = w + g * OCg * Kg;
            a.lda = Kg;
            a.b = col;
            a.ldb = a.N;
            a.bias_row = bias ? bias + g * OCg : nullptr;
            a.act = act;
            a.out = cat;
            a.ldc = a.N;
            gemm(a, isa, nt);
            for (int64_t i = 0; i < n; ++i)
              for (int64_t o = 0; o < OCg; ++o)
                std::memcpy(y + ((b0 + i) * s.OC + g * OCg + o) * OHW, cat + o * n * OHW + i * OHW,
                            OHW * sizeof(float));
          }
        });
    return;
  }
  const bool pointwise = s.pointwise();
  const int64_t noh = rows_per_block(s);
  for_each_image(s, nthreads, pointwise ? 0 : Kg * noh * s.OW(), [&](int64_t b, int nt, float* col) {
    for (int64_t g = 0; g < s.G; ++g) {
      GemmArgs a;  // y[b, g] (OCg x pixels) = w[g] (OCg x Kg) @ col (Kg x pixels) + bias
      a.M = OCg;
      a.K = Kg;
      a.a = w + g * OCg * Kg;
      a.lda = Kg;
      a.bias_row = bias ? bias + g * OCg : nullptr;
      a.act = act;
      a.ldc = OHW;
      float* yg = y + (b * s.OC + g * OCg) * OHW;
      if (pointwise) {
        a.N = OHW;
        a.b = x + (b * s.C + g * s.Cg()) * HW;
        a.ldb = HW;
        a.out = yg;
        gemm(a, isa, nt);
        continue;
      }
      for (int64_t oh0 = 0; oh0 < s.OH(); oh0 += noh) {
        const int64_t rows = std::min(noh, s.OH() - oh0);
        conv2d_im2col(s, x + b * s.C * HW, g, oh0, rows, col, rows * s.OW());
        a.N = rows * s.OW();
        a.b = col;
        a.ldb = a.N;
        a.out = yg + oh0 * s.OW();
        gemm(a, isa, nt);
      }
    }
  });
}

namespace {

// With stride 1 the input gradient is itself a forward convolution: of dy, by the weights with
// input and output channels swapped and the taps flipped, padded by dilation*(kernel-1) minus
// the forward's padding. Taken where a direct forward runs it (AVX-512 and AVX2; AVX2, 32 -> 64
// at 16x16 and 14x14: 1.6-1.7x gemm + col2im; 3 -> 32 at 32x32: 1.2x), except for one input
// channel per group feeding many outputs (1 -> 32 at 28x28: 0.93 ms against 0.54 ms for gemm +
// col2im, where the transposed forward has a single output channel and streams all of dy);
// depthwise and 3 -> 32 gain 6x and 1.3x over gemm + col2im.
bool backward_data_as_forward(const Conv2dShape& s, const float* dy, const float* w, float* dx, Isa isa,
                              int nthreads) {
  Conv2dShape t;
  t.B = s.B;
  t.C = s.OC;
  t.H = s.OH();
  t.W = s.OW();
  t.OC = s.C;
  t.KH = s.KH;
  t.KW = s.KW;
  t.DH = s.DH;
  t.DW = s.DW;
  t.G = s.G;
  t.PT = s.DH * (s.KH - 1) - s.PT;
  t.PB = s.DH * (s.KH - 1) - s.PB;
  t.PL = s.DW * (s.KW - 1) - s.PL;
  t.PR = s.DW * (s.KW - 1) - s.PR;
  if (!FASTNN_KERNEL_TABLE(conv2d_kernels, isa).forward_direct || s.SH != 1 || s.SW != 1 ||
      (s.Cg() == 1 && s.OCg() >= 8) || s.B == 0 || t.PT < 0 || t.PB < 0 || t.PL < 0 || t.PR < 0) {
    return false;
  }
  // w (OC, Cg, KH, KW) -> wt (C, OCg, KH, KW): wt[g*Cg + c, o, k] = w[g*OCg + o, c, KH*KW-1-k]
  const int64_t Cg = s.Cg(), OCg = s.OCg(), KK = s.KH * s.KW;
  std::vector<float> wt(static_cast<size_t>(s.C * OCg * KK));
  for (int64_t g = 0; g < s.G; ++g)
    for (int64_t o = 0; o < OCg; ++o)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t k = 0; k < KK; ++k)
          wt[((g * Cg + c) * OCg + o) * KK + k] = w[((g * OCg + o) * Cg + c) * KK + (KK - 1 - k)];
  conv2d_forward(t, dy, wt.data(), nullptr, Activation::None, dx, isa, nthreads);
  return true;
}

}  // namespace

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx, Isa isa,
                          int nthreads) {
  conv2d_check("conv2d_backward_data", s);
  const int64_t OHW = s.OH() * s.OW(), HW = s.H * s.W, Kg = s.Kg(), OCg = s.OCg();
  if (whole_image(s)) {
    GemmArgs a;  // dx (B x K) = dy (B x OC) @ w (OC x K)
    a.M = s.B;
    a.N = Kg;
    a.K = s.OC;
    a.a = dy;
    a.lda = s.OC;
    a.b = w;
    a.ldb = Kg;
    a.out = dx;
    a.ldc = Kg;
    gemm(a, isa, nthreads);
    return;
  }
  if (backward_data_as_forward(s, dy, w, dx, isa, nthreads)) return;
  const int64_t nb = images_per_block(s);
  if (nb > 1) {
    const int64_t pf = padded_scratch(s);
    for_each_image_block(
        s, nb, nthreads, (Kg + OCg) * nb * OHW + pf, [&](int64_t b0, int64_t n, int nt, float* buf) {
          float *col = buf, *cat = buf + Kg * n * OHW, *xp = pf ? cat + OCg * n * OHW : nullptr;
          if (!xp) std::fill(dx + b0 * s.C * HW, dx + (b0 + n) * s.C * HW, 0.0f);  // col2im accumulates
          for (int64_t g = 0; g < s.G; ++g) {
            gather_images(s, dy, b0, n, g, cat);
            GemmArgs a;  // dcol (Kg x n*OHW) = w[g]^T (Kg x OCg) @ cat (OCg x n*OHW)
            a.M = Kg;
            a.N = n * OHW;
            a.K = OCg;
            a.a = w + g * OCg * Kg;
            a.lda = Kg;
            a.trans_a = true;
            a.b = cat;
            a.ldb = a.N;
            a.out = col;
            a.ldc = a.N;
            gemm(a, isa, nt);
            for (int64_t i = 0; i < n; ++i) {
              float* dxb = dx + (b0 + i) * s.C * HW;
              if (xp)
                conv2d_col2im_padded(s, col + i * OHW, n * OHW, g, xp, dxb);
              else
                conv2d_col2im(s, col + i * OHW, n * OHW, g, 0, s.OH(), dxb);
            }
          }
        });
    return;
  }
  const bool pointwise = s.pointwise();
  const int64_t noh = rows_per_block(s);
  for_each_image(s, nthreads, pointwise ? 0 : Kg * noh * s.OW(), [&](int64_t b, int nt, float* col) {
    float* dxb = dx + b * s.C * HW;
    if (!pointwise) std::fill(dxb, dxb + s.C * HW, 0.0f);  // col2im accumulates
    for (int64_t g = 0; g < s.G; ++g) {
      GemmArgs a;  // dcol (Kg x pixels) = w[g]^T (Kg x OCg) @ dy[b, g] (OCg x pixels)
      a.M = Kg;
      a.K = OCg;
      a.a = w + g * OCg * Kg;
      a.lda = Kg;
      a.trans_a = true;
      a.ldb = OHW;
      const float* dyg = dy + (b * s.OC + g * OCg) * OHW;
      if (pointwise) {
        a.N = OHW;
        a.b = dyg;
        a.out = dxb + g * s.Cg() * HW;
        a.ldc = HW;
        gemm(a, isa, nt);
        continue;
      }
      for (int64_t oh0 = 0; oh0 < s.OH(); oh0 += noh) {
        const int64_t rows = std::min(noh, s.OH() - oh0);
        a.N = rows * s.OW();
        a.b = dyg + oh0 * s.OW();
        a.out = col;
        a.ldc = a.N;
        gemm(a, isa, nt);
        conv2d_col2im(s, col, a.N, g, oh0, rows, dxb);
      }
    }
  });
}

void conv2d_backward_weight(const Conv2dShape& s, const float* dy, const float* x, float* dw, Isa isa,
                            int nthreads) {
  conv2d_check("conv2d_backward_weight", s);
  const int64_t OHW = s.OH() * s.OW(), HW = s.H * s.W, Kg = s.Kg(), OCg = s.OCg();
  if (whole_image(s)) {
    GemmArgs a;  // dw (OC x K) = dy^T (OC x B) @ x (B x K): the batch summed inside the gemm
    a.M = s.OC;
    a.N = Kg;
    a.K = s.B;
    a.a = dy;
    a.lda = s.OC;
    a.trans_a = true;
    a.b = x;
    a.ldb = Kg;
    a.out = dw;
    a.ldc = Kg;
    gemm(a, isa, nthreads);
    return;
  }
  const Conv2dKernels& k = FASTNN_KERNEL_TABLE(conv2d_kernels, isa);
  if (k.backward_weight_direct && k.backward_weight_direct(s, dy, x, dw, nthreads)) return;
  if (s.B == 0) {
    std::fill(dw, dw + s.OC * Kg, 0.0f);
    return;
  }
  const int64_t nb = images_per_block(s);
  if (nb > 1) {
    // Blocks of nb images in order; the sum over a block's pixels runs inside the gemm.
    std::vector<float> col(static_cast<size_t>(Kg * nb * OHW)), cat(static_cast<size_t>(OCg * nb * OHW));
    std::vector<float> xp(static_cast<size_t>(padded_scratch(s)));
    for (int64_t g = 0; g < s.G; ++g) {
      for (int64_t b0 = 0; b0 < s.B; b0 += nb) {
        const int64_t n = std::min(nb, s.B - b0);
        for (int64_t i = 0; i < n; ++i)
          image_im2col(s, x + (b0 + i) * s.C * HW, g, xp.empty() ? nullptr : xp.data(), col.data() + i * OHW,
                       n * OHW);
        gather_images(s, dy, b0, n, g, cat.data());
        GemmArgs a;  // dw[g] (OCg x Kg) (+)= cat (OCg x n*OHW) @ col^T (n*OHW x Kg)
        a.M = OCg;
        a.N = Kg;
        a.K = n * OHW;
        a.a = cat.data();
        a.lda = a.K;
        a.b = col.data();
        a.ldb = a.K;
        a.trans_b = true;
        a.out = dw + g * OCg * Kg;
        a.c = a.out;
        a.ldc = Kg;
        a.beta = b0 == 0 ? 0.0f : 1.0f;
        gemm(a, isa, nthreads);
      }
    }
    return;
  }
  const bool pointwise = s.pointwise();
  const int64_t noh = rows_per_block(s);
  std::vector<float> col(pointwise ? 0 : Kg * noh * s.OW());
  // The batch is summed in order, image after image, block after block: threads work inside
  // each gemm, so the sum never depends on the thread count.
  for (int64_t g = 0; g < s.G; ++g) {
    bool first = true;
    for (int64_t b = 0; b < s.B; ++b) {
      GemmArgs a;  // dw[g] (OCg x Kg) (+)= dy[b, g] (OCg x pixels) @ col^T (pixels x Kg)
      a.M = OCg;
      a.N = Kg;
      a.trans_b = true;
      a.out = dw + g * OCg * Kg;
      a.c = a.out;
      a.ldc = Kg;
      a.lda = OHW;
      const float* dyg = dy + (b * s.OC + g * OCg) * OHW;
      const float* xb = x + b * s.C * HW;
      if (pointwise) {
        a.K = OHW;
        a.a = dyg;
        a.b = xb + g * s.Cg() * HW;
        a.ldb = HW;
        a.beta = first ? 0.0f : 1.0f;
        gemm(a, isa, nthreads);
        first = false;
        continue;
      }
      for (int64_t oh0 = 0; oh0 < s.OH(); oh0 += noh) {
        const int64_t rows = std::min(noh, s.OH() - oh0);
        conv2d_im2col(s, xb, g, oh0, rows, col.data(), rows * s.OW());
        a.K = rows * s.OW();
        a.a = dyg + oh0 * s.OW();
        a.b = col.data();
        a.ldb = a.K;
        a.beta = first ? 0.0f : 1.0f;
        gemm(a, isa, nthreads);
        first = false;
      }
    }
  }
}

void conv2d_backward_bias(const Conv2dShape& s, const float* dy, float* db, int nthreads) {
  const int64_t OHW = s.OH() * s.OW();
  const int64_t B = OHW == 0 ? 0 : s.B;  // empty planes: every sum is 0 (no loop over the batch)
  // Parallel over channels; each channel sums images in order, each image's plane in 16
  // independent float lanes (vectorisable without reassociation), lanes and images in double.
  parallel(static_cast<int>(std::min<int64_t>(nthreads, std::max<int64_t>(1, s.OC))), [&](int tid, int nt) {
    long c0, c1;
    split_range(s.OC, tid, nt, &c0, &c1);
    for (long oc = c0; oc < c1; ++oc) {
      double total = 0.0;
      for (int64_t b = 0; b < B; ++b) {
        const float* p = dy + (b * s.OC + oc) * OHW;
        float lane[16] = {};
        int64_t i = 0;
        for (; i + 16 <= OHW; i += 16)
          for (int j = 0; j < 16; ++j) lane[j] += p[i + j];
        double sum = 0.0;
        for (int j = 0; j < 16; ++j) sum += lane[j];
        for (; i < OHW; ++i) sum += p[i];
        total += sum;
      }
      db[oc] = static_cast<float>(total);
    }
  });
}

}  // namespace fastnn
