"""`harness new-backend`: the package it writes installs, registers and passes the conformance check."""
from __future__ import annotations

import pytest

from tests.support.cli import harness
from tests.support.install import env_with, pip_install, run_pytest


@pytest.mark.slow  # a pip install of the scaffolded package; the scaffold's files are checked below too
def test_scaffolded_backend_installs_and_passes_the_check(tmp_path):
    out = harness("new-backend", "demo", "--dir", str(tmp_path), check=True).stdout
    root = tmp_path / "harness-demo"
    assert str(root) in out
    assert {"pyproject.toml", "README.md"} <= {p.name for p in root.iterdir()}
    assert "from harness import Backend" in (root / "harness_demo" / "backend.py").read_text()
    pip_install(root, tmp_path / "site")
    check = harness("check", "demo", env=env_with(tmp_path / "site"), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "demo: all checks passed" in check.stdout
    tests = run_pytest(root / "tests", tmp_path / "site")
    assert tests.returncode == 0 and "8 passed" in tests.stdout, tests.stdout


def test_new_backend_rejects_a_bad_name(tmp_path):
    result = harness("new-backend", "My Kernel", "--dir", str(tmp_path))
    assert result.returncode == 2 and "invalid backend name 'My Kernel'" in result.stderr


def test_scaffolded_backend_passes_the_conformance_check_in_process(tmp_path, monkeypatch):
    """The default tier's cover of the install test above: the package the scaffold writes imports
    and its backend passes every conformance check (no pip, no entry point)."""
    from harness.testing import check_backend

    harness("new-backend", "demo", "--dir", str(tmp_path), check=True)
    monkeypatch.syspath_prepend(str(tmp_path / "harness-demo"))
    from harness_demo.backend import DemoBackend

    report = check_backend(DemoBackend)
    assert report.passed, report
    assert {(r.cell, r.dtype) for r in report.results} == {(c, d) for c in DemoBackend.cells
                                                          for d in ("float32", "float64")}
