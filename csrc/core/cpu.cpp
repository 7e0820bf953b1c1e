// CPU feature detection (CPUID through the compiler's builtins, which also check that the OS
// saves the wide registers) and the once-per-process ISA selection.
#include "core/cpu.h"

#include <cstdlib>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#define FASTNN_HAVE_CPUID 1
#endif

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
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
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

#ifdef FASTNN_HAVE_CPUID
// The deterministic cache parameters of CPUID leaf 4 (Intel) and 0x8000001D (AMD, same layout):
// subleaf i describes one cache; type 0 ends the list.
bool read_cache_leaf(unsigned leaf, CpuCaches* c) {
  bool any = false;
  for (unsigned i = 0; i < 16; ++i) {
    unsigned a, b, cx, d;
    __cpuid_count(leaf, i, a, b, cx, d);
    const unsigned type = a & 0x1f, level = (a >> 5) & 0x7;
    if (type == 0) break;
    if (type == 2) continue;  // instruction cache
    const int ways = static_cast<int>((b >> 22) + 1);
    const int64_t bytes = int64_t{ways} * ((b >> 12 & 0x3ff) + 1) * ((b & 0xfff) + 1) * (int64_t{cx} + 1);
    if (level == 1) {
      c->l1d = bytes, c->l1d_ways = ways;
    } else if (level == 2) {
      c->l2 = bytes, c->l2_ways = ways;
    } else if (level == 3) {
      c->l3 = bytes, c->l3_sharing = static_cast<int>(((a >> 14) & 0xfff) + 1);
    }
    any = true;
  }
  return any;
}
#endif

CpuCaches detect_caches() {
  CpuCaches c;
  c.source = "defaults";
#ifdef FASTNN_HAVE_CPUID
  unsigned a, b, cx, d;
  if (__get_cpuid(0, &a, &b, &cx, &d)) {
    const unsigned max_leaf = a;
    const bool amd = b == 0x68747541u || b == 0x6f677948u;  // "Auth"enticAMD, "Hygo"nGenuine
    const unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
    bool topoext = false;
    if (max_ext >= 0x80000001u && __get_cpuid(0x80000001u, &a, &b, &cx, &d)) topoext = (cx >> 22) & 1;
    if (amd && topoext && max_ext >= 0x8000001Du && read_cache_leaf(0x8000001Du, &c)) {
      c.source = "cpuid 0x8000001d";
    } else if (!amd && max_leaf >= 4 && read_cache_leaf(4, &c)) {
      c.source = "cpuid leaf 4";
    } else if (amd && max_ext >= 0x80000006u) {  // older AMD: sizes in KiB (L3 in 512 KiB units)
      __get_cpuid(0x80000005u, &a, &b, &cx, &d);
      c.l1d = int64_t{cx >> 24} * 1024;
      __get_cpuid(0x80000006u, &a, &b, &cx, &d);
      c.l2 = int64_t{cx >> 16} * 1024;
      c.l3 = int64_t{d >> 18} * 512 * 1024;
      c.source = "cpuid 0x80000005/6";
    }
  }
#endif
  if (c.l1d <= 0) c.l1d = 32 * 1024;
  if (c.l2 <= 0) c.l2 = 256 * 1024;
  if (c.l3 <= 0) c.l3 = 2 * 1024 * 1024;  // no L3 described: about a core's share on most parts
  return c;
}

}  // namespace

const CpuCaches& cpu_caches() {
  static const CpuCaches c = detect_caches();
  return c;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
    default:
      return "default";
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
    case Isa::Avx2:
      return true;
#endif
#ifdef FASTNN_HAVE_AVX512
    case Isa::Avx512:
      return true;
#endif
    case Isa::Default:
      return true;
    default:
      return false;
  }
}

bool isa_supported(Isa isa) {
  if (!isa_compiled(isa)) return false;
  switch (isa) {
    case Isa::Avx2:
      return cpu_has_avx2();
    case Isa::Avx512:
      return cpu_has_avx512();
    default:
      return true;
  }
}

Isa best_isa() { return selection().best; }
Isa selected_isa() { return selection().selected; }
const std::string& isa_env_warning() { return selection().warning; }

}  // namespace fastnn
