// Activation loops and the float32 exp/tanh/erfc they need, written once and compiled into each
// ISA's translation unit (csrc/cpu/act.cpp, avx2/act.cpp, avx512/act.cpp) with that unit's
// flags: the loops are branch free (selects, no calls) so the compiler vectorises them to the
// unit's vector width. Everything is in an anonymous namespace, so the differently compiled
// copies never merge at link time. No -ffast-math: NaN in gives NaN out.
//
// Accuracy (float32, against float64; tests/test_act.py states and checks the bounds):
//   exp_f: range reduction by ln 2 and our own degree-6 fit, ~1-2 ulp; +inf above 88.7 and 0
//   below -87.3.
//   sigmoid 1/(1+exp(-x)) and tanh (a rational fit, +-1 from |x| = 9): a few ulp of |y|.
//   gelu: erfc as t exp(-z^2 + P(t)) (our fit, see erfc_f): the float32 rounding of z*z adds
//   ~z^2 ulp in the tail, where |y| < 1e-6 (|x| > 5). gelu_tanh as x * sigmoid(2u), which
//   keeps relative accuracy for x < 0 (1 + tanh(u) would cancel).
#pragma once
#include <cstdint>
#include <cstring>

#include "ops/act.h"

namespace fastnn {
namespace {

inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

inline int32_t float_to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// c ? a : b on bits. A plain ?: whose arm holds a division or a subtraction lets GCC sink that
// operation into a branch, and without -fno-trapping-math it will not speculate it back, so the
// loop stays scalar ("control flow in loop"); a bit blend keeps both arms computed: vectorised.
inline float sel(bool c, float a, float b) {
  const int32_t m = -static_cast<int32_t>(c);
  return bits_to_float((float_to_bits(a) & m) | (float_to_bits(b) & ~m));
}

// e^x: n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two for an exact product),
// e^r from a degree-7 polynomial, times 2^n built in the exponent bits.
inline float exp_f(float x) {
  float xc = sel(x > 88.0f, 88.0f, x);  // NaN passes through
  xc = sel(xc < -87.0f, -87.0f, xc);
  const float magic = 12582912.0f;  // 1.5 * 2^23: rounds to int
  float n = (xc * 1.44269504088896341f + magic) - magic;
  n = sel(xc == xc, n, 0.0f);  // NaN: keep the int conversion defined; r carries the NaN
  // ln 2 in two parts (the first with 16 bits, so n * it is exact); e^r = 1 + r + r^2 Q(r) with
  // Q our own fit on |r| <= ln2/2 (the same as csrc/cpu/avx512/act.cpp's)
  const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-6f;
  float q = 1.3814605e-3f;
  q = q * r + 8.368711e-3f;
  q = q * r + 4.166839e-2f;
  q = q * r + 1.6666521e-1f;
  q = q * r + 4.9999994e-1f;
  const float p = q * r * r + r + 1.0f;
  float y = p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
  y = sel(x > 88.7228391f, __builtin_inff(), y);  // overflow and underflow, as expf gives them
  y = sel(x < -87.3365448f, 0.0f, y);             // (0 instead of a denormal below FLT_MIN)
  return y;
}

inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

inline float tanh_f(float x) {
  // x P(x^2) / Q(x^2) for |x| < 9 with our own rational fit (the same as the AVX-512 unit's),
  // exactly +-1 from there on (tanh(9) rounds to 1). NaN passes every select as NaN.
  float xc = sel(x > 9.0f, 9.0f, x);
  xc = sel(xc < -9.0f, -9.0f, xc);
  const float s = xc * xc;
  float p = 1.8255758e-11f;
  p = p * s - 1.2780646e-8f;
  p = p * s + 9.267488e-6f;
  p = p * s + 2.920769e-3f;
  p = p * s + 1.2919235e-1f;
  p = p * s + 0.99999994f;
  float q = 2.281012e-4f;
  q = q * s + 2.3763198e-2f;
  q = q * s + 4.625252e-1f;
  q = q * s + 1.0f;
  const float y = xc * p / q;
  const float one = sel(x < 0.0f, -1.0f, 1.0f);
  return sel(s >= 81.0f, one, y);
}

// erfc(x) for every x: erfc(z) = t exp(-z^2 + P(t)), t = 1/(1 + z/2), with P our own
// degree-9 fit on z in [0, 9.2] (the same as csrc/cpu/avx512/act.cpp's).
inline float erfc_f(float x) {
  const float nx = -x;
  const float z = sel(x < 0.0f, nx, x);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.13532853f;
  p = p * t - 0.6282118f;
  p = p * t + 1.032108f;
  p = p * t - 0.52924175f;
  p = p * t - 0.2194101f;
  p = p * t + 0.07574787f;
  p = p * t + 9.0661515e-3f;
  p = p * t + 0.39203018f;
  p = p * t + 0.99799924f;
  p = p * t - 1.2654165f;
  const float r = t * exp_f(p - z * z);
  const float r2 = 2.0f - r;
  return sel(x < 0.0f, r2, r);
}

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;   // 1 / sqrt(2 pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;  // sqrt(2 / pi)
constexpr float kGeluK = 0.044715f;

// y[i] = f(x[i]); a plain indexed loop the vectoriser understands.
template <class F>
inline void map1(const float* x, float* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// dx[i] = f(dy[i], xy[i]).
template <class F>
inline void map2(const float* dy, const float* xy, float* dx, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) dx[i] = f(dy[i], xy[i]);
}

inline void act_forward_impl(const ActArgs& a, const float* x, float* y, int64_t n) {
  switch (a.kind) {
    case ActKind::Relu:  // x < 0 ? 0 : x keeps NaN (torch.relu does)
      return map1(x, y, n, [](float v) { return v < 0.0f ? 0.0f : v; });
    case ActKind::LeakyRelu: {
      const float al = a.alpha;
      return map1(x, y, n, [al](float v) {
        const float neg = v * al;
        return sel(v > 0.0f, v, neg);
      });
    }
    case ActKind::Sigmoid:
      return map1(x, y, n, [](float v) { return sigmoid_f(v); });
    case ActKind::Tanh:
      return map1(x, y, n, [](float v) { return tanh_f(v); });
    case ActKind::Gelu:  // x * Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2
      return map1(x, y, n, [](float v) { return 0.5f * v * erfc_f(-v * kInvSqrt2); });
    case ActKind::GeluTanh:  // x/2 (1 + tanh u) = x * sigmoid(2u), u = sqrt(2/pi)(x + k x^3)
      return map1(x, y, n, [](float v) {
        const float u = kSqrt2OverPi * (v + kGeluK * v * v * v);
        return v / (1.0f + exp_f(-2.0f * u));
      });
  }
}

// dy * d for a gelu derivative d (either form). Below x = -5 the exact derivative is negative
// but in float32 it underflows to 0 (past x ~ -13, ~ -10 for the tanh form): there an infinite
// dy gives -dy, its product with a tiny negative number, not inf * 0 = NaN. Finite x only.
// (p = dy * d is NaN there, and elsewhere only where dy or x is NaN, which -dy keeps. Bitwise &,
// not &&: branch free, so the loop stays vectorised.)
inline float gelu_times(float g, float v, float d) {
  const float p = g * d;
  const float ng = -g;
  return sel((p != p) & (v < -5.0f) & (v > -__builtin_inff()), ng, p);
}

// Blocks of gelu's backward: x outside [kGeluEdgeLo, kGeluEdgeHi] somewhere in a block sends
// the block to the edge form of the derivative (gelu_times; the tanh form's x^2 cap); every
// other block, nearly all of real data, runs the plain form. The test is two integer max
// reductions over the block's bits (a float compare and an or per element cost ~10% of gelu's
// backward): read as uint32, every x below kGeluEdgeLo (and a NaN with the sign bit) lies above
// its bits; read as int32, every x above kGeluEdgeHi (and a NaN without it) lies above its bits.
constexpr int64_t kGeluBlock = 1024;
constexpr float kGeluEdgeLo = -10.0f, kGeluEdgeHi = 1e13f;

inline bool gelu_block_has_edges(const float* x, int64_t n) {
  uint32_t u = 0;
  int32_t i32 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t b = float_to_bits(x[i]);
    const uint32_t ub = static_cast<uint32_t>(b);
    u = ub > u ? ub : u;
    i32 = b > i32 ? b : i32;
  }
  return u > static_cast<uint32_t>(float_to_bits(kGeluEdgeLo)) || i32 > float_to_bits(kGeluEdgeHi);
}

template <class Plain, class Edge>
inline void gelu_map2(const float* dy, const float* x, float* dx, int64_t n, Plain plain, Edge edge) {
  for (int64_t b0 = 0; b0 < n; b0 += kGeluBlock) {
    const int64_t m = n - b0 < kGeluBlock ? n - b0 : kGeluBlock;
    if (gelu_block_has_edges(x + b0, m))
      map2(dy + b0, x + b0, dx + b0, m, edge);
    else
      map2(dy + b0, x + b0, dx + b0, m, plain);
  }
}

// Phi(x) + x phi(x)
inline float gelu_grad(float v) {
  const float cdf = 0.5f * erfc_f(-v * kInvSqrt2);
  const float pdf = kInvSqrt2Pi * exp_f(-0.5f * v * v);
  return cdf + v * pdf;
}

// s = sigmoid(2u): d/dx [x s] = s + x * 2 s (1 - s) * u'. The edge form caps |x| at 1e15 in du
// (s (1 - s) is 0 long before, from |x| ~ 13) and multiplies s (1 - s) in before 2 and du (the
// same value: a factor 2 commutes with the roundings), so that a finite x past ~1e19 gives
// 0 * finite there, not 0 * inf = NaN (x * 2 and x^2 overflow); x = +-inf stays NaN.
template <bool kEdge>
inline float gelu_tanh_grad(float v) {
  const float u = kSqrt2OverPi * (v + kGeluK * v * v * v);
  const float e = exp_f(-2.0f * u);
  const float s = 1.0f / (1.0f + e);
  // 1 - s without cancellation when s is near 1 (e * s = e / (1 + e)); where e
  // overflows to inf, s = 0 and 1 - s is exact.
  const float one_minus_s = sel(s < 0.5f, 1.0f - s, e * s);
  if (!kEdge) {
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluK * v * v);
    return s + v * 2.0f * s * one_minus_s * du;
  }
  const float vc = sel(v * v < 1e30f, v, 1e15f);  // du's x, as the plain form's below the cap
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluK * vc * vc);
  return s + v * s * one_minus_s * 2.0f * du;
}

