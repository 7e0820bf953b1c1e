"""Shared test helpers: the ISAs this machine runs, a seeded rng, thread-count pinning and a
runner for Python snippets in a fresh interpreter (for settings read once per process)."""

import contextlib
import os
import subprocess
import sys
import textwrap
import zlib

import fastnn
import numpy as np
import pytest

# Every kernel path this build and CPU can run; tests parametrize over it.
ISAS = list(fastnn._core.build_info()["isa_supported"])
TILES = {isa: fastnn._core.gemm_tile(isa) for isa in ISAS}

# Settings that are read once at import; a child must see only what a test gives it.
_ONCE_PER_PROCESS_VARS = ("FASTNN_CPU_CAPABILITY", "FASTNN_NUM_THREADS", "OMP_NUM_THREADS")


@pytest.fixture
def rng(request):
    """A generator seeded from the test id: reproducible, different for each case."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def load_example(name):
    """examples/<name>.py as a module (the examples are scripts, not a package)."""
    import pathlib
    import types

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    mod = types.ModuleType(name)
    exec(compile(path.read_text(), str(path), "exec"), mod.__dict__)
    return mod


def randn(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


@contextlib.contextmanager
def num_threads(n):
    """fastnn's thread count set to n inside the block, restored afterwards."""
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(n)
    try:
        yield
    finally:
        fastnn.set_num_threads(old)


def child_env(env=None):
    """os.environ without the once-per-process fastnn/OpenMP settings, plus `env`.

    PYTHONPATH passes through (made absolute, so the child's working directory does not
    matter) with the directory of the fastnn this process imported appended: the child imports
    the same package whether it is pip-installed or run from the source tree.
    """
    e = {k: v for k, v in os.environ.items() if k not in _ONCE_PER_PROCESS_VARS}
    paths = [os.path.abspath(p) for p in e.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths.append(os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__))))
    e["PYTHONPATH"] = os.pathsep.join(paths)
    e.update(env or {})
    return e


