"""The example third-party CELL plugin (examples/harness-cornn: coRNN, Rusch & Mishra 2021),
installed like a user would: its own tests pass, harness lists it, checks it and runs it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.cli import harness
from tests.support.install import env_with, pip_install, run_pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "harness-cornn"

pytestmark = pytest.mark.slow  # a pip install of the example


@pytest.fixture(scope="module")
def cornn_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("cornn-site")
    pip_install(EXAMPLE, site)
    return site


def test_the_examples_own_tests_pass(cornn_site):
    result = run_pytest(EXAMPLE / "tests", cornn_site)
    assert result.returncode == 0, result.stdout
    # per cell (cornn, cornn_psmnist): the contract, the default init's finite differences and each
    # backend x dtype that runs it (torch-cpu; torch-cuda runs or is skipped); then the authors' cell
    # for each, the init bounds and the oscillator's Jacobian: at least 12 run and pass
    out = result.stdout
    passed = re.search(r"(\d+) passed", out)
    assert "failed" not in out and passed and int(passed[1]) >= 12, out


def test_cornn_is_listed_checked_and_run(cornn_site, tmp_path):
    env = env_with(cornn_site)
    listing = harness("plugins", env=env, cwd=tmp_path).stdout
    assert "harness-cornn 0.1.0" in listing
    assert any(line.split()[:1] == ["cornn"] and "torch-cpu" in line for line in listing.splitlines()), listing
    check = harness("check", "cornn", env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "cell 'cornn' from plugin 'cornn' (harness-cornn 0.1.0)" in check.stdout
    assert "torch-cpu: all checks passed" in check.stdout
    assert check.stdout.rstrip().splitlines()[-1].startswith("cornn: all checks passed (backends checked: torch-cpu")
    run = harness("run", "long_range", "--cells", "cornn", "--backends", "torch-cpu",
                  "--seq-lens", "50", "--budget", "0.1", "--results-dir", str(tmp_path), "--no-asv", "-q",
                  "--columns", "all", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith("torch-cpu ")]
    assert len(rows) == 1 and rows[0][1:4] == ["cornn", "50", "ok"], run.stdout
