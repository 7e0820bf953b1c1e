// Layer normalisation over the trailing dims (torch.nn.functional.layer_norm): x is viewed as
// (M, N) float32, N = prod(normalized_shape), one row per normalised group.
//
//   forward:   mean = sum_n x / N,  var = sum_n (x - mean)^2 / N  (biased; two passes over the row),
//              rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * weight + bias      (y overwritten;
//              mean, rstd (M,) float32 overwritten). weight/bias may be null (1 and 0).
//   backward:  xhat = (x - mean) * rstd,  g = dy * weight,
//              dx = rstd * (g - sum_n g / N - xhat * sum_n (g xhat) / N)           (overwritten)
//              dweight = sum_m dy xhat,  dbias = sum_m dy       (N,), only when weight is given
// Row sums: chunks of kLnChunk floats summed in 16 float lanes, each chunk added to a float64
// total in order (~16 ulps relative at worst); a row whose float32 sums overflow (|x - mean|
// past ~1e19) or hold a non-finite value is done again in float64, y rounded once. Column sums of the
// backward (dweight, dbias): blocks of kLnRowBlock rows summed in float32 in row order, in the same pass as
// dx (the rows are read once), the block sums added to a float64 total in block order. Forward and dx:
// parallel over rows (whole blocks); the block totals: parallel over columns. Results are
// independent of the thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

constexpr int64_t kLnChunk = 256;
constexpr int64_t kLnRowBlock = 32;

struct LayerNormArgs {
  int64_t m = 0, n = 0;           // rows, normalised size
  const float* weight = nullptr;  // (N,) or null
  const float* bias = nullptr;    // (N,) or null
  float eps = 1e-5f;
};

// The rules of the entries on every device (csrc/ops/layernorm_meta.cpp; ArgError naming op).
// Forward: x float32 C-contiguous whose trailing dims are normalized_shape ns (non-empty),
// weight / bias (optional) of shape ns, eps finite and >= 0; *stat_shape is mean's and rstd's
// (x's shape with the normalised dims 1). Backward: dy and x of one shape, mean and rstd one
// value per row, weight (optional) of the normalised shape, which is weight's shape when given
// and else the trailing dims of x after the leading ones holding mean's size (*ns receives it).
// The returned args carry the weight and bias pointers.
LayerNormArgs layer_norm_forward_meta(const char* op, const ArrayRef& x, const Shape& ns,
                                      const ArrayRef& weight, const ArrayRef& bias, double eps,
                                      Shape* stat_shape);
LayerNormArgs layer_norm_backward_meta(const char* op, const ArrayRef& dy, const ArrayRef& x,
                                       const ArrayRef& mean, const ArrayRef& rstd, const ArrayRef& weight,
                                       Shape* ns);

void layer_norm_forward(const LayerNormArgs& a, const float* x, float* y, float* mean, float* rstd, Isa isa,
                        int nthreads);
// dweight/dbias may be null (not computed); they are written only when a.weight is given.
void layer_norm_backward(const LayerNormArgs& a, const float* dy, const float* x, const float* mean,
                         const float* rstd, float* dx, float* dweight, float* dbias, Isa isa, int nthreads);

// The per-ISA loops (csrc/cpu/layernorm_impl.h compiled into each ISA's unit): rows [r0, r1);
// the backward also writes the column sums of each block of rows to part when it is not null
// (part[(2*blk)*N + j]: dy*xhat, part[(2*blk + 1)*N + j]: dy; r0 a multiple of kLnRowBlock).
struct LayerNormKernels {
  void (*forward)(const LayerNormArgs& a, const float* x, float* y, float* mean, float* rstd, int64_t r0,
                  int64_t r1);
  void (*backward)(const LayerNormArgs& a, const float* dy, const float* x, const float* mean,
                   const float* rstd, float* dx, float* part, int64_t r0, int64_t r1);
};
extern const LayerNormKernels layer_norm_kernels_default, layer_norm_kernels_avx2, layer_norm_kernels_avx512;

}  // namespace fastnn
