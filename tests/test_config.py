"""show_config, the thread count and the ISA choice, including the environment variables that
are read once per process (tested in child interpreters)."""

import json
import os
import re
import shutil

import fastnn
import numpy as np
import pytest
from conftest import ISAS, num_threads, run_python
from fastnn import _core, ref

INFO = _core.build_info()


def expected_threads(n):
    """What a request for n threads gives: n with OpenMP, 1 in a single-threaded build."""
    return n if INFO["openmp"] else 1


# ---------------------------------------------------------------------------------------------
# show_config


def config_lines(capsys):
    fastnn.show_config()
    out = capsys.readouterr().out
    return {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in out.splitlines()[1:] if ":" in line
    }, out


def test_show_config_header(capsys):
    _, out = config_lines(capsys)
    assert out.splitlines()[0] == f"fastnn {fastnn.__version__} (extension {INFO['version']})"


def test_show_config_fields(capsys):
    lines, out = config_lines(capsys)
    assert lines["compiler"] == INFO["compiler"] and INFO["compiler"], out
    assert lines["build type"] == INFO["build_type"], out
    if INFO["openmp"]:
        assert re.fullmatch(rf"yes \(OpenMP {INFO['openmp_version']}, .+\)", lines["OpenMP"]), out
    else:
        assert lines["OpenMP"].startswith("no"), out
    assert lines["threads"] == str(fastnn.get_num_threads()), out
    assert lines["ISA compiled"] == ", ".join(INFO["isa_compiled"]), out
    assert lines["ISA supported"].startswith(", ".join(ISAS) + " (machine "), out
    assert lines["ISA selected"].split()[0] == INFO["isa_selected"], out
    cu = fastnn.cuda.info()
    if cu["built"]:
        assert lines["CUDA"].startswith(f"built for {cu['architectures']} ("), out
    else:
        assert lines["CUDA"] == "not built", out


def test_show_config_threads_follow_set_num_threads(capsys):
    with num_threads(3):
        lines, out = config_lines(capsys)
    assert lines["threads"] == str(expected_threads(3)), out


def test_build_info_is_consistent():
    assert "default" in INFO["isa_compiled"] and "default" in INFO["isa_supported"]
    assert set(INFO["isa_supported"]) <= set(INFO["isa_compiled"])
    assert INFO["isa_best"] == INFO["isa_supported"][-1]  # listed in order default < avx2 < avx512
    assert INFO["isa_selected"] in INFO["isa_supported"]


def test_cpu_caches_are_plausible():
    c = INFO["cpu_caches"]
    assert c["source"] in ("cpuid leaf 4", "cpuid 0x8000001d", "cpuid 0x80000005/6", "defaults"), c
    # Every x86-64 data cache described so far: L1d 16 KiB-128 KiB, L2 above L1d, L3 at least L2
    # (or the 2 MiB default where none is described).
    assert 16 << 10 <= c["l1d"] <= 128 << 10 and c["l1d"] < c["l2"] <= 64 << 20, c
    assert c["l3"] >= 1 << 20, c
    if os.path.exists("/sys/devices/system/cpu/cpu0/cache/index0/size") and c["source"] != "defaults":
        # The kernel's view of the same CPUID leaves: the L1d and L2 sizes agree.
        sizes = {}
        for d in sorted(os.listdir("/sys/devices/system/cpu/cpu0/cache")):
            path = f"/sys/devices/system/cpu/cpu0/cache/{d}"
            if not d.startswith("index"):
                continue
            with open(f"{path}/level") as f, open(f"{path}/type") as t, open(f"{path}/size") as z:
                level, kind, size = int(f.read()), t.read().strip(), z.read().strip()
            if kind != "Instruction":
                sizes[level] = int(size[:-1]) * {"K": 1 << 10, "M": 1 << 20}[size[-1]]
        assert sizes.get(1) == c["l1d"] and sizes.get(2) == c["l2"], (sizes, c)


