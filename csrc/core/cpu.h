// CPU feature detection and the ISA choice, made once per process.
//
// Kernels come in per-ISA translation units (csrc/cpu/<isa>/...). Which one runs is decided
// here, never inside a kernel: the best ISA that is both compiled in and supported by this CPU
// (and its OS), lowered by FASTNN_CPU_CAPABILITY=default|avx2|avx512 when that is set.
// Each op's front door then takes that ISA's table of kernels (core/dispatch.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

// A function off the hot path (a fallback for rare input, e.g. a row redone in float64): kept
// out of line so that it does not change how its caller's loops are compiled.
#if defined(__GNUC__)
#define FASTNN_COLD __attribute__((noinline, cold))
#elif defined(_MSC_VER)
#define FASTNN_COLD __declspec(noinline)
#else
#define FASTNN_COLD
#endif

namespace fastnn {

enum class Isa : int { Default = 0, Avx2 = 1, Avx512 = 2 };
constexpr int kNumIsa = 3;

const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);  // false if the name is unknown
bool isa_compiled(Isa isa);                             // a kernel set for it is in this build
bool isa_supported(Isa isa);                            // compiled in and this CPU can run it
Isa best_isa();                                         // best supported, ignoring the environment
Isa selected_isa();  // what kernels use: best_isa() lowered by FASTNN_CPU_CAPABILITY
// Text of a problem with FASTNN_CPU_CAPABILITY (unknown name, or above what the CPU supports);
// empty when there is none. The Python package turns it into a warning at import.
const std::string& isa_env_warning();

// Data cache sizes of this CPU, read once from CPUID (leaf 4 on Intel, 0x8000001D on AMD, the
// older AMD leaves 0x80000005/6 before that), for choosing the GEMM blocking at run time as
// BLIS and OpenBLAS do per microarchitecture. A level CPUID does not describe gets a
// conservative size (32 KiB, 256 KiB, 2 MiB per core) and source says so.
struct CpuCaches {
  int64_t l1d = 0, l2 = 0, l3 = 0;  // bytes, per instance (L3: the whole shared cache)
  int l1d_ways = 0, l2_ways = 0;    // 0 where unknown
  int l3_sharing = 0;               // logical CPUs sharing one L3 (0 where unknown)
  const char* source = "";          // "cpuid leaf 4", "cpuid 0x8000001d", ... or "defaults"
};
const CpuCaches& cpu_caches();

}  // namespace fastnn
