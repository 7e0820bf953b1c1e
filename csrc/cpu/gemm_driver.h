// The Goto/BLIS framework around a register micro-kernel, written once and compiled into each
// ISA's translation unit. Everything here is in an anonymous namespace, so the differently
// compiled copies never merge at link time.
//
// Loops, outermost first (MR, NR from the micro-kernel's Ukr; KC, MC, NC from blocking<Ukr>(),
// chosen once per process from this CPU's cache sizes by Ukr::blocking):
//   jc: NC columns of op(B)            (B panel KC x NC lives in L3)
//     pc: KC of K, in order             (fixed blocking: the K summation order never changes)
//       pack B panel -> [NC/NR][KC][NR], unless the small-M path reads B in place
//       ic: MC rows of op(A)            (A block MC x KC lives in L2)
//         pack A block -> [MC/MR][KC][MR]
//         tiles (jr, ir) jr-major       (a KC x NR B micro-panel stays in L1 across ir)
// Threads split the packing and the tile list statically; every output element is computed by
// the same instruction sequence whatever the thread count, so results are bit-identical.
//
// Ukr provides: MR, NR, NOPACK_B_MAX_M, PACK_B_PER_PANEL (M <= MC with B stored (N, K) packs B
//   a micro-panel at a time, also on one thread), and optionally tile_a_rows (below) with
//   A_ROWS_MAX_M and FIRST_TILE_B_MAX_N,
//   static Blocking blocking(const CpuCaches&)   (KC, MC, NC for these caches),
//   static void transpose_pack(...)     (transpose_pack_scalar's contract), and
//   template <int mr> static void tile(int kc, const float* ap, const float* b, int64_t ldbk,
//                                      int nr, const TileOut& o, const Epilogue& e);
// computing the mr x nr tile from packed A (ap[k*MR + i]) and B rows b[k*ldbk + j], then
// storing through the epilogue.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

#include "core/cpu.h"
#include "core/memory.h"
#include "core/threads.h"
#include "ops/gemm.h"

