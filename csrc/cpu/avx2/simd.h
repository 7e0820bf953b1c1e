// AVX2 helpers shared by the AVX2 translation units (each includes this into its own anonymous
// namespace, so the copies never merge with code compiled for other ISAs).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace fastnn {
namespace {

// Lanes [0, r) set for r in [0, 8]: an unaligned load from kTailBits + 8 - r (the masks of
// vmaskmovps / vpmaskmovd for a row's last, partial vector).
alignas(64) const int32_t kTailBits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
inline __m256i tail_mask(int64_t r) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailBits + 8 - r));
}

}  // namespace
}  // namespace fastnn