inline void act_backward_impl(const ActArgs& a, const float* dy, const float* xy, float* dx, int64_t n) {
  switch (a.kind) {
    case ActKind::Relu:  // torch's threshold_backward: x <= 0 ? 0 : dy (NaN x passes dy)
      return map2(dy, xy, dx, n, [](float g, float v) { return v <= 0.0f ? 0.0f : g; });
    case ActKind::LeakyRelu: {
      const float al = a.alpha;
      return map2(dy, xy, dx, n, [al](float g, float v) {
        const float neg = g * al;
        return sel(v > 0.0f, g, neg);
      });
    }
    case ActKind::Sigmoid:  // from y, as torch: dy * (1 - y) * y
      return map2(dy, xy, dx, n, [](float g, float s) { return g * (1.0f - s) * s; });
    case ActKind::Tanh:  // from y: dy * (1 - y^2)
      return map2(dy, xy, dx, n, [](float g, float t) { return g * (1.0f - t * t); });
    case ActKind::Gelu:
      return gelu_map2(
          dy, xy, dx, n, [](float g, float v) { return g * gelu_grad(v); },
          [](float g, float v) { return gelu_times(g, v, gelu_grad(v)); });
    case ActKind::GeluTanh:
      return gelu_map2(
          dy, xy, dx, n, [](float g, float v) { return g * gelu_tanh_grad<false>(v); },
          [](float g, float v) { return gelu_times(g, v, gelu_tanh_grad<true>(v)); });
  }
}

}  // namespace
}  // namespace fastnn
