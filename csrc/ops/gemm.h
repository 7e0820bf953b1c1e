// gemm: out = act(alpha * op(A) @ op(B) + beta * C + bias)              (out is overwritten)
//
//   op(A) is (M, K): A stored (M, K) row-major, or (K, M) when trans_a.
//   op(B) is (K, N): B stored (K, N) row-major, or (N, K) when trans_b.
//   C and out are (M, N) row-major; C may be out itself (the in-place BLAS update). When
//   beta == 0, C is not read (NaN in C does not propagate), as in BLAS.
//   bias is (N,) or null, added to every row; bias_row is (M,) or null, added to every column
//   (a convolution's per-channel bias); act is none or relu (relu keeps NaN).
//   Batched: `batch` independent products; the per-item offsets of A, B, C and out are given
//   (an offset repeats where the batch broadcasts).
//   Limits: M, N, K and each matrix's element count <= 2^31 - 1 (tile arithmetic is 32-bit).
//   Parallel over output tiles (and over batch items when each is small), with a fixed K
//   blocking: results are bit-identical for every thread count. They may differ between ISAs
//   in the last bits (different FMA order).
//   float32 throughout, accumulation in float32 registers over K blocks of KC.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/args.h"
#include "core/cpu.h"

namespace fastnn {

enum class Activation : int { None = 0, Relu = 1 };

struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  const float* a = nullptr;
  int64_t lda = 0;  // row stride of A as stored
  bool trans_a = false;
  const float* b = nullptr;
  int64_t ldb = 0;
  bool trans_b = false;
  const float* c = nullptr;  // addend read when beta != 0 (may equal out)
  float* out = nullptr;
  int64_t ldc = 0;  // row stride of C and out
  float alpha = 1.0f, beta = 0.0f;
  const float* bias = nullptr;      // (N,): out[i, j] += bias[j]
  const float* bias_row = nullptr;  // (M,): out[i, j] += bias_row[i]
  Activation act = Activation::None;
  // b already packed by gemm_pack_b for the ISA this product runs on (ldb and trans_b are then
  // ignored): a B used by many products (a recurrent layer's W_hh at every time step) is laid
  // out once as the micro-kernel reads it. Single products only (not gemm_batched).
  bool b_packed = false;
  // a already packed by gemm_pack_a for the ISA this product runs on (lda and trans_a are then
  // ignored): an A that its producer lays out as it writes it (a recurrent layer's gate
  // gradients, step by step) costs no packing pass. Single products only.
  bool a_packed = false;
};

// Register tile of an ISA's micro-kernel, exported so tests can aim at its edges.
struct GemmTile {
  int mr, nr, kc, mc, nc;
};

// Throws std::invalid_argument (ValueError in Python) on negative or over-32-bit sizes.
void gemm_check_sizes(const GemmArgs& g);

// A call of fastnn.ops.gemm on arrays, as gemm_meta checked it: the product's sizes, strides,
// flags, alpha, beta and activation in g (no pointers), the output's shape, and per batch item
// the element offsets of a, b and c (c_off empty when c is not read: uses_c false). c_from_out:
// no c was given, so out (given) is the addend.
struct GemmCall {
  GemmArgs g;
  Shape out_shape;
  std::vector<int64_t> a_off, b_off, c_off;
  bool uses_c = false;
  bool c_from_out = false;
};

// gemm's rules on every device (csrc/ops/gemm_meta.cpp; ArgError naming gemm): a, b float32 with
// at least 2 dimensions and C-contiguous (after gemm_transposed_view), op(a) (..., M, K) and
// op(b) (..., K, N) with broadcastable batch dimensions, c (optional) broadcastable to the
// output, bias (optional) (N,), activation None / "none" / "relu", out (optional) checked, beta
// != 0 only with c or out.
GemmCall gemm_meta(const ArrayRef& a, bool trans_a, const ArrayRef& b, bool trans_b, const ArrayRef& c,
                   const ArrayRef& out, float alpha, float beta, const ArrayRef& bias,
                   const std::string* activation);
// x float32 with at least 2 dimensions, each matrix and the batch count within the 32-bit limits:
// the checks of an operand before any copy of it.
void gemm_operand_check(const ArrayRef& x);
// A transposed view (x.T, x.mT: the last two axes swapped relative to C order) becomes its
// C-contiguous transpose with *trans flipped, read in place: true if x was one.
bool gemm_transposed_view(ArrayRef* x, bool* trans);

// One product, single matrices; validates sizes (std::invalid_argument naming gemm).
void gemm(const GemmArgs& g, Isa isa, int nthreads);

// `batch` products: item i uses a + a_off[i], b + b_off[i], c + c_off[i] (if c), out + i*M*ldc.
void gemm_batched(const GemmArgs& g, int64_t batch, const std::vector<int64_t>& a_off,
                  const std::vector<int64_t>& b_off, const std::vector<int64_t>& c_off, Isa isa,
                  int nthreads);

GemmTile gemm_tile(Isa isa);

// op(B) (K, N) (B stored (K, N) with row stride ldb, or (N, K) when trans_b) packed for isa's
// micro-kernel: panels of NR = gemm_tile(isa).nr columns, dst[(j / NR)*NR*K + k*NR + j % NR],
// zero past N. gemm_packed_b_floats gives dst's size.
int64_t gemm_packed_b_floats(int64_t K, int64_t N, Isa isa);
void gemm_pack_b(const float* b, int64_t ldb, bool trans_b, int64_t K, int64_t N, Isa isa, float* dst);

// op(A) (M, K) (A stored (M, K) with row stride lda, or (K, M) when trans_a) packed for isa's
// micro-kernel: panels of MR = gemm_tile(isa).mr rows, dst[(i / MR)*MR*K + k*MR + i % MR],
// zero past M. gemm_pack_a packs the columns k0 <= k < k1 of op(A) and leaves the rest of dst
// alone, so a matrix made a few columns at a time can be packed as it is made; a points at
// op(A)[0, k0] as stored. gemm_packed_a_floats gives dst's size.
int64_t gemm_packed_a_floats(int64_t M, int64_t K, Isa isa);
void gemm_pack_a(const float* a, int64_t lda, bool trans_a, int64_t M, int64_t K, int64_t k0, int64_t k1,
                 Isa isa, float* dst);

// The per-ISA kernels (GemmDriver of csrc/cpu/gemm_driver.h with the micro-kernel of
// csrc/cpu/gemm.cpp, csrc/cpu/avx2/gemm.cpp, csrc/cpu/avx512/gemm.cpp). run assumes validated
// arguments with M, N > 0; pack_a, pack_b are gemm_pack_a's and gemm_pack_b's contracts for
// non-empty ranges.
struct GemmKernels {
  int mr, nr;  // the register tile
  void (*run)(const GemmArgs& g, int nthreads);
  GemmTile (*tile)();  // the tile and the blocking chosen for this CPU
  void (*pack_a)(const float* a, int64_t lda, bool trans_a, int64_t M, int64_t K, int64_t k0, int64_t k1,
                 float* dst);
  void (*pack_b)(const float* b, int64_t ldb, bool trans_b, int64_t K, int64_t N, float* dst);
};
extern const GemmKernels gemm_kernels_default, gemm_kernels_avx2, gemm_kernels_avx512;

}  // namespace fastnn