namespace fastnn {
namespace {

struct Epilogue {
  float alpha, beta;
  bool first;  // first K block: out = alpha*acc (+ beta*C); later blocks: out += alpha*acc
  bool last;   // last K block: add bias, apply the activation
  bool relu;
  // B was packed by the caller (GemmArgs::b_packed): reused across calls (a recurrent layer's
  // weights at every step) and likely out of L2 by the next call, so micro-kernels may fetch it
  // further ahead than a B packed a moment ago.
  bool far_b;
};

struct TileOut {
  float* out;             // top-left of the tile
  const float* c;         // addend C at the same position (read only when first && beta != 0)
  const float* bias;      // bias + first column of the tile, or null
  const float* bias_row;  // bias_row + first row of the tile, or null
  int64_t ldc;
};

// Cache blocking: a KC x NR micro-panel of B is reused across the row tiles of an MC x KC block
// of A, and a KC x NC panel of B across the blocks of A. KC is fixed for the process, so the
// K summation order (and every result) is the same for every thread count and call.
struct Blocking {
  int kc;
  int64_t mc, nc;  // multiples of MR and NR
};

inline int64_t round_down_to(int64_t x, int64_t m, int64_t lo, int64_t hi) {
  return std::clamp(x / m * m, lo / m * m, hi / m * m);
}

// FASTNN_GEMM_BLOCKING="kc,mc,nc" replaces the cache-derived values (a 0 or missing field keeps
// the rule's), for tuning on a new CPU; mc and nc are rounded down to whole tiles.
template <class Ukr>
Blocking make_blocking() {
  Blocking b = Ukr::blocking(cpu_caches());
  if (const char* env = std::getenv("FASTNN_GEMM_BLOCKING")) {
    long v[3] = {0, 0, 0};
    char* p = const_cast<char*>(env);
    for (int i = 0; i < 3 && *p; ++i) {
      v[i] = std::strtol(p, &p, 10);
      if (*p == ',') ++p;
    }
    if (v[0] > 0) b.kc = static_cast<int>(std::min(v[0], 1L << 16));
    if (v[1] > 0) b.mc = v[1];
    if (v[2] > 0) b.nc = v[2];
  }
  b.kc = std::max(b.kc, 1);
  b.mc = std::max<int64_t>(Ukr::MR, std::min<int64_t>(b.mc, 1 << 16) / Ukr::MR * Ukr::MR);
  b.nc = std::max<int64_t>(Ukr::NR, std::min<int64_t>(b.nc, 1 << 20) / Ukr::NR * Ukr::NR);
  return b;
}

template <class Ukr>
const Blocking& blocking() {
  static const Blocking b = make_blocking<Ukr>();  // once per process and ISA unit
  return b;
}

// A 64-byte aligned scratch buffer per thread, grown on demand and kept for later calls.
inline float* scratch(int slot, size_t floats) {
  struct Buf {
    float* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[2];
  Buf& b = bufs[slot];
  if (b.n < floats) {
    std::free(b.p);
    b.p = nullptr;
    b.n = 0;
    b.p = static_cast<float*>(aligned_bytes(floats * sizeof(float)));
    b.n = floats;
  }
  return b.p;
}

// dst[k*R + i] = src[i*ld + k] for i < rows, k < kc; zero for rows <= i < R. The transposing
// copy behind packing A (stored (M, K)) and B (stored (N, K)); ISAs with a faster in-register
// transpose provide their own (Ukr::transpose_pack).
inline void transpose_pack_scalar(int kc, int rows, int R, const float* src, int64_t ld, float* dst) {
  for (int i = 0; i < rows; ++i) {
    const float* row = src + i * ld;
    for (int k = 0; k < kc; ++k) dst[k * R + i] = row[k];  // read rows, scatter with stride R
  }
  for (int i = rows; i < R; ++i)
    for (int k = 0; k < kc; ++k) dst[k * R + i] = 0.0f;
}

// dst[k*R + j] = src[k*ld + j] for j < cols, zero for cols <= j < R: the straight copy behind
// packing A (stored (K, M)) and B (stored (K, N)).
template <int R>
inline void copy_pack(int kc, int cols, const float* src, int64_t ld, float* dst) {
  for (int k = 0; k < kc; ++k, src += ld, dst += R) {
    if (cols == R) {
      for (int j = 0; j < R; ++j) dst[j] = src[j];  // fixed trip count: a few vector moves
    } else {
      for (int j = 0; j < cols; ++j) dst[j] = src[j];
      for (int j = cols; j < R; ++j) dst[j] = 0.0f;
    }
  }
}

// Packed A micro-panel: dst[k*MR + i] = op(A)[i0 + i, p0 + k], zero-padded to MR rows.
template <class Ukr>
inline void pack_a(int kc, int mr, const GemmArgs& g, int64_t i0, int64_t p0, float* dst) {
  if (g.trans_a) {
    copy_pack<Ukr::MR>(kc, mr, g.a + p0 * g.lda + i0, g.lda, dst);
  } else {
    Ukr::transpose_pack(kc, mr, Ukr::MR, g.a + i0 * g.lda + p0, g.lda, dst);
  }
}

// Packed A micro-panels ir0 .. ir1 - 1 of a block (row tiles of mrb rows from row i0, each
// padded to MR, panel ir at dst + ir*MR*kc). A stored (M, K) is transposed panel by panel;
// A stored (K, M) is walked row by row of the stored matrix, each row one contiguous read
// across all the panels: panel by panel it would read mrb floats per row at a stride of the
// whole row (with rows of 4 KiB, every read of a panel in the same L1 sets).
template <class Ukr>
inline void pack_a_panels(int kc, int64_t mc, int64_t mrb, const GemmArgs& g, int64_t i0, int64_t p0,
                          int64_t ir0, int64_t ir1, float* dst) {
  constexpr int MR = Ukr::MR;
  if (!g.trans_a) {
    for (int64_t ir = ir0; ir < ir1; ++ir)
      pack_a<Ukr>(kc, static_cast<int>(std::min<int64_t>(mrb, mc - ir * mrb)), g, i0 + ir * mrb, p0,
                  dst + ir * MR * kc);
    return;
  }
  if (mrb == MR && (ir1 - 1) * mrb + MR <= mc) {
    // Whole panels only: copies of a fixed length, a few vector moves each (an element loop
    // compiles to MR scalar moves: the compiler cannot rule out that d and s overlap).
    for (int k = 0; k < kc; ++k) {
      const float* src = g.a + (p0 + k) * g.lda + i0;
      for (int64_t ir = ir0; ir < ir1; ++ir) {
        const float* s = src + ir * MR;
        float* d = dst + ir * MR * kc + k * MR;
        std::memcpy(d, s, sizeof(float) * MR);
      }
    }
    return;
  }
  for (int k = 0; k < kc; ++k) {
    const float* src = g.a + (p0 + k) * g.lda + i0;
    for (int64_t ir = ir0; ir < ir1; ++ir) {
      const int mr = static_cast<int>(std::min<int64_t>(mrb, mc - ir * mrb));
      float* d = dst + ir * MR * kc + k * MR;
      std::memcpy(d, src + ir * mrb, sizeof(float) * static_cast<size_t>(mr));
      for (int i = mr; i < MR; ++i) d[i] = 0.0f;
    }
  }
}

// Packed B micro-panels jr0 .. jr0 + npanel - 1 of one KC x NC block:
// dst[(jr - jr0)*NR*kc + k*NR + j] = op(B)[p0 + k, j0 + jr*NR + j] for columns < cols, zero
// padded to whole panels. Row-major B is walked row by row (each row of the block is one
// contiguous read; per panel it would jump a whole row of B for every k, one page per k on
// large matrices); B stored (N, K) is transposed panel by panel.
template <class Ukr>
inline void pack_b(int kc, int64_t cols, const GemmArgs& g, int64_t p0, int64_t j0, float* dst) {
  constexpr int NR = Ukr::NR;
  const int64_t npanel = (cols + NR - 1) / NR;
  if (g.trans_b) {
    for (int64_t p = 0; p < npanel; ++p) {
      const int nr = static_cast<int>(std::min<int64_t>(NR, cols - p * NR));
      Ukr::transpose_pack(kc, nr, NR, g.b + (j0 + p * NR) * g.ldb + p0, g.ldb, dst + p * NR * kc);
    }
    return;
  }
  const float* src = g.b + p0 * g.ldb + j0;
  const int tail = static_cast<int>(cols - (npanel - 1) * NR);
  for (int k = 0; k < kc; ++k, src += g.ldb) {
    for (int64_t p = 0; p + 1 < npanel; ++p) {
      const float* s = src + p * NR;
      float* d = dst + p * NR * kc + k * NR;
      // A fixed-length copy: a few vector moves (an element loop compiles to NR scalar moves,
      // the compiler being unable to rule out that d and s overlap).
      std::memcpy(d, s, sizeof(float) * NR);
    }
    const float* s = src + (npanel - 1) * NR;
    float* d = dst + (npanel - 1) * NR * kc + k * NR;
    for (int j = 0; j < tail; ++j) d[j] = s[j];
    for (int j = tail; j < NR; ++j) d[j] = 0.0f;
  }
}

// Ukr::tile_a_rows<mr>(kc, a, lda, b, ldbk, nr, o, e, bcopy), optional: tile<mr> reading A in
// place, row i of the tile at a + i*lda (A stored (M, K)), with the same FMAs in the same order;
// with bcopy (only when nr == NR) it also writes the B rows it reads to bcopy[k*NR + j].
template <class U, class = void>
struct HasTileARows : std::false_type {};
template <class U>
struct HasTileARows<U, std::void_t<decltype(&U::template tile_a_rows<1>)>> : std::true_type {};

template <class Ukr>
struct GemmDriver {
  static constexpr int MR = Ukr::MR, NR = Ukr::NR;
  using TileFn = void (*)(int, const float*, const float*, int64_t, int, const TileOut&, const Epilogue&);

  template <int... I>
  static constexpr std::array<TileFn, sizeof...(I)> make_table(std::integer_sequence<int, I...>) {
    return {&Ukr::template tile<I + 1>...};
  }
  // tiles[mr - 1] handles an mr-row tile: edge rows cost no wasted FMAs.
  static constexpr std::array<TileFn, MR> tiles = make_table(std::make_integer_sequence<int, MR>{});

  using TileRowsFn = void (*)(int, const float*, int64_t, const float*, int64_t, int, const TileOut&,
                              const Epilogue&, float*);
  template <int... I>
  static constexpr std::array<TileRowsFn, sizeof...(I)> make_rows_table(std::integer_sequence<int, I...>) {
    if constexpr (HasTileARows<Ukr>::value) {
      return {&Ukr::template tile_a_rows<I + 1>...};
    } else {
      return {};
    }
  }
  static constexpr std::array<TileRowsFn, MR> tiles_a_rows =
      make_rows_table(std::make_integer_sequence<int, MR>{});

  // How run_small_m gets B (chosen by run()).
  enum class SmallB {
    InPlace,    // row-major B read in place, or B packed by the caller
    PerPanel,   // each KC x NR micro-panel packed into a per-thread buffer just before use
    FirstTile,  // row-major B copied into that buffer by the first row tile as it computes
  };

  // One row block (M <= MC: a batch-sized Linear layer): each thread computes its share of the
  // column panels, with no barrier at all (two per K block cost more than duplicating the
  // packing of A in every thread). A is packed whole by each thread, or, with a_rows, read in
  // place. B per SmallB: PerPanel keeps each micro-panel in L1 (packing a whole KC x NC panel
  // first writes it to L2 and reads it back; B stored (N, K), a Linear layer's weight,
  // 64x3136x128: +2%). FirstTile hides the load of a row-major B behind the first row tile's
  // FMAs, where a separate copy waited on it (64x3136x128 row-major at AVX2: the copy was a
  // tenth of the time; 0.94x -> 1.0x OpenBLAS). Same tiles, same arithmetic as run(): results
  // do not change.
  static void run_small_m(const GemmArgs& g, int nthreads, size_t ap_floats, SmallB mode, bool a_rows) {
    const int64_t M = g.M, N = g.N, K = g.K;
    const int64_t n_jr = (N + NR - 1) / NR, n_ir = (M + MR - 1) / MR, mrb = g.a_packed ? MR : row_tile(M);
    const int KC = blocking<Ukr>().kc;
    parallel_for(nthreads, [&](int tid, int nt) {
      long j0, j1;
      split_range(n_jr, tid, nt, &j0, &j1);
      if (j0 == j1) return;
      float* ap = (g.a_packed || a_rows) ? nullptr : scratch(1, ap_floats);  // this thread's own
      float* bp =
          mode == SmallB::InPlace ? nullptr : scratch(0, static_cast<size_t>(KC) * NR);  // one micro-panel
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int kc = static_cast<int>(std::min<int64_t>(KC, K - pc));
        const Epilogue e{g.alpha, g.beta, pc == 0, pc + kc >= K, g.act == Activation::Relu, g.b_packed};
        if (ap) pack_a_panels<Ukr>(kc, M, mrb, g, 0, pc, 0, n_ir, ap);
        for (long jr = j0; jr < j1; ++jr) {
          const int64_t j = jr * NR;
          const bool whole = j + NR <= N;
          int64_t ir = 0;
          if (mode == SmallB::FirstTile && whole) {  // tile 0 reads B in place and copies it to bp
            tile_rows(g, e, pc, kc, b_in_place(g, pc, j), g.ldb, 0, j,
                      static_cast<int>(std::min<int64_t>(mrb, M)), bp);
            ir = 1;
          } else if (mode != SmallB::InPlace) {
            pack_b<Ukr>(kc, std::min<int64_t>(NR, N - j), g, pc, j, bp);
          }
          const float* b = mode == SmallB::InPlace ? b_in_place(g, pc, j) : bp;
          const int64_t ldbk = mode == SmallB::InPlace ? b_ld(g) : NR;
          for (; ir < n_ir; ++ir) {
            const int64_t i = ir * mrb;
            const int mr = static_cast<int>(std::min<int64_t>(mrb, M - i));
            if (a_rows) {
              tile_rows(g, e, pc, kc, b, ldbk, i, j, mr, nullptr);
            } else {
              tile_at(g, e, g.a_packed ? a_in_place(g, i, pc) : ap + ir * MR * kc, kc, b, ldbk, i, j, mr);
            }
          }
        }
      }
    });
  }

  // The table of this instantiation (csrc/ops/gemm.h: GemmKernels), what each ISA unit exports.
  static constexpr GemmKernels kernels() { return {MR, NR, run, tile_info, pack_a_full, pack_b_full}; }

  static GemmTile tile_info() {
    const Blocking& b = blocking<Ukr>();
    return GemmTile{MR, NR, b.kc, static_cast<int>(b.mc), static_cast<int>(b.nc)};
  }

  // gemm_pack_a's contract (csrc/ops/gemm.h) with this ISA's MR.
  static void pack_a_full(const float* a, int64_t lda, bool ta, int64_t M, int64_t K, int64_t k0, int64_t k1,
                          float* dst) {
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
      const int mr = static_cast<int>(std::min<int64_t>(MR, M - i0));
      float* panel = dst + i0 * K + k0 * MR;
      if (!ta) {
        Ukr::transpose_pack(static_cast<int>(k1 - k0), mr, MR, a + i0 * lda, lda, panel);
      } else if (mr == MR) {
        for (int64_t k = k0; k < k1; ++k)
          std::memcpy(panel + (k - k0) * MR, a + (k - k0) * lda + i0, sizeof(float) * MR);
      } else {
        copy_pack<MR>(static_cast<int>(k1 - k0), mr, a + i0, lda, panel);
      }
    }
  }

