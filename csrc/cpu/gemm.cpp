// f32 GEMM micro-kernel 4x8 in portable C++ (baseline x86-64: SSE2 after auto-vectorisation,
// or whatever the target's default is), and the framework instantiated for it.
//
// 4 rows x 8 columns = 8 SSE accumulators. Written as plain loops with compile-time bounds so
// the compiler keeps the tile in registers; the column tail runs a bounded loop instead.
#include "ops/gemm.h"
#include "cpu/gemm_driver.h"

namespace fastnn {
namespace {

struct Ukr {
  static constexpr int MR = 4, NR = 8;
  static constexpr int NOPACK_B_MAX_M = 8 * MR;
  static constexpr bool PACK_B_PER_PANEL = false;

  // KC: the B micro-panel (KC x 8 floats) in a quarter of L1 (32 KiB: 256); MC: the A block in
  // a quarter of L2; NC: the B panel in a quarter of L3, at most 4096 columns.
  static Blocking blocking(const CpuCaches& c) {
    const int kc = static_cast<int>(round_down_to(c.l1d / 4 / (NR * 4), 16, 128, 512));
    return {kc, round_down_to(c.l2 / 4 / (kc * 4), MR, 16 * MR, 128 * MR),
            round_down_to(c.l3 / 4 / (kc * 4), NR, 32 * NR, 512 * NR)};
  }

  static void transpose_pack(int kc, int rows, int R, const float* src, int64_t ld, float* dst) {
    transpose_pack_scalar(kc, rows, R, src, ld, dst);
  }

  template <int mr>
  static void tile(int kc, const float* a, const float* b, int64_t ldbk, int nr, const TileOut& o,
                   const Epilogue& e) {
    float acc[mr][NR] = {};
    if (nr == NR) {
      for (int k = 0; k < kc; ++k, a += MR, b += ldbk)
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    } else {  // column tail: B may be unpacked, so never read past nr
      for (int k = 0; k < kc; ++k, a += MR, b += ldbk)
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nr; ++j) acc[i][j] += a[i] * b[j];
    }
    for (int i = 0; i < mr; ++i) {
      float* out = o.out + i * o.ldc;
      const float* c = o.c + i * o.ldc;
      for (int j = 0; j < nr; ++j) {
        float x = e.alpha * acc[i][j];
        if (e.first) {
          if (e.beta != 0.0f) x += e.beta * c[j];
        } else {
          x += out[j];
        }
        if (e.last) {
          if (o.bias) x += o.bias[j];
          if (o.bias_row) x += o.bias_row[i];
          if (e.relu) x = x < 0.0f ? 0.0f : x;  // NaN < 0 is false: NaN stays
        }
        out[j] = x;
      }
    }
  }
};

}  // namespace

const GemmKernels gemm_kernels_default = GemmDriver<Ukr>::kernels();

}  // namespace fastnn
