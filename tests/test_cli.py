"""The command line: one-line errors naming the valid choices, --help and --version everywhere."""
from __future__ import annotations

import subprocess
import sys

import pytest

from harness.cli import build_parser
from tests.conftest import write_suite


def harness(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_version():
    from harness import __version__

    assert harness("--version").stdout.strip() == f"harness {__version__}"


def test_help_on_every_command():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"plugins", "suites", "run"} <= set(commands)
    for name in commands:
        result = harness(name, "--help")
        assert result.returncode == 0 and "usage: harness " + name in result.stdout


def test_unknown_suite_lists_the_suites():
    line = _one_line_error(harness("run", "long_rang"))
    assert "unknown suite 'long_rang'" in line and "long_range" in line and "copy" in line


def test_unknown_backend_lists_the_backends():
    line = _one_line_error(harness("run", "long_range", "--backends", "numpy,cobol"))
    assert "unknown backend 'cobol'" in line and "numpy" in line


def test_unknown_cell_lists_the_cells():
    line = _one_line_error(harness("run", "long_range", "--cells", "lstm,transformer"))
    assert "unknown cell 'transformer'" in line and "rnn_tanh, lstm, gru" in line


@pytest.mark.parametrize("text, expected", [
    ('task = "copy"\ncells = ["lstm"]\nseq_lens = [10\n', "malformed TOML"),
    ('task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\nbatch = "many"\n', "suite.toml:4: batch must be int"),
    ('task = "copy"\ncells = ["lsm"]\nseq_lens = [10]\n', "suite.toml:2: unknown cell 'lsm' in cells"),
    ('task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\nhiden = 3\n', "suite.toml:4: unknown key 'hiden'"),
    ('cells = ["lstm"]\nseq_lens = [10]\n', "missing required key 'task'"),
])
def test_malformed_suite_names_file_line_and_problem(tmp_path, text, expected):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "suite.toml").write_text(text)
    line = _one_line_error(harness("run", str(tmp_path / "bad")))
    assert expected in line and "bad/suite.toml" in line


def test_unknown_task_lists_the_tasks(tmp_path):
    folder = write_suite(tmp_path / "s", task='"parity"')
    line = _one_line_error(harness("run", str(folder), "--backends", "numpy"))
    assert "unknown task 'parity'" in line and "temporal_order" in line


def test_run_by_name_and_by_path_both_work(tmp_path):
    write_suite(tmp_path / "suites" / "tiny")
    for spec in ("tiny", "suites/tiny"):
        result = harness("run", spec, "--backends", "numpy", "-q", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "1 ok, 0 failed, 0 skipped" in result.stdout
    assert len(list((tmp_path / "results" / "runs").glob("tiny-*.json"))) == 2


def test_too_short_sequence_for_the_task_is_named():
    line = _one_line_error(harness("run", "long_range", "--backends", "numpy", "--seq-lens", "5"))
    assert "sequence length 5 is too short for task 'temporal_order' (minimum 10)" in line


@pytest.mark.parametrize("args, expected", [
    (["--threads", "0"], "--threads must be positive, got '0'"),
    (["--budget", "soon"], "--budget must be a positive number, got 'soon'"),
    (["--seq-lens", "10,x"], "--seq-lens must be a comma-separated list"),
])
def test_bad_option_values_are_one_line_errors(args, expected):
    assert expected in _one_line_error(harness("run", "long_range", *args))
