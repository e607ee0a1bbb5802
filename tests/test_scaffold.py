"""`harness new-backend`: the package it writes installs, registers and passes the conformance check."""
from __future__ import annotations

import pytest

from tests.support.cli import harness, one_line_error
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


# -- harness new-cell --------------------------------------------------------------------------------
@pytest.mark.slow  # a pip install of the scaffolded package
def test_scaffolded_cell_installs_and_passes_the_check(tmp_path):
    out = harness("new-cell", "demo_cell", "--dir", str(tmp_path), check=True).stdout
    root = tmp_path / "harness-demo-cell"
    assert str(root) in out and "harness check demo_cell" in out
    pip_install(root, tmp_path / "site")
    env = env_with(tmp_path / "site")
    assert "harness-demo-cell 0.1.0" in harness("plugins", env=env, cwd=tmp_path).stdout
    check = harness("check", "demo_cell", env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "torch-cpu: all checks passed" in check.stdout
    last = check.stdout.rstrip().splitlines()[-1]
    assert last.startswith("demo_cell: all checks passed (backends checked: torch-cpu")
    tests = run_pytest(root / "tests", tmp_path / "site")
    assert tests.returncode == 0 and "failed" not in tests.stdout, tests.stdout


def test_new_cell_writes_an_installable_package(tmp_path):
    harness("new-cell", "demo_cell", "--dir", str(tmp_path), check=True)
    root = tmp_path / "harness-demo-cell"
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert files == {"pyproject.toml", "README.md", "harness_demo_cell/__init__.py", "harness_demo_cell/cell.py",
                     "tests/test_cell.py"}
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "harness-demo-cell"' in pyproject
    assert '[project.entry-points.harness]\ndemo_cell = "harness_demo_cell.cell"' in pyproject
    readme = (root / "README.md").read_text()
    assert "pip install -e /path/to/harness-checkout" in readme and "git+https://" in readme
    assert "@parametrize_with_checks(DemoCellCell)" in (root / "tests" / "test_cell.py").read_text()
    assert "{{" not in pyproject + readme + (root / "harness_demo_cell" / "cell.py").read_text()


@pytest.mark.parametrize("name, why", [
    ("My Cell", "invalid cell name 'My Cell': use lower-case letters, digits and '_', starting with a letter"),
    ("2cell", "invalid cell name '2cell'"),
    ("my-cell", "invalid cell name 'my-cell'"),
    ("lstm", "a cell named 'lstm' is already installed (plugin 'cells' (rnn-grad-harness "),
    ("mingru", "a cell named 'mingru' is already installed"),
])
def test_new_cell_refuses_a_bad_or_taken_name_in_one_line(tmp_path, name, why):
    line = one_line_error(harness("new-cell", name, "--dir", str(tmp_path)))
    assert why in line
    assert not any(tmp_path.iterdir())  # nothing written


def test_new_cell_and_new_backend_refuse_an_existing_folder_and_a_taken_backend_name(tmp_path):
    harness("new-cell", "demo_cell", "--dir", str(tmp_path), check=True)
    assert "already exists" in one_line_error(harness("new-cell", "demo_cell", "--dir", str(tmp_path)))
    line = one_line_error(harness("new-backend", "numpy", "--dir", str(tmp_path)))
    assert "a backend named 'numpy' is already installed (plugin 'numpy' (rnn-grad-harness " in line
    line = one_line_error(harness("new-backend", "tasks", "--dir", str(tmp_path)))  # its entry point would collide
    assert "a plugin (entry point) named 'tasks' is already installed (plugin 'tasks' (rnn-grad-harness " in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["harness-demo-cell"]  # nothing more written


def test_scaffolded_cell_passes_the_cell_checks_in_process(tmp_path, monkeypatch):
    """The default tier's cover of the install test above: the package new-cell writes imports, its
    cell passes its own checks (contract, inits, finite differences) as written, and, once it is the
    registered cell of its name (what installing it does), torch-cpu's checks with it too."""
    pytest.importorskip("torch")
    from harness.plugins import get_registry
    from harness.testing import check_cell_plugin

    harness("new-cell", "demo_cell", "--dir", str(tmp_path), check=True)
    monkeypatch.syspath_prepend(str(tmp_path / "harness-demo-cell"))
    from harness_demo_cell.cell import DemoCellCell, harness_cells

    assert harness_cells() == [DemoCellCell] and DemoCellCell.name == "demo_cell"
    report = check_cell_plugin(DemoCellCell)
    assert report.passed, report
    assert {r.init for r in report.results} == {"-", "every", "default", "orthogonal", "slow"}
    assert report.note.startswith("no backend checked: cell 'demo_cell' is not installed")
    monkeypatch.setitem(get_registry().cells, "demo_cell", DemoCellCell)
    report = check_cell_plugin(DemoCellCell, backends=["torch-cpu"], inits=["default"])
    assert report.passed and [b.backend for b in report.backends] == ["torch-cpu"]
    assert {(r.cell, r.dtype) for r in report.backends[0].results} == {("demo_cell", "float32"),
                                                                      ("demo_cell", "float64")}
