"""Threads, ISA selection and the build report (show_config)."""

import os
import platform
import warnings

from . import _core
from ._version import __version__

if _core.build_info()["isa_env_warning"]:
    warnings.warn(_core.build_info()["isa_env_warning"], RuntimeWarning, stacklevel=3)


def _after_fork_in_child() -> None:
    if _core.forked_child():
        warnings.warn(
            "fastnn: this process was forked after fastnn's kernels ran on several OpenMP "
            "threads, which do not survive fork(); fastnn runs single-threaded here. Use "
            "multiprocessing's 'spawn' or 'forkserver' start method for threaded kernels "
            "in worker processes.",
            RuntimeWarning,
            stacklevel=2,
        )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_num_threads() -> int:
    """Threads each kernel may use (FASTNN_NUM_THREADS, then OMP_NUM_THREADS, then the cores;
    lowered while threadpoolctl limits OpenMP in this thread; 1 in a child forked after threaded
    kernels ran)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the threads each kernel may use; results do not depend on it."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"fastnn.set_num_threads: expected an int, got {type(n).__name__}")
    _core.set_num_threads(n)


def empty_cache() -> None:
    """Free the memory of dead output arrays that fastnn keeps for reuse.

    Kernels allocate outputs of 1 MiB and more from a cache (at most 1 GiB) of blocks freed by
    earlier outputs, so a training loop does not pay a page fault per 4 KiB of fresh memory at
    every step; this hands those blocks back to the system."""
    _core.empty_cache()


def cached_memory() -> int:
    """Bytes of dead output arrays' memory kept for reuse (see empty_cache)."""
    return _core.cached_bytes()


def config() -> dict:
    """The build and run-time configuration as a dict (what show_config prints)."""
    info = dict(_core.build_info())
    info["python_version"] = __version__
    info["num_threads"] = _core.get_num_threads()
    info["machine"] = platform.machine()
    from . import cuda

    info["cuda"] = cuda.info()
    info["env"] = {
        k: os.environ[k]
        for k in ("FASTNN_CPU_CAPABILITY", "FASTNN_NUM_THREADS", "OMP_NUM_THREADS", "FASTNN_CONV_WINOGRAD")
        if k in os.environ
    }
    return info


def _cuda_line(cu) -> str:
    if not cu.get("built"):
        return "not built"
    drv = cu["driver_version"]
    return f"built for {cu['architectures']} ({cu['compiler']}, runtime {cu['runtime_version']}); " + (
        f"driver {drv}, {cu['device_count']} device(s)" if drv else "no driver: CPU only"
    )


def _caches_line(c) -> str:
    def size(n):
        return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"

    ways = f" ({c['l1d_ways']}-way)" if c["l1d_ways"] else ""
    shared = f" shared by {c['l3_sharing']} CPUs" if c["l3_sharing"] else ""
    return f"L1d {size(c['l1d'])}{ways}, L2 {size(c['l2'])}, L3 {size(c['l3'])}{shared} (from {c['source']})"


def show_config() -> None:
    """Print the version, compiler, flags, OpenMP, threads, ISAs and CUDA of this build."""
    c = config()
    omp = "no (single-threaded build)"
    if c["openmp"]:
        omp = f"yes (OpenMP {c['openmp_version']}, {c['openmp_library'] or 'runtime unknown'})"
    lines = [
        f"fastnn {c['python_version']} (extension {c['version']})",
        f"  compiler:        {c['compiler']}",
        f"  build type:      {c['build_type']}",
        f"  C++ flags:       {c['cxx_flags'] or '(none)'}{' -march=native' if c['native'] else ''}",
        f"  ISA unit flags:  {c['isa_flags'] or '(none)'}",
        f"  OpenMP:          {omp}",
        f"  threads:         {c['num_threads']}",
        f"  ISA compiled:    {', '.join(c['isa_compiled'])}",
        f"  ISA supported:   {', '.join(c['isa_supported'])} (machine {c['machine']})",
        f"  ISA selected:    {c['isa_selected']}"
        + (
            f" (FASTNN_CPU_CAPABILITY={c['env']['FASTNN_CPU_CAPABILITY']})"
            if "FASTNN_CPU_CAPABILITY" in c["env"]
            else ""
        ),
        "  CPU caches:      " + _caches_line(c["cpu_caches"]),
        "  gemm blocking:   "
        + " | ".join(
            f"{isa}: {b['mr']}x{b['nr']} tile, KC {b['kc']}, MC {b['mc']}, NC {b['nc']}"
            for isa, b in c["gemm_blocking"].items()
        ),
        "  conv2d 3x3:      "
        + (
            "Winograd F(2x2, 3x3) where >= 16 channels each way"
            if c["conv2d_winograd"]
            else "direct kernels (no Winograd)"
        ),
        "  CUDA:            " + _cuda_line(c["cuda"]),
    ]
    print("\n".join(lines))