  // gemm_pack_b's contract (csrc/ops/gemm.h) with this ISA's NR: one K x N block.
  static void pack_b_full(const float* b, int64_t ldb, bool tb, int64_t K, int64_t N, float* dst) {
    GemmArgs g;
    g.b = b, g.ldb = ldb, g.trans_b = tb;
    pack_b<Ukr>(static_cast<int>(K), N, g, 0, 0, dst);
  }

  // The packed A micro-panel of rows i.., columns pc.. (A packed by gemm_pack_a: panels of
  // MR rows over the whole of K).
  static const float* a_in_place(const GemmArgs& g, int64_t i, int64_t pc) { return g.a + i * g.K + pc * MR; }

  // B rows pc.. of the panel at column j where B is not packed per call: row-major B in
  // place, or B packed once by the caller (gemm_pack_b: panel j / NR, rows of NR floats).
  static const float* b_in_place(const GemmArgs& g, int64_t pc, int64_t j) {
    return g.b_packed ? g.b + (j / NR) * NR * g.K + pc * NR : g.b + pc * g.ldb + j;
  }
  static int64_t b_ld(const GemmArgs& g) { return g.b_packed ? NR : g.ldb; }

  // Rows per row tile of a block of mc rows: at most MR, as equal as the count of tiles allows
  // (16 rows: 8 + 8, not 14 + 2, whose 2-row tile loads B for 4 FMAs per k). Each output
  // element is summed by the same instructions whatever its tile's height.
  static int64_t row_tile(int64_t mc) {
    const int64_t n = (mc + MR - 1) / MR;
    return n > 0 ? (mc + n - 1) / n : MR;
  }

