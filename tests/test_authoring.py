"""Writing a backend: the conformance check, the scaffold, and the example checkpointing plugin."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.testing import check_backend, format_report
from harness_plugins.numpy_backend import NumpyBackend

ROOT = Path(__file__).resolve().parent.parent


class ScaledGradient(NumpyBackend):
    """Deliberately wrong: dL/dweight_hh is 1% too large."""

    name = "scaled"

    def gradients(self):
        grads = super().gradients()
        grads.params["weight_hh"] = grads.params["weight_hh"] * 1.01
        return grads


class WrongShape(NumpyBackend):
    """Deliberately wrong: dL/dx comes back with the batch axis first."""

    name = "wrong-shape"

    def gradients(self):
        grads = super().gradients()
        grads.x = np.swapaxes(grads.x, 0, 1)
        return grads


def test_a_scaled_weight_gradient_fails_naming_cell_dtype_and_tensor():
    report = check_backend(ScaledGradient, cells=["gru"], dtypes=["float64"])
    assert not report.passed
    failed = [r for r in report.results if not r.passed]
    assert [r.check for r in failed] == ["parameter gradients"]
    assert failed[0].cell == "gru" and failed[0].dtype == "float64"
    assert "dL/dweight_hh" in failed[0].detail and failed[0].error == pytest.approx(0.01, rel=0.05)
    text = format_report(report)
    assert "FAIL" in text and "gru" in text and "float64" in text and "dL/dweight_hh" in text


def test_a_wrong_shape_fails_naming_the_shape():
    report = check_backend(WrongShape, cells=["rnn_tanh"], dtypes=["float32"])
    shapes = next(r for r in report.results if r.check == "shapes")
    assert not shapes.passed
    assert "dL/dx has shape (3, 1, 2), expected (1, 3, 2)" in shapes.detail and "rnn_tanh float32" in shapes.detail


def test_the_numpy_backend_passes_every_check():
    report = check_backend(NumpyBackend)
    assert report.passed, format_report(report)
    assert {r.check for r in report.results} >= {"shapes", "per-step dL/dh_t", "deterministic"}


def _pip_install(source: Path, target: Path) -> None:
    """Install a plugin into a folder (no network, no change to the test environment)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True)


def _harness(*args: str, path: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_scaffolded_backend_installs_and_passes_the_check(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "new-backend", "demo", "--dir", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    root = tmp_path / "harness-demo"
    assert str(root) in out
    assert {"pyproject.toml", "README.md"} <= {p.name for p in root.iterdir()}
    _pip_install(root, tmp_path / "site")
    check = _harness("check", "demo", path=tmp_path / "site")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "demo: all checks passed" in check.stdout
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                           env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, capture_output=True, text=True)
    assert tests.returncode == 0 and "8 passed" in tests.stdout, tests.stdout


def test_new_backend_rejects_a_bad_name(tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness", "new-backend", "My Kernel", "--dir", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "invalid backend name 'My Kernel'" in result.stderr


@pytest.fixture(scope="module")
def checkpoint_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("checkpoint-site")
    _pip_install(ROOT / "examples" / "harness-checkpoint", site)
    return site


def test_checkpoint_plugin_is_found_checked_and_run(checkpoint_site, tmp_path):
    listing = _harness("plugins", path=checkpoint_site).stdout
    assert "harness-checkpoint 0.1.0" in listing and "backend checkpoint" in listing
    check = _harness("check", "checkpoint", path=checkpoint_site)
    assert check.returncode == 0, check.stdout
    run = _harness("run", "suites/long_range", "--backends", "all", "--seq-lens", "50", "--budget", "0.1",
                   "--results-dir", str(tmp_path), "-q", path=checkpoint_site)
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.startswith("checkpoint ")]
    assert len(rows) == 3 and all(row[3] == "ok" for row in rows)


def test_checkpointing_needs_at_most_a_quarter_of_numpys_memory_at_T_2000(checkpoint_site, monkeypatch):
    monkeypatch.syspath_prepend(str(checkpoint_site))
    from harness import measure, problem
    from harness.tasks import TemporalOrderTask
    from harness_checkpoint import CheckpointBackend

    suite = {"batch": 32, "hidden": 128, "init": "default", "init_gain": 1.0, "dtype": "float32", "seeds": [0],
             "metrics": ["memory"], "timing": {}}
    for cell in ("rnn_tanh", "lstm", "gru"):
        peaks = {cls.name: measure.measure(cls(), problem.CellJob(cls.name, cell, 2000, suite),
                                           TemporalOrderTask())["memory"]["peak_bytes"]
                 for cls in (NumpyBackend, CheckpointBackend)}
        assert peaks["checkpoint"] <= 0.25 * peaks["numpy"], (cell, peaks)


def test_check_of_an_unavailable_backend_says_why(plugin_dir):
    from tests.conftest import UNAVAILABLE_PLUGIN, add_distribution

    add_distribution(plugin_dir, "nowhere", {"nowhere_plugin": UNAVAILABLE_PLUGIN}, {"nowhere": "nowhere_plugin"})
    result = subprocess.run([sys.executable, "-m", "harness", "check", "nowhere"], capture_output=True, text=True)
    assert result.returncode == 1 and "unavailable here: needs a quantum computer" in result.stdout
