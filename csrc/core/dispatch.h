// The ISA choice of every op, in one idiom (XNNPACK's config structs): each op declares a table
// of its per-ISA kernels in csrc/ops/<op>.h,
//
//   struct SoftmaxKernels { void (*forward)(...); ... };
//   extern const SoftmaxKernels softmax_kernels_default, softmax_kernels_avx2, softmax_kernels_avx512;
//
// each ISA unit (csrc/cpu/<op>.cpp, csrc/cpu/avx2/<op>.cpp, csrc/cpu/avx512/<op>.cpp) defines
// its table in one line at its end, and the front door (csrc/ops/<op>.cpp) takes the table of
// the ISA it was given:
//
//   const SoftmaxKernels& k = FASTNN_KERNEL_TABLE(softmax_kernels, isa);
//
// A kernel that may decline a shape is a table entry returning bool (false: the caller goes on
// to its general path), null on the ISAs that have none. This header is the only place that
// knows which ISA units the build has (FASTNN_HAVE_AVX2 / FASTNN_HAVE_AVX512, set by
// CMakeLists.txt): a table whose unit is not compiled is never named.
#pragma once
#include "core/cpu.h"

namespace fastnn {

template <class T>
struct KernelTablePtr {
  using type = const T*;
};

// The table for isa: avx2 / avx512 point at those units' tables, or are null where the unit is
// not in this build; an ISA without its table gets def. (The bindings pass only ISAs the build
// and the CPU support; gemm_tile may name any.)
template <class T>
const T& kernels_for(Isa isa, const T& def, typename KernelTablePtr<T>::type avx2,
                     typename KernelTablePtr<T>::type avx512) {
  if (isa == Isa::Avx512 && avx512) return *avx512;
  if (isa == Isa::Avx2 && avx2) return *avx2;
  return def;
}

#ifdef FASTNN_HAVE_AVX2
#define FASTNN_KERNEL_TABLE_AVX2(name) (&name##_avx2)
#else
#define FASTNN_KERNEL_TABLE_AVX2(name) nullptr
#endif
#ifdef FASTNN_HAVE_AVX512
#define FASTNN_KERNEL_TABLE_AVX512(name) (&name##_avx512)
#else
#define FASTNN_KERNEL_TABLE_AVX512(name) nullptr
#endif

// The table name##_<isa> for isa (an Isa value), falling back to name##_default.
#define FASTNN_KERNEL_TABLE(name, isa)                                         \
  ::fastnn::kernels_for((isa), name##_default, FASTNN_KERNEL_TABLE_AVX2(name), \
                        FASTNN_KERNEL_TABLE_AVX512(name))

}  // namespace fastnn
