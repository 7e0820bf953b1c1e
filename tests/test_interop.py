"""fastnn beside other users of OpenMP and threads in one process: PyTorch and NumPy kernels run
together, threadpoolctl finds fastnn's OpenMP runtime and its limit is honoured, and a process
forked after threaded kernels ran works (single-threaded, with a warning) instead of hanging."""

import json
import os
import textwrap

import fastnn
import numpy as np
import pytest
from conftest import num_threads, run_python
from fastnn import _core

OPENMP = _core.build_info()["openmp"]
needs_openmp = pytest.mark.skipif(not OPENMP, reason="a build without OpenMP has no runtime to share")


@pytest.mark.parametrize("first", ["torch", "fastnn"])
def test_torch_numpy_and_fastnn_in_one_process(first):
    pytest.importorskip("torch")
    r = run_python(f"""
        import json
        import {first}
        import numpy as np, torch, fastnn
        from fastnn import ref
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((2, 96, 96), dtype=np.float32)
        want = ref.gemm(a, b)
        fastnn.set_num_threads(2)
        torch.set_num_threads(2)
        got = {{"fastnn": fastnn.ops.gemm(a, b), "numpy": a @ b,
               "torch": torch.from_numpy(a).matmul(torch.from_numpy(b)).numpy()}}
        # fastnn again after torch's threads ran, and an activation of each
        got["fastnn_after"] = fastnn.ops.gemm(a, b)
        err = {{k: float(np.max(np.abs(v - want))) for k, v in got.items()}}
        relu = torch.relu(torch.from_numpy(a)).numpy()
        print(json.dumps({{"err": err, "relu": bool(np.array_equal(fastnn.ops.relu_forward(a), relu))}}))
        """)
    out = json.loads(r.stdout.splitlines()[-1])
    # float32 sums of 96 terms: ~1e-5 relative to |a|@|b| ~ 10.
    assert all(e < 1e-3 for e in out["err"].values()), out
    assert out["relu"], out


@needs_openmp
def test_threadpoolctl_finds_fastnns_openmp_runtime():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    lib = _core.build_info()["openmp_library"]
    found = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"]
    # The same file, maybe through a symlink (libgomp.so.1 -> libgomp.so.1.0.0).
    stem = lib.split(".so")[0]
    assert any(os.path.basename(i["filepath"]).split(".so")[0] == stem for i in found), (lib, found)


@needs_openmp
def test_threadpoolctl_limit_is_honoured_and_lifted():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = fastnn.get_num_threads()
    with num_threads(3):
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            assert fastnn.get_num_threads() == 1
            a = np.ones((64, 64), np.float32)
            np.testing.assert_array_equal(fastnn.ops.gemm(a, a), np.full((64, 64), 64, np.float32))
        assert fastnn.get_num_threads() == 3
        with threadpoolctl.threadpool_limits(2, user_api="openmp"):
            assert fastnn.get_num_threads() == 2
        # set_num_threads inside a limit: the later, explicit request wins
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            fastnn.set_num_threads(3)
            assert fastnn.get_num_threads() == 3
    assert fastnn.get_num_threads() == before


def test_omp_limit_in_one_thread_leaves_others_alone():
    # The limit is per calling thread, as OpenMP's setting is: another Python thread keeps
    # fastnn's count.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading

    seen = []
    with num_threads(3):
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            t = threading.Thread(target=lambda: seen.append(fastnn.get_num_threads()))
            t.start()
            t.join()
            assert fastnn.get_num_threads() == 1
    assert seen == [3 if OPENMP else 1]


FORK = """
    import json, multiprocessing as mp, warnings
    import numpy as np, fastnn
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 200, 200), dtype=np.float32)
    fastnn.set_num_threads(2)
    if {run_first}:
        want = fastnn.ops.gemm(a, b)  # a parallel region in the parent, before the fork
    else:
        want = fastnn.ref.gemm(a, b).astype(np.float32)

    def child(q):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from fastnn._config import _after_fork_in_child
            _after_fork_in_child()  # what os.register_at_fork ran (its warning went to stderr)
        got = fastnn.ops.gemm(a, b)
        q.put({{"threads": fastnn.get_num_threads(), "forked_child": fastnn._core.forked_child(),
               "err": float(np.max(np.abs(got - want))),
               "warnings": [str(w.message) for w in caught]}})

    if __name__ == "__main__":
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(q,))
        p.start()
        p.join(120)  # a hung OpenMP runtime in the child: fail instead of waiting forever
        if p.is_alive():
            p.kill()
            p.join()
            print(json.dumps({{"hung": True}}))
        else:
            r = q.get(timeout=10)
            r["exitcode"] = p.exitcode
            print(json.dumps(r))
"""


@needs_openmp
def test_fork_after_threaded_kernels_runs_single_threaded_with_a_warning(tmp_path):
    script = tmp_path / "fork_child.py"
    script.write_text(textwrap.dedent(FORK.format(run_first=True)))
    r = run_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", timeout=300)
    out = json.loads(r.stdout.splitlines()[-1])
    assert not out.get("hung"), "the forked child hung in its OpenMP runtime"
    assert out["exitcode"] == 0 and out["forked_child"] and out["threads"] == 1, out
    assert out["err"] < 1e-3, out
    assert len(out["warnings"]) == 1 and "spawn" in out["warnings"][0], out
    assert "forked after fastnn" in r.stderr  # the warning os.register_at_fork printed


def test_fork_before_any_threaded_kernel_keeps_the_threads(tmp_path):
    script = tmp_path / "fork_child.py"
    script.write_text(textwrap.dedent(FORK.format(run_first=False)))
    r = run_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", timeout=300)
    out = json.loads(r.stdout.splitlines()[-1])
    assert not out.get("hung"), "the forked child hung in its OpenMP runtime"
    assert out["exitcode"] == 0 and not out["forked_child"], out
    assert out["threads"] == (2 if OPENMP else 1) and out["warnings"] == [], out
    assert out["err"] < 1e-3, out
