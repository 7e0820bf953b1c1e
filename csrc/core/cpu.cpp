// CPU feature detection (CPUID through the compiler's builtins, which also check that the OS
// saves the wide registers) and the once-per-process ISA selection.
#include "core/cpu.h"

#include <cstdlib>

namespace fastnn {
namespace {

bool cpu_has_avx2() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  // The AVX-512 translation units are compiled for the Skylake-SP subset (F, DQ, BW, VL).
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

struct Selection {
  Isa best = Isa::Default;
  Isa selected = Isa::Default;
  std::string warning;
};

Selection make_selection() {
  Selection s;
  for (int i = kNumIsa - 1; i >= 0; --i) {
    if (isa_supported(static_cast<Isa>(i))) {
      s.best = static_cast<Isa>(i);
      break;
    }
  }
  s.selected = s.best;
  const char* env = std::getenv("FASTNN_CPU_CAPABILITY");
  if (env != nullptr && *env != '\0') {
    Isa want;
    if (!isa_from_name(env, &want)) {
      s.warning = std::string("FASTNN_CPU_CAPABILITY='") + env +
                  "' is not one of default, avx2, avx512; using " + isa_name(s.best);
    } else if (static_cast<int>(want) > static_cast<int>(s.best)) {
      s.warning = std::string("FASTNN_CPU_CAPABILITY=") + env +
                  " is not supported by this CPU or build; using " + isa_name(s.best);
    } else {
      s.selected = want;
    }
  }
  return s;
}

const Selection& selection() {
  static const Selection s = make_selection();  // thread-safe, computed once
  return s;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    default: return "default";
  }
}

bool isa_from_name(const std::string& name, Isa* out) {
  for (int i = 0; i < kNumIsa; ++i) {
    if (name == isa_name(static_cast<Isa>(i))) {
      *out = static_cast<Isa>(i);
      return true;
    }
  }
  return false;
}

bool isa_compiled(Isa isa) {
  switch (isa) {
#ifdef FASTNN_HAVE_AVX2
    case Isa::Avx2: return true;
#endif
#ifdef FASTNN_HAVE_AVX512
    case Isa::Avx512: return true;
#endif
    case Isa::Default: return true;
    default: return false;
  }
}

bool isa_supported(Isa isa) {
  if (!isa_compiled(isa)) return false;
  switch (isa) {
    case Isa::Avx2: return cpu_has_avx2();
    case Isa::Avx512: return cpu_has_avx512();
    default: return true;
  }
}

Isa best_isa() { return selection().best; }
Isa selected_isa() { return selection().selected; }
const std::string& isa_env_warning() { return selection().warning; }

}  // namespace fastnn
