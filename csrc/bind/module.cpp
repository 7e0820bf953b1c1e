// fastnn._core: the module, its configuration functions, and one bind_<op>() per op
// (csrc/bind/<op>.cpp). Bindings check arguments (GIL held), allocate outputs, then release the
// GIL around each kernel. Kernels include no Python headers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "bind/alloc.h"
#include "bind/arrays.h"
#include "bind/bindings.h"
#include "core/cpu.h"
#include "core/threads.h"
#include "ops/conv2d.h"
#include "ops/gemm.h"

namespace py = pybind11;
using namespace fastnn;
using namespace fastnn::bind;

namespace {

py::dict build_info() {
  py::dict d;
  d["version"] = FASTNN_VERSION;
  d["compiler"] = FASTNN_COMPILER;
  d["cxx_flags"] = FASTNN_CXX_FLAGS;
  d["isa_flags"] = FASTNN_ISA_FLAGS;
  d["build_type"] = FASTNN_BUILD_TYPE;
  d["native"] = static_cast<bool>(FASTNN_NATIVE_BUILD);
  d["openmp"] = openmp_enabled();
  d["openmp_version"] = openmp_version();
  d["openmp_library"] = std::string(openmp_library());
  py::list compiled, supported;
  for (int i = 0; i < kNumIsa; ++i) {
    const Isa isa = static_cast<Isa>(i);
    if (isa_compiled(isa)) compiled.append(isa_name(isa));
    if (isa_supported(isa)) supported.append(isa_name(isa));
  }
  d["isa_compiled"] = compiled;
  d["isa_supported"] = supported;
  d["isa_best"] = isa_name(best_isa());
  d["isa_selected"] = isa_name(selected_isa());
  d["isa_env_warning"] = isa_env_warning();
  const CpuCaches& c = cpu_caches();
  py::dict caches;
  caches["l1d"] = c.l1d, caches["l2"] = c.l2, caches["l3"] = c.l3;
  caches["l1d_ways"] = c.l1d_ways, caches["l2_ways"] = c.l2_ways, caches["l3_sharing"] = c.l3_sharing;
  caches["source"] = c.source;
  d["cpu_caches"] = caches;
  py::dict blocking;  // per supported ISA: the micro-kernel tile and the cache blocking
  for (int i = 0; i < kNumIsa; ++i) {
    const Isa isa = static_cast<Isa>(i);
    if (!isa_supported(isa)) continue;
    const GemmTile t = gemm_tile(isa);
    py::dict b;
    b["mr"] = t.mr, b["nr"] = t.nr, b["kc"] = t.kc, b["mc"] = t.mc, b["nc"] = t.nc;
    blocking[isa_name(isa)] = b;
  }
  d["gemm_blocking"] = blocking;
  // Winograd F(2x2, 3x3) runs where the ISA's conv2d table has it (csrc/ops/conv2d.h) unless turned off.
  d["conv2d_winograd"] = conv2d_winograd_available(selected_isa());
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastnn CPU kernels (C++17, SIMD with run-time ISA dispatch, OpenMP)";
  m.attr("__version__") = FASTNN_VERSION;
  register_arg_errors();
  m.def("build_info", &build_info, "Build and run-time configuration as a dict.");
  m.def("get_num_threads", &get_num_threads, "Threads each kernel may use.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the threads each kernel may use (n >= 1).");
  m.def("forked_child", &forked_child,
        "True in a process forked after kernels ran on several OpenMP threads (then single-threaded).");
  m.def("cached_bytes", &cached_bytes,
        "Bytes of freed output blocks kept for reuse (arrays of 1 MiB and more).");
  m.def("empty_cache", &empty_cache, "Free the output blocks kept for reuse.");
  m.def(
      "contention_stats",
      [] {
        const ContentionStats s = contention_stats();
        py::dict d;
        d["enabled"] = s.enabled, d["preemptions"] = s.preemptions, d["single_regions"] = s.single_regions;
        return d;
      },
      "Preemptions of kernel threads by other processes seen so far, and the parallel regions run "
      "on one thread because of them (FASTNN_ADAPTIVE_THREADS=0 turns this off).");
  bind_gemm(m);
  bind_pool2d(m);
  bind_act(m);
  bind_conv2d(m);
  bind_softmax(m);
  bind_optim(m);
  bind_batchnorm(m);
  bind_embedding(m);
  bind_rnn(m);
  bind_layernorm(m);
  bind_attention(m);
  bind_word2vec(m);
}
