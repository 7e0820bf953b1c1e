// The per-row gate kernels of the recurrent layers (csrc/ops/rnn.h's RnnKernels), written
// once and compiled into each ISA's translation unit with that unit's flags: plain loops over
// the H units of one batch row, branch free (sigmoid_f / tanh_f from act_impl.h), so the
// compiler vectorises them to the unit's width. Anonymous namespace: the differently compiled
// copies never merge at link time.
#pragma once
#include <cstdint>

#include "cpu/act_impl.h"
#include "ops/rnn.h"

namespace fastnn {
namespace {

// HAS_PREV: c_prev given (else zeros, without a branch in the loop).
template <bool HAS_PREV>
inline void lstm_forward_row(int64_t H, float* __restrict g, const float* __restrict c_prev,
                             float* __restrict c, float* __restrict tc, float* __restrict h) {
  float* __restrict gi = g;
  float* __restrict gf = g + H;
  float* __restrict gg = g + 2 * H;
  float* __restrict go = g + 3 * H;
  for (int64_t j = 0; j < H; ++j) {
    const float i = sigmoid_f(gi[j]), f = sigmoid_f(gf[j]), z = tanh_f(gg[j]), o = sigmoid_f(go[j]);
    gi[j] = i;
    gf[j] = f;
    gg[j] = z;
    go[j] = o;
    const float cj = HAS_PREV ? f * c_prev[j] + i * z : i * z;
    const float t = tanh_f(cj);
    c[j] = cj;
    tc[j] = t;
    h[j] = o * t;
  }
}

void lstm_forward_k(int64_t H, float* g, const float* c_prev, float* c, float* tc, float* h) {
  if (c_prev) {
    lstm_forward_row<true>(H, g, c_prev, c, tc, h);
  } else {
    lstm_forward_row<false>(H, g, c_prev, c, tc, h);
  }
}

template <bool HAS_PREV>
inline void lstm_backward_row(int64_t H, const float* __restrict dh, float* __restrict dc,
                              const float* __restrict g, const float* __restrict c_prev,
                              const float* __restrict tc, float* __restrict dg) {
  for (int64_t j = 0; j < H; ++j) {
    const float i = g[j], f = g[H + j], z = g[2 * H + j], o = g[3 * H + j], t = tc[j];
    const float dcj = dc[j] + dh[j] * o * (1.0f - t * t);
    const float cp = HAS_PREV ? c_prev[j] : 0.0f;
    dg[j] = dcj * z * i * (1.0f - i);
    dg[H + j] = dcj * cp * f * (1.0f - f);
    dg[2 * H + j] = dcj * i * (1.0f - z * z);
    dg[3 * H + j] = dh[j] * t * o * (1.0f - o);
    dc[j] = dcj * f;
  }
}

void lstm_backward_k(int64_t H, const float* dh, float* dc, const float* g, const float* c_prev,
                     const float* tc, float* dg) {
  if (c_prev) {
    lstm_backward_row<true>(H, dh, dc, g, c_prev, tc, dg);
  } else {
    lstm_backward_row<false>(H, dh, dc, g, c_prev, tc, dg);
  }
}

template <bool HAS_PREV>
inline void gru_forward_row(int64_t H, const float* __restrict gi, const float* __restrict gh,
                            const float* __restrict h_prev, float* __restrict ws, float* __restrict h) {
  for (int64_t j = 0; j < H; ++j) {
    const float r = sigmoid_f(gi[j] + gh[j]);
    const float z = sigmoid_f(gi[H + j] + gh[H + j]);
    const float ghn = gh[2 * H + j];
    const float n = tanh_f(gi[2 * H + j] + r * ghn);
    ws[j] = r;
    ws[H + j] = z;
    ws[2 * H + j] = n;
    ws[3 * H + j] = ghn;
    // (1 - z) n + z h as n + z (h - n): one rounding fewer, and exactly n where z = 0
    h[j] = HAS_PREV ? n + z * (h_prev[j] - n) : n - z * n;
  }
}

void gru_forward_k(int64_t H, const float* gi, const float* gh, const float* h_prev, float* ws, float* h) {
  if (h_prev) {
    gru_forward_row<true>(H, gi, gh, h_prev, ws, h);
  } else {
    gru_forward_row<false>(H, gi, gh, h_prev, ws, h);
  }
}

template <bool HAS_PREV, bool HAS_DY>
inline void gru_backward_row(int64_t H, float* __restrict dh, const float* __restrict dy,
                             const float* __restrict ws, const float* __restrict h_prev,
                             float* __restrict dgi, float* __restrict dgh) {
  for (int64_t j = 0; j < H; ++j) {
    const float d = HAS_DY ? dh[j] + dy[j] : dh[j];
    const float r = ws[j], z = ws[H + j], n = ws[2 * H + j], ghn = ws[3 * H + j];
    const float hp = HAS_PREV ? h_prev[j] : 0.0f;
    const float dan = d * (1.0f - z) * (1.0f - n * n);
    const float dar = dan * ghn * r * (1.0f - r);
    const float daz = d * (hp - n) * z * (1.0f - z);
    dgi[j] = dar;
    dgi[H + j] = daz;
    dgi[2 * H + j] = dan;
    dgh[j] = dar;
    dgh[H + j] = daz;
    dgh[2 * H + j] = dan * r;
    dh[j] = d * z;
  }
}

void gru_backward_k(int64_t H, float* dh, const float* dy, const float* ws, const float* h_prev, float* dgi,
                    float* dgh) {
  if (h_prev) {
    if (dy) {
      gru_backward_row<true, true>(H, dh, dy, ws, h_prev, dgi, dgh);
    } else {
      gru_backward_row<true, false>(H, dh, dy, ws, h_prev, dgi, dgh);
    }
  } else {
    if (dy) {
      gru_backward_row<false, true>(H, dh, dy, ws, h_prev, dgi, dgh);
    } else {
      gru_backward_row<false, false>(H, dh, dy, ws, h_prev, dgi, dgh);
    }
  }
}

void rnn_forward_k(int64_t H, bool relu, float* __restrict y) {
  if (relu) {
    for (int64_t j = 0; j < H; ++j) y[j] = y[j] < 0.0f ? 0.0f : y[j];  // keeps NaN, as torch
  } else {
    for (int64_t j = 0; j < H; ++j) y[j] = tanh_f(y[j]);
  }
}

void rnn_backward_k(int64_t H, bool relu, const float* __restrict dh, const float* __restrict h,
                    float* __restrict da) {
  if (relu) {
    for (int64_t j = 0; j < H; ++j) da[j] = h[j] > 0.0f ? dh[j] : 0.0f;
  } else {
    for (int64_t j = 0; j < H; ++j) da[j] = dh[j] * (1.0f - h[j] * h[j]);
  }
}

void add_column_sums_k(const float* __restrict a, int64_t rows, int64_t lda, int64_t j0, int64_t j1,
                       double* __restrict acc) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict row = a + r * lda;
    for (int64_t j = j0; j < j1; ++j) acc[j] += row[j];
  }
}

// The table every unit exports (csrc/ops/rnn.h: RnnKernels); one source, each unit's flags.
constexpr RnnKernels kRnnKernels{lstm_forward_k, lstm_backward_k, gru_forward_k,    gru_backward_k,
                                 rnn_forward_k,  rnn_backward_k,  add_column_sums_k};

}  // namespace
}  // namespace fastnn