  // The (i, j) tile of C (mr rows) through the epilogue, from a packed A micro-panel and B rows.
  static void tile_at(const GemmArgs& g, const Epilogue& e, const float* ap, int kc, const float* b,
                      int64_t ldbk, int64_t i, int64_t j, int mr) {
    const int nr = static_cast<int>(std::min<int64_t>(NR, g.N - j));
    tiles[mr - 1](kc, ap, b, ldbk, nr, tile_out(g, e, i, j), e);
  }

  static TileOut tile_out(const GemmArgs& g, const Epilogue& e, int64_t i, int64_t j) {
    return TileOut{g.out + i * g.ldc + j, (g.c ? g.c : g.out) + i * g.ldc + j,
                   (e.last && g.bias) ? g.bias + j : nullptr,
                   (e.last && g.bias_row) ? g.bias_row + i : nullptr, g.ldc};
  }
  // tile_at with A read in place (Ukr::tile_a_rows): rows i.., columns pc.. of A stored (M, K).
  static void tile_rows(const GemmArgs& g, const Epilogue& e, int64_t pc, int kc, const float* b,
                        int64_t ldbk, int64_t i, int64_t j, int mr, float* bcopy) {
    const int nr = static_cast<int>(std::min<int64_t>(NR, g.N - j));
    tiles_a_rows[mr - 1](kc, g.a + i * g.lda + pc, g.lda, b, ldbk, nr, tile_out(g, e, i, j), e, bcopy);
  }