def start_python(code, env=None, **popen_kwargs):
    """Start `code` (dedented) in a fresh interpreter; returns the Popen (text pipes)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen_kwargs,
    )


def run_python(code, env=None, timeout=60, check=True):
    """Run `code` in a fresh interpreter with env vars `env`; returns the CompletedProcess.

    A child that outlives `timeout` (a hung kernel) is killed and the test fails; with
    check=True a non-zero exit fails the test with the child's stderr.
    """
    p = start_python(code, env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"child Python did not finish within {timeout} s (hung?); env={env}\n{code}")
    result = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    if check and p.returncode != 0:
        pytest.fail(f"child Python exited with {p.returncode}; env={env}\n{code}\n--- stderr:\n{err}")
    return result


@pytest.fixture
def run_py():
    """run_python as a fixture, for tests that prefer fixtures to imports."""
    return run_python


@pytest.fixture
def emulated_gpu(monkeypatch):
    """fastnn.cuda on the emulated device: the CUDA kernels compiled as host C++
    (_fastnn_cuda_emu.device, fastnn._cuda's bindings) and tests/fake_cupy.py as CuPy, so CUDA
    arrays run through fastnn.cuda, ops, Tensor, nn, optim and train without a GPU. Returns the
    fake CuPy module. Skips without the emulator module (built with -DFASTNN_CUDA_EMULATION=ON),
    unless FASTNN_REQUIRE_CUDA_EMU=1."""
    if os.environ.get("FASTNN_REQUIRE_CUDA_EMU") == "1":
        import _fastnn_cuda_emu as emu
    else:
        emu = pytest.importorskip("_fastnn_cuda_emu")
    import fake_cupy

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(fastnn.cuda, "_module", emu.device)
    monkeypatch.setattr(fastnn.cuda, "_tried", True)
    return fake_cupy


# The backends every op's tests can run on: the CPU at each ISA this machine runs, the emulated
# device in each fiber order (FASTNN_EMU_ORDERS narrows them, as for the emulator's own tests),
# and a real GPU with CuPy (skipped without one).
EMU_ORDERS = os.environ.get("FASTNN_EMU_ORDERS", "forward,reverse,random").split(",")
BACKENDS = [f"cpu-{isa}" for isa in ISAS] + [f"emulated-{o}" for o in EMU_ORDERS] + ["cuda"]


@pytest.fixture(params=EMU_ORDERS, ids=[f"emu-{o}" for o in EMU_ORDERS])
def order(request, monkeypatch):
    """The emulated device, its fibers of each block resumed in each order in turn (the ids say
    emu-<order>, so that `-k emu` selects every test that runs on it)."""
    request.getfixturevalue("emulated_gpu")
    monkeypatch.setenv("FASTNN_EMU_ORDER", request.param)
    monkeypatch.setenv("FASTNN_EMU_SEED", "12345")
    return request.param


@pytest.fixture
def one_cpu_thread():
    """fastnn on one thread for the test (the results are the same for every count)."""
    with num_threads(1):
        yield


class Backend:
    """Where a test's arrays live and its kernels run. put(a): a NumPy array to the backend;
    get(a): back to NumPy; kernels: the entries with fastnn._core's arguments (fastnn._core
    itself at the backend's ISA, or fastnn.cuda.kernels); device: False on the CPU. On a CPU
    backend fastnn.ops runs at that ISA too."""

    def __init__(self, name, put, get, kernels, device):
        self.name, self.put, self.get, self.kernels, self.device = name, put, get, kernels, device

    @property
    def run(self):
        """The entries with NumPy in and NumPy out: run.<entry>(*args) puts the array arguments,
        calls kernels.<entry> and gets the results (a tuple's too; None stays None)."""
        backend = self

        class _Run:
            def __getattr__(self, name):
                def call(*args):
                    r = getattr(backend.kernels, name)(
                        *(backend.put(a) if isinstance(a, np.ndarray) else a for a in args)
                    )
                    return (
                        tuple(None if v is None else backend.get(v) for v in r)
                        if isinstance(r, tuple)
                        else backend.get(r)
                    )

                return call

        return _Run()

    def __repr__(self):
        return self.name


_CORE_ENTRIES = {n: getattr(fastnn._core, n) for n in dir(fastnn._core) if not n.startswith("_")}


class _AtIsa:
    """fastnn._core with isa= given to every entry that takes it (the module's own entries,
    whatever a backend has put in their place)."""

    def __init__(self, isa):
        self._isa = isa

    def __getattr__(self, name):
        fn = _CORE_ENTRIES.get(name) or getattr(fastnn._core, name)
        if "isa:" not in (fn.__doc__ or "").split("\n", 1)[0]:
            return fn
        return lambda *args, **kwargs: fn(*args, **kwargs, isa=self._isa)


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Each backend in turn (see BACKENDS and Backend)."""
    name = request.param
    if name.startswith("cpu-"):
        at = _AtIsa(name[4:])
        for entry in dir(fastnn._core):  # fastnn.ops reaches the entries through the module
            if not entry.startswith("_") and getattr(at, entry) is not getattr(fastnn._core, entry):
                monkeypatch.setattr(fastnn._core, entry, getattr(at, entry))
        return Backend(name, lambda a: a, np.asarray, fastnn._core, False)
    if name.startswith("emulated-"):
        cp = request.getfixturevalue("emulated_gpu")
        monkeypatch.setenv("FASTNN_EMU_ORDER", name.split("-", 1)[1])
        monkeypatch.setenv("FASTNN_EMU_SEED", "12345")
        # The CPU ops a test compares with, on one thread: under ThreadSanitizer the barriers of
        # the uninstrumented OpenMP runtime are unseen, so its threads' work would be reported.
        request.getfixturevalue("one_cpu_thread")
        return Backend(name, cp.asarray, lambda a: a.get(), fastnn.cuda.kernels, True)
    if not fastnn.cuda.is_available():
        pytest.skip("no CUDA device")
    cp = pytest.importorskip("cupy")
    return Backend(name, cp.asarray, cp.asnumpy, fastnn.cuda.kernels, True)


class Device:
    """The CUDA entries on the emulated device with the CPU entries' arguments (fastnn._core's,
    through fastnn.cuda.run): NumPy in (lists of arrays too; device arrays pass as they are),
    NumPy out (None stays None); outputs start as NaN (fake_cupy.empty). Each writeable NumPy
    argument gets its device copy's values back after the call, so updates in place (optimizer
    steps, running statistics) show as on the CPU. `made` holds host copies of every array the
    last call allocated, in order: its outputs, then its scratch."""

    def __init__(self, cp):
        self.cp = cp
        self.made = []

    def __getattr__(self, name):
        def call(*args):
            copies, made, empty = [], [], self.cp.empty

            def to_device(a):
                if isinstance(a, np.ndarray):
                    copies.append((a, self.cp.asarray(a)))
                    return copies[-1][1]
                if isinstance(a, (list, tuple)):
                    return type(a)(to_device(v) for v in a)
                return a

            def recorded(shape, dtype=float):
                made.append(empty(shape, dtype))
                return made[-1]

            dev = [to_device(a) for a in args]
            self.cp.empty = recorded
            try:
                r = fastnn.cuda.run(name, *dev)
            finally:
                self.cp.empty = empty
            self.made = [a.get() for a in made]
            for host, d in copies:
                if host.flags.writeable:
                    host[...] = d.get()
            return _to_host(r)

        return call


def _to_host(r):
    if isinstance(r, tuple):
        return tuple(_to_host(v) for v in r)
    return r.get() if hasattr(r, "__cuda_array_interface__") else r


@pytest.fixture
def dev(emulated_gpu):
    """The emulated device's entries, called as the CPU's (see Device)."""
    return Device(emulated_gpu)


def refusal(call, *args):
    """(exception type, message) of a call refused with TypeError or ValueError, or None if it
    ran. A device names its own array type in one message (a required array left out: "expected
    x to be a CUDA array of float32"); that phrase aside, a device's messages are the CPU's, so
    the bad-input tables compare refusal(...) on both devices."""
    try:
        call(*args)
    except (TypeError, ValueError) as e:
        return type(e), str(e).replace("a CUDA array of", "a numpy.ndarray of")
    return None


def compute_sanitizer(tool, script):
    """Runs a Python script under NVIDIA's compute-sanitizer with `tool` (memcheck, racecheck,
    initcheck, synccheck) and asserts a clean report; skips without the tool on PATH. The
    caller skips first when no GPU is visible."""
    import shutil

    exe = shutil.which("compute-sanitizer")
    if not exe:
        pytest.skip("compute-sanitizer not on PATH")
    r = subprocess.run(
        [exe, "--tool", tool, "--error-exitcode", "3", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and "ERROR SUMMARY: 0 errors" in r.stdout + r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