def test_gemm_blocking_follows_the_caches(capsys):
    c = INFO["cpu_caches"]
    for isa in ISAS:
        b = INFO["gemm_blocking"][isa]
        assert b == _core.gemm_tile(isa)
        assert b["mc"] % b["mr"] == 0 and b["nc"] % b["nr"] == 0 and b["kc"] % 16 == 0, (isa, b)
        assert b["mc"] * b["kc"] * 4 <= c["l2"] or b["mc"] == 4 * b["mr"], (isa, b, c)  # A block in L2
    if "avx2" in ISAS:  # the B micro-panel fills at most half of L1
        b = INFO["gemm_blocking"]["avx2"]
        assert b["kc"] * b["nr"] * 4 <= c["l1d"] // 2 or b["kc"] == 128, (b, c)
    lines, out = config_lines(capsys)
    assert lines["CPU caches"].startswith(f"L1d {c['l1d'] >> 10} KiB"), out
    for isa in ISAS:
        b = INFO["gemm_blocking"][isa]
        assert f"{isa}: {b['mr']}x{b['nr']} tile, KC {b['kc']}, MC {b['mc']}, NC {b['nc']}" in lines["gemm blocking"]


@pytest.mark.parametrize("blocking", ["37,7,17", "16,1,1", "300"])
def test_gemm_blocking_override_keeps_results_right(blocking, tmp_path):
    # FASTNN_GEMM_BLOCKING moves every K, row and column block edge (KC 37: K blocks of 37 and a
    # tail; MC and NC rounded down to one or two tiles): the products still match the reference
    # on every ISA, and the blocking reported is the one used.
    rng = np.random.default_rng(1)
    a, b, bias = (rng.standard_normal(s, dtype=np.float32) for s in [(45, 200), (200, 70), (70,)])
    np.savez(tmp_path / "in.npz", a=a, b=b, bias=bias)
    report = run_python(
        f"""
        import json, numpy as np, fastnn
        from fastnn import _core
        x = np.load({str(tmp_path / "in.npz")!r})
        out = {{}}
        for isa in _core.build_info()["isa_supported"]:
            for tb in (False, True):
                bb = np.ascontiguousarray(x["b"].T) if tb else x["b"]
                out[f"{{isa}}-{{tb}}"] = _core.gemm(x["a"], bb, trans_b=tb, bias=x["bias"], isa=isa)
                out[f"{{isa}}-{{tb}}-t"] = _core.gemm(x["a"].T.copy(), bb, trans_a=True, trans_b=tb, isa=isa)
        np.savez({str(tmp_path / "out.npz")!r}, **out)
        print(json.dumps(_core.build_info()["gemm_blocking"]))
        """,
        {"FASTNN_GEMM_BLOCKING": blocking},
    ).stdout.splitlines()[-1]
    got = np.load(tmp_path / "out.npz")
    want, want_plain = ref.gemm(a, b, bias=bias), ref.gemm(a, b)
    # float32 sums of 200 terms: error ~sqrt(K)*eps32*|a|@|b| ~ 3e-5 absolute.
    for key in got.files:
        np.testing.assert_allclose(
            got[key], want_plain if key.endswith("-t") else want, rtol=1e-4, atol=1e-4, err_msg=key
        )
    fields = [int(f) for f in blocking.split(",")]
    for isa, blk in json.loads(report).items():
        assert blk["kc"] == fields[0], (isa, blk)
        if len(fields) > 1:
            assert blk["mc"] == max(blk["mr"], fields[1] // blk["mr"] * blk["mr"]), (isa, blk)
            assert blk["nc"] == max(blk["nr"], fields[2] // blk["nr"] * blk["nr"]), (isa, blk)


def test_version_is_a_string():
    assert isinstance(fastnn.__version__, str) and fastnn.__version__
    assert isinstance(_core.__version__, str) and _core.__version__ == INFO["version"]
    # Either the metadata describes this copy (then the extension matched it, or import failed)
    # or there is none for it (a source tree on PYTHONPATH): both give the extension's version.
    assert fastnn.__version__ == _core.__version__


# Copies of the package beside made-up distribution metadata, imported in a fresh interpreter.
def fake_dist_info(site, version, editable_src=None):
    d = site / f"fastnn-{version}.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fastnn\nVersion: {version}\n")
    if editable_src is not None:
        (d / "direct_url.json").write_text(json.dumps({"url": editable_src.as_uri(), "dir_info": {"editable": True}}))


def copy_package(site):
    here = os.path.dirname(fastnn.__file__)
    shutil.copytree(here, site / "fastnn", ignore=shutil.ignore_patterns("__pycache__"))
    libs = here + ".libs"  # a repaired wheel's bundled libraries (libgomp), found via RPATH
    if os.path.isdir(libs):
        shutil.copytree(libs, site / "fastnn.libs")


VERSION_REPORT = "import fastnn; print(fastnn.__version__)"


def run_with_path(paths, code=VERSION_REPORT):
    """Run code with only `paths` (and the standard library, NumPy) providing fastnn."""
    return run_python(code, {"PYTHONPATH": os.pathsep.join(map(str, paths))}, check=False)


def test_version_mismatch_is_a_clear_import_error(tmp_path):
    copy_package(tmp_path)
    fake_dist_info(tmp_path, "9.9.9")  # the metadata beside the package says another version
    p = run_with_path([tmp_path])
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:"), p.stderr
    assert "9.9.9" in last and _core.__version__ in last and "stale build" in last, last
    assert "reinstall" in last, last


def test_version_matching_metadata_is_used(tmp_path):
    copy_package(tmp_path)
    fake_dist_info(tmp_path, _core.__version__)
    p = run_with_path([tmp_path])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == _core.__version__


def test_version_metadata_of_another_copy_is_ignored(tmp_path):
    # A source tree on PYTHONPATH in front of an installed fastnn of another version: no error,
    # the version is the extension's (the installed metadata is not about this copy).
    copy_package(tmp_path / "src")
    fake_dist_info(tmp_path / "site", "9.9.9")
    p = run_with_path([tmp_path / "src", tmp_path / "site"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == _core.__version__


def test_version_editable_metadata_is_checked(tmp_path):
    # An editable install's metadata names the source tree: a stale extension there fails.
    copy_package(tmp_path / "tree" / "python")
    fake_dist_info(tmp_path / "site", "9.9.9", editable_src=tmp_path / "tree")
    p = run_with_path([tmp_path / "tree" / "python", tmp_path / "site"])
    assert p.returncode != 0 and "stale build" in p.stderr, p.stderr


# ---------------------------------------------------------------------------------------------
# get/set_num_threads


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_set_get_num_threads_roundtrip(n):
    old = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(n)
        assert fastnn.get_num_threads() == expected_threads(n)
        assert _core.get_num_threads() == expected_threads(n)
    finally:
        fastnn.set_num_threads(old)
    assert fastnn.get_num_threads() == old


@pytest.mark.parametrize(
    "bad,exc",
    [
        (0, ValueError),
        (-1, ValueError),
        ("2", TypeError),
        (2.0, TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_set_num_threads_rejects(bad, exc):
    old = fastnn.get_num_threads()
    with pytest.raises(exc, match="set_num_threads"):
        fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == old  # a rejected request changes nothing


# ---------------------------------------------------------------------------------------------
# Environment variables, each in a fresh interpreter.

REPORT = """
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import fastnn
    import io, contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fastnn.show_config()
    info = fastnn._core.build_info()
    print(json.dumps({
        "selected": info["isa_selected"], "best": info["isa_best"],
        "threads": fastnn.get_num_threads(), "show_config": buf.getvalue(),
        "warnings": [[w.category.__name__, str(w.message)] for w in caught],
    }))
"""


def child_report(env):
    return json.loads(run_python(REPORT, env).stdout.splitlines()[-1])


@pytest.mark.parametrize("isa", ISAS)
def test_cpu_capability_selects_isa(isa):
    r = child_report({"FASTNN_CPU_CAPABILITY": isa})
    assert r["selected"] == isa
    assert f"ISA selected:    {isa} (FASTNN_CPU_CAPABILITY={isa})" in r["show_config"], r
    assert r["warnings"] == []


@pytest.mark.parametrize("isa", ISAS)
def test_cpu_capability_gemm_matches_reference_and_forced_path(isa, tmp_path):
    rng = np.random.default_rng(0)
    a, b, bias = (rng.standard_normal(s, dtype=np.float32) for s in [(45, 600), (600, 70), (70,)])
    np.savez(tmp_path / "in.npz", a=a, b=b, bias=bias)
    run_python(
        f"""
        import numpy as np, fastnn
        x = np.load({str(tmp_path / "in.npz")!r})
        np.save({str(tmp_path / "out.npy")!r},
                fastnn.ops.gemm(x["a"], x["b"], bias=x["bias"], activation="relu"))
        """,
        {"FASTNN_CPU_CAPABILITY": isa},
    )
    got = np.load(tmp_path / "out.npy")
    # float32 sums of 600 terms of random sign: error ~sqrt(K)*eps32*|a|@|b| ~ 1e-4 absolute.
    np.testing.assert_allclose(got, ref.gemm(a, b, bias=bias, activation="relu"), rtol=1e-4, atol=1e-3)
    # The ISA chosen by the environment is the kernel that isa= forces in-process: same bits.
    forced = _core.gemm(a, b, bias=bias, activation="relu", isa=isa)
    assert np.array_equal(got, forced)


def test_cpu_capability_bogus_warns_and_falls_back():
    r = child_report({"FASTNN_CPU_CAPABILITY": "bogus"})
    assert r["selected"] == r["best"] == INFO["isa_best"]
    assert len(r["warnings"]) == 1, r["warnings"]
    category, message = r["warnings"][0]
    assert category == "RuntimeWarning"
    assert "FASTNN_CPU_CAPABILITY" in message and "bogus" in message and INFO["isa_best"] in message


def test_cpu_capability_bogus_warning_is_shown_by_default():
    # Without any warnings filter set by the test: the default filters must show it on stderr.
    p = run_python("import fastnn", {"FASTNN_CPU_CAPABILITY": "bogus"})
    assert "RuntimeWarning" in p.stderr and "bogus" in p.stderr, p.stderr


@pytest.mark.parametrize(
    "isa",
    [i for i in ("avx2", "avx512") if i not in ISAS]
    or [pytest.param("avx512", marks=pytest.mark.skip("every ISA runs here"))],
)
def test_cpu_capability_unsupported_warns_and_falls_back(isa):
    r = child_report({"FASTNN_CPU_CAPABILITY": isa})
    assert r["selected"] == INFO["isa_best"]
    assert [w[0] for w in r["warnings"]] == ["RuntimeWarning"], r["warnings"]


def test_cpu_capability_unset_selects_best():
    r = child_report({})
    assert r["selected"] == r["best"] == INFO["isa_best"]
    assert r["warnings"] == []


CPUS = os.cpu_count() or 1


@pytest.mark.parametrize(
    "env,threads",
    [
        ({"FASTNN_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"}, 1),  # FASTNN_ beats OMP_
        ({"FASTNN_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}, 2),  # ... in both directions
        ({"OMP_NUM_THREADS": "1"}, 1),  # OMP_ alone is used
        ({"OMP_NUM_THREADS": str(CPUS + 1)}, CPUS + 1),  # ... even above the cores
        ({"OMP_NUM_THREADS": f"{CPUS + 2},2"}, CPUS + 2),  # a nested list: the first
        ({"FASTNN_NUM_THREADS": str(CPUS + 1)}, CPUS + 1),
        ({"FASTNN_NUM_THREADS": "0", "OMP_NUM_THREADS": "1"}, 1),  # invalid: falls through
        ({"FASTNN_NUM_THREADS": "", "OMP_NUM_THREADS": "1"}, 1),
        ({}, CPUS),  # neither: the cores
    ],
)
def test_num_threads_from_environment(env, threads):
    r = child_report(env)
    assert r["threads"] == expected_threads(threads), (env, r["threads"])
    assert f"threads:         {expected_threads(threads)}" in r["show_config"]


# ---------------------------------------------------------------------------------------------
# Another process on our cores: regions fall back to one thread, results stay the same


def test_adaptive_threads_switch():
    assert _core.contention_stats()["enabled"] == (os.environ.get("FASTNN_ADAPTIVE_THREADS") != "0")
    r = json.loads(
        run_python(
            "import json, fastnn; print(json.dumps(fastnn._core.contention_stats()))", {"FASTNN_ADAPTIVE_THREADS": "0"}
        ).stdout.splitlines()[-1]
    )
    assert r == {"enabled": False, "preemptions": 0, "single_regions": 0}


@pytest.mark.skipif(
    not INFO["openmp"] or CPUS < 2 or not hasattr(os, "sched_setaffinity"), reason="needs OpenMP and two CPUs"
)
def test_results_unchanged_with_a_core_taken():
    # A busy process pinned to one of our CPUs preempts the kernel thread that shares it; the
    # regions that then run on one thread (or on two, between detections) give the same bits.
    import subprocess
    import sys

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((300, 500), dtype=np.float32), rng.standard_normal((500, 400), dtype=np.float32)
    x = rng.standard_normal((8, 16, 20, 20), dtype=np.float32)
    w = rng.standard_normal((32, 16, 3, 3), dtype=np.float32)
    with num_threads(1):
        want_g, want_c = fastnn.ops.gemm(a, b), fastnn.ops.conv2d_forward(x, w, None, padding=1)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    busy = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
    try:
        with num_threads(2):
            for _ in range(40):
                assert np.array_equal(fastnn.ops.gemm(a, b), want_g)
                assert np.array_equal(fastnn.ops.conv2d_forward(x, w, None, padding=1), want_c)
    finally:
        busy.kill()
        busy.wait()
