// Batch normalisation of NCHW float32: x is (N, C, H, W); channel c's statistics are over its
// M = N*H*W values (N runs of H*W contiguous floats). weight/bias may be null (1 and 0).
//
//   forward, training:  mean = sum x / M,  var = sum (x - mean)^2 / M  (biased; two passes),
//                       invstd = 1 / sqrt(var + eps)
//                       running_mean = (1 - momentum) running_mean + momentum mean     (in place,
//                       running_var = (1 - momentum) running_var + momentum var M/(M-1)  if given)
//   forward, eval:      mean, invstd = running_mean, 1 / sqrt(running_var + eps)
//   both:               y = (x - mean) * (invstd * weight) + bias;  save_mean, save_invstd = mean,
//                       invstd (float32)                                    (outputs overwritten)
//   backward (mean, invstd = the saved ones): sdy = sum dy, dot = sum (x - mean) dy
//     training: dx = (dy - sdy/M - (x - mean) * dot * invstd^2 / M) * invstd * weight  (torch's order)
//     eval:     dx = dy * invstd * weight;     dweight = dot * invstd, dbias = sdy (if weight given)
// Sums: each run is cut into chunks of kBnChunk floats summed in 16 float lanes (at most 16 values
// per lane), and each chunk's lanes are added to the channel's float64 sum in order, so the
// relative error of a sum is ~16 float32 ulps at worst; the variance is the second pass's
// sum (x - mean)^2, corrected by its sum (x - mean) for the rounding of mean. A channel whose
// float32 lane sums overflow (|x - mean| past ~1e19) or hold a non-finite value is done again in
// float64, its y rounded once.
// Parallel over channels (one thread computes all of a channel): results are independent of the
// thread count. M = 0 (empty batch): y and dx are empty, save_mean = save_invstd = 0, the
// running statistics are unchanged (as torch), dweight = dbias = 0. The meta function rejects
// M == 1 in training (torch's error: the variance needs two values).
#pragma once
#include <cstdint>

#include "core/args.h"

namespace fastnn {

constexpr int64_t kBnChunk = 256;

struct BatchNormArgs {
  int64_t n = 0, c = 0, hw = 0;  // N, C and H*W
  bool training = true;
  double momentum = 0.1, eps = 1e-5;
};

// The rules of batch_norm2d_forward / backward on every device (csrc/ops/batchnorm_meta.cpp;
// fastnn._core and fastnn._cuda both call them): x and dy float32 C-contiguous (N, C, H, W) of
// one shape; weight, bias, the running and the saved statistics float32 C-contiguous (C,) or
// absent where optional (running_mean and running_var both or neither, required in eval;
// save_mean and save_invstd required), the running statistics writeable; eps >= 0 and finite,
// a finite momentum, more than one value per channel in training; out (when given) checked by
// check_out against every array of the call, and no running statistic sharing memory with
// another argument. They return the kernels' arguments.
BatchNormArgs batch_norm2d_forward_meta(const ArrayRef& x, const ArrayRef& weight, const ArrayRef& bias,
                                        const ArrayRef& running_mean, const ArrayRef& running_var,
                                        const ArrayRef& out, bool training, double momentum, double eps);
BatchNormArgs batch_norm2d_backward_meta(const ArrayRef& dy, const ArrayRef& x, const ArrayRef& weight,
                                         const ArrayRef& save_mean, const ArrayRef& save_invstd,
                                         const ArrayRef& out, bool training);

// x, y: (N, C, H, W); weight, bias, running_mean, running_var: (C,) or null (running_* null in
// training only); save_mean, save_invstd: (C,) outputs.
void batch_norm2d_forward(const BatchNormArgs& a, const float* x, const float* weight, const float* bias,
                          float* running_mean, float* running_var, float* y, float* save_mean,
                          float* save_invstd, int nthreads);

// dy, x, dx: (N, C, H, W); weight: (C,) or null; dweight, dbias: (C,) outputs, null when weight is.
void batch_norm2d_backward(const BatchNormArgs& a, const float* dy, const float* x, const float* weight,
                           const float* save_mean, const float* save_invstd, float* dx, float* dweight,
                           float* dbias, int nthreads);

// The portable per-channel passes (csrc/cpu/batchnorm.cpp) over one channel's runs: run r is
// the hw floats at p + r * stride, r < runs (stride = C*H*W). Sums are chunked as above.
double bn_sum_cpu(const float* x, int64_t runs, int64_t hw, int64_t stride);
// sum (x - m) and sum (x - m)^2
void bn_dev_sums_cpu(const float* x, float m, int64_t runs, int64_t hw, int64_t stride, double* s1,
                     double* s2);
// sum dy and sum (x - m) * dy
void bn_bwd_sums_cpu(const float* dy, const float* x, float m, int64_t runs, int64_t hw, int64_t stride,
                     double* sdy, double* dot);
// y = (x - m) * alpha + beta
void bn_affine_cpu(const float* x, float* y, float m, float alpha, float beta, int64_t runs, int64_t hw,
                   int64_t stride);
// training: dx = (dy - gm - (x - m) * k) * scale
void bn_dx_train_cpu(const float* dy, const float* x, float* dx, float m, float gm, float k, float scale,
                     int64_t runs, int64_t hw, int64_t stride);
// eval: dx = dy * scale
void bn_dx_eval_cpu(const float* dy, float* dx, float scale, int64_t runs, int64_t hw, int64_t stride);

}  // namespace fastnn
