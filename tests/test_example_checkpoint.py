"""The example third-party plugin (examples/harness-checkpoint), installed like a user would: its
own tests pass, harness finds, checks and runs it, and it keeps its memory promise."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import suites
from harness.run import grid, point
from harness_plugins.tasks import TemporalOrderTask
from harness_plugins.numpy_backend import NumpyBackend
from tests.support.cli import harness
from tests.support.install import env_with, pip_install, run_pytest
from tests.support.suites import write_suite

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "harness-checkpoint"

pytestmark = pytest.mark.slow  # a pip install of the example and runs at T = 2000


@pytest.fixture(scope="module")
def checkpoint_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("checkpoint-site")
    pip_install(EXAMPLE, site)
    return site


def test_the_examples_own_tests_pass(checkpoint_site):
    result = run_pytest(EXAMPLE / "tests", checkpoint_site)
    assert result.returncode == 0, result.stdout
    assert "9 passed" in result.stdout  # 8 conformance tests (4 cells x 2 dtypes) + the segment test


def test_checkpoint_plugin_is_found_checked_and_run(checkpoint_site, tmp_path):
    env = env_with(checkpoint_site)
    listing = harness("plugins", env=env, cwd=tmp_path).stdout
    assert "harness-checkpoint 0.2.0" in listing and "backend checkpoint" in listing
    check = harness("check", "checkpoint", env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout
    run = harness("run", str(suites.resolve("long_range")), "--backends", "checkpoint,numpy", "--seq-lens", "50",
                  "--budget", "0.1", "--results-dir", str(tmp_path), "--no-asv", "-q", "--columns", "all", env=env,
                  cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith("checkpoint ")]
    assert len(rows) == 3 and all(row[3] == "ok" for row in rows)


def test_checkpointing_needs_at_most_a_quarter_of_numpys_memory_at_T_2000(checkpoint_site, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(checkpoint_site))
    from harness_checkpoint import CheckpointBackend

    suite = suites.load(write_suite(tmp_path / "s", batch="32", hidden="128", dtype='"float32"', metrics='["memory"]'))
    for cell in ("rnn_tanh", "lstm", "gru"):
        peaks = {cls.name: point.measure(cls(), grid.PointJob(cls.name, cell, 2000, suite),
                                         TemporalOrderTask()).memory.peak_bytes
                 for cls in (NumpyBackend, CheckpointBackend)}
        assert peaks["checkpoint"] <= 0.25 * peaks["numpy"], (cell, peaks)
