// conv2d by Winograd's minimal filtering, F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): each 2x2 block of output pixels (a tile) is
//   Y = A^T [ sum_c (G g_{oc,c} G^T) . (B^T d_c B) ] A
// with d_c the tile's 4x4 input patch of channel c and g the 3x3 kernel: 16 multiplies per tile
// and channel pair where the direct sum takes 36. The sum over c of the 16 element-wise
// products is 16 matrix products, one per position xi of the 4x4 transform:
//   M[xi] (OC x tiles) = U[xi] (OC x C) @ V[xi] (C x tiles)
// which run on the ISA's gemm; the transforms of the input (V) and of the output (from M) are
// the per-ISA loops of csrc/cpu/winograd_impl.h.
//
// Tiles are taken a few whole images at a time (a block), so that V and M of one block stay in
// L2; blocks are split over threads, each product on one thread, so every output element is
// computed by the same operations whatever the thread count. The weights are transformed
// once per call, in float64, rounded once.
//
// Rounding: the transforms add and subtract up to 4 values (the weights' also halve), so the
// worst-case bound is a few times that of the direct sum over the same products (checked in
// tests/test_conv2d.py through the transforms' absolute values); measured on a 32->64 layer the
// error is no larger than the direct kernels' (each gemm sums C terms, not 9C).
// An Inf or NaN in a tile's input patch makes all four of its outputs NaN (the direct sum
// gives Inf or NaN only where a tap reads it). FASTNN_CONV_WINOGRAD=0 turns this path off.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <vector>

#include "core/dispatch.h"
#include "core/threads.h"
#include "ops/conv2d.h"
#include "ops/gemm.h"

namespace fastnn {
namespace {

constexpr int kXi = 16;

// U[(xi*OC + oc)*C + c] = (G g G^T)[xi] for g = w[oc, c] (3x3), G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
void transform_weights(const Conv2dShape& s, const float* w, float* U) {
  const int64_t C = s.C, OC = s.OC;
  for (int64_t oc = 0; oc < OC; ++oc)
    for (int64_t c = 0; c < C; ++c) {
      const float* g = w + (oc * C + c) * 9;
      double t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        const double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
        t[0][j] = g0;
        t[1][j] = 0.5 * (g0 + g1 + g2);
        t[2][j] = 0.5 * (g0 - g1 + g2);
        t[3][j] = g2;
      }
      for (int a = 0; a < 4; ++a) {  // (G g) G^T
        const double u[4] = {t[a][0], 0.5 * (t[a][0] + t[a][1] + t[a][2]),
                             0.5 * (t[a][0] - t[a][1] + t[a][2]), t[a][2]};
        for (int b = 0; b < 4; ++b) U[((4 * a + b) * OC + oc) * C + c] = static_cast<float>(u[b]);
      }
    }
}

}  // namespace

bool conv2d_winograd_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("FASTNN_CONV_WINOGRAD");
    return !(e && e[0] == '0');
  }();
  return on;
}

bool conv2d_winograd_available(Isa isa) {
  return conv2d_winograd_enabled() && FASTNN_KERNEL_TABLE(conv2d_kernels, isa).winograd.input != nullptr;
}

bool conv2d_forward_winograd(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                             Activation act, float* y, Isa isa, int nthreads) {
  if (s.KH != 3 || s.KW != 3 || s.SH != 1 || s.SW != 1 || s.DH != 1 || s.DW != 1 || s.G != 1) return false;
  // Few channels: the transforms cost as much as the products save (first layers run direct).
  if (s.B < 1 || s.C < 16 || s.OC < 16 || s.OH() < 4 || s.OW() < 4 || !conv2d_winograd_enabled())
    return false;
  const WinogradKernels& k = FASTNN_KERNEL_TABLE(conv2d_kernels, isa).winograd;
  if (!k.input) return false;  // none on this ISA: column blocks and gemm
  const int64_t C = s.C, OC = s.OC, TW = (s.OW() + 1) / 2, T = (s.OH() + 1) / 2 * TW;
  // Images per block: at least ~96 tiles (the products' columns), V and M within 3/4 of L2.
  const int64_t per_image = kXi * (C + OC) * T * 4;
  // A block is at least one image: past 16 MiB of V and M per image (say 56x56 with 128
  // channels each way) the direct kernels run instead of this scratch growing with the image.
  if (per_image > (int64_t{16} << 20)) return false;
  const int64_t budget = std::max<int64_t>(cpu_caches().l2, 256 * 1024) * 3 / 4;
  const int64_t nimg = std::max<int64_t>(1, std::min<int64_t>({(96 + T - 1) / T, budget / per_image, s.B}));
  const int64_t nblock = (s.B + nimg - 1) / nimg, ld = nimg * T + 8;  // + 8: a row's last vector
  if (kXi * std::max(C, OC) * ld > (int64_t{1} << 31) - 1) return false;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, nblock)));

  std::vector<float> U(static_cast<size_t>(kXi * OC * C));
  transform_weights(s, w, U.data());
  // Each thread's V, M and row buffers, made here: nothing may throw in the parallel region
  // but the products (caught below).
  const size_t per_thread = static_cast<size_t>(kXi * (C + OC) * ld + k.pad_floats(s));
  std::vector<float> scratch(per_thread * static_cast<size_t>(nt));  // zeros: the padding stays so
  parallel_for(nt, [&](int tid, int cnt) {
    long b0, b1;
    split_range(nblock, tid, cnt, &b0, &b1);
    float* V = scratch.data() + per_thread * static_cast<size_t>(tid);
    float* M = V + kXi * C * ld;
    float* pad = M + kXi * OC * ld;
    for (long blk = b0; blk < b1; ++blk) {
      const int64_t i0 = blk * nimg, n = std::min(nimg, s.B - i0), tiles = n * T;
      k.input(s, x + i0 * C * s.H * s.W, n, V, ld, pad);
      for (int xi = 0; xi < kXi; ++xi) {
        GemmArgs g;  // M[xi] (OC x tiles) = U[xi] (OC x C) @ V[xi] (C x tiles)
        g.M = OC;
        g.N = tiles;
        g.K = C;
        g.a = U.data() + xi * OC * C;
        g.lda = C;
        g.b = V + xi * C * ld;
        g.ldb = ld;
        g.out = M + xi * OC * ld;
        g.ldc = ld;
        gemm(g, isa, 1);
      }
      k.output(s, M, ld, n, bias, act == Activation::Relu, y + i0 * OC * s.OH() * s.OW());
    }
  });
  return true;
}

}  // namespace fastnn