  static void run(const GemmArgs& g, int nthreads) {
    const int64_t M = g.M, N = g.N, K = g.K;
    const Blocking& blk = blocking<Ukr>();
    const int KC = blk.kc;
    // Row blocks of equal height in whole tiles: M = 512 with MC 252 is three blocks of 174,
    // not 252 + 252 + 8, whose last block would stream every B micro-panel for one tile.
    const int64_t n_ic = (M + blk.mc - 1) / blk.mc;
    const int64_t MC = std::min<int64_t>(blk.mc, ((M + n_ic - 1) / n_ic + MR - 1) / MR * MR), NC = blk.nc;
    // Small M: each element of B is used by few rows, so packing B would cost as much as the
    // product; read it in place (row-major B only).
    const bool pack_b_panel = !g.b_packed && (g.trans_b || M > Ukr::NOPACK_B_MAX_M);
    const int64_t nc_max = std::min<int64_t>(NC, (N + NR - 1) / NR * NR);
    const int64_t kc_max = std::min<int64_t>(KC, K);
    const int64_t mc_max = std::min<int64_t>(MC, (M + MR - 1) / MR * MR);
    if (M <= MC) {
      // A read in place by few row tiles (Ukr::A_ROWS_MAX_M): no transposing copy. More rows
      // stream A from L2 through MR strided reads, slower than a packed block.
      bool a_rows = false, b_first_tile = false;
      if constexpr (HasTileARows<Ukr>::value) {
        a_rows = !g.trans_a && !g.a_packed && M <= Ukr::A_ROWS_MAX_M;
        // Rows of B short enough that a micro-panel's rows share pages: the first tile's strided
        // reads stream (longer rows: a page per k, slower than run()'s whole panels).
        b_first_tile = a_rows && N <= Ukr::FIRST_TILE_B_MAX_N;
      }
      if (!pack_b_panel) {
        if (nthreads > 1) return run_small_m(g, nthreads, kc_max * mc_max, SmallB::InPlace, a_rows);
      } else if (Ukr::PACK_B_PER_PANEL && g.trans_b) {
        return run_small_m(g, nthreads, kc_max * mc_max, SmallB::PerPanel, a_rows);
      } else if (b_first_tile) {
        return run_small_m(g, nthreads, kc_max * mc_max, SmallB::FirstTile, a_rows);
      }
    }
    float* bp = pack_b_panel ? scratch(0, kc_max * nc_max) : nullptr;
    float* ap = g.a_packed ? nullptr : scratch(1, kc_max * mc_max);

    parallel(nthreads, [&](int tid, int nt) {
      for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min<int64_t>(NC, N - jc);
        const int64_t n_jr = (nc + NR - 1) / NR;
        for (int64_t pc = 0; pc < K; pc += KC) {
          const int kc = static_cast<int>(std::min<int64_t>(KC, K - pc));
          const Epilogue e{g.alpha, g.beta, pc == 0, pc + kc >= K, g.act == Activation::Relu, g.b_packed};
          if (pack_b_panel) {
            long b0, b1;
            split_range(n_jr, tid, nt, &b0, &b1);
            if (b1 > b0) {
              pack_b<Ukr>(kc, std::min<int64_t>(nc - b0 * NR, (b1 - b0) * NR), g, pc, jc + b0 * NR,
                          bp + b0 * NR * kc);
            }
          }
          for (int64_t ic = 0; ic < M; ic += MC) {
            const int64_t mc = std::min<int64_t>(MC, M - ic);
            const int64_t n_ir = (mc + MR - 1) / MR, mrb = g.a_packed ? MR : row_tile(mc);
            long a0, a1;
            split_range(n_ir, tid, nt, &a0, &a1);
            if (!g.a_packed) pack_a_panels<Ukr>(kc, mc, mrb, g, ic, pc, a0, a1, ap);
            if (nt > 1) barrier();  // packed A (and B) complete before any thread reads them
            long t0, t1;
            split_range(n_jr * n_ir, tid, nt, &t0, &t1);
            for (long t = t0; t < t1; ++t) {
              const int64_t jr = t / n_ir, ir = t % n_ir;
              const int64_t i = ic + ir * mrb, j = jc + jr * NR;
              const float* b = pack_b_panel ? bp + jr * NR * kc : b_in_place(g, pc, j);
              tile_at(g, e, g.a_packed ? a_in_place(g, i, pc) : ap + ir * MR * kc, kc, b,
                      pack_b_panel ? NR : b_ld(g), i, j,
                      static_cast<int>(std::min<int64_t>(mrb, mc - ir * mrb)));
            }
            if (nt > 1) barrier();  // all tiles done before A (or B) is packed again
          }
        }
      }
    });
  }
};

}  // namespace
}  // namespace fastnn
