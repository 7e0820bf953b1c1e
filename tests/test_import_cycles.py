"""The package's modules import each other without cycles (scripts/check_import_cycles.py), and
the check finds a cycle when there is one."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_import_cycles", ROOT / "scripts" / "check_import_cycles.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def test_fastnn_has_no_import_cycle():
    edges = check.graph(check.modules(ROOT / "python" / "fastnn"))
    assert "fastnn.nn.functional" in edges and "fastnn.tensor" in edges
    assert check.cycles(edges) == []


def test_a_cycle_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("try:\n    from ..a import x\nexcept ImportError:\n    pass\n")
    (pkg / "c.py").write_text("def later():\n    from . import a\n")  # at call time: no edge
    edges = check.graph(check.modules(pkg))
    assert check.cycles(edges) == [["pkg.a", "pkg.sub.b"]]
    assert edges["pkg.c"] == set()
