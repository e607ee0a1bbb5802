"""The command line: one-line errors naming the valid choices, --help and --version everywhere."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import sys

import pytest

from harness.cli import build_parser
from tests.support.cli import harness, one_line_error
from tests.support.plugins import add_distribution
from tests.support.suites import write_suite


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
    line = one_line_error(harness("run", "long_rang"))
    assert "unknown suite 'long_rang'" in line and "long_range" in line and "copy" in line


def test_unknown_backend_lists_the_backends():
    line = one_line_error(harness("run", "long_range", "--backends", "numpy,cobol"))
    assert "unknown backend 'cobol'" in line and "numpy" in line


def test_unknown_cell_lists_the_cells():
    line = one_line_error(harness("run", "long_range", "--cells", "lstm,transformer"))
    assert "unknown cell 'transformer'" in line and "rnn_tanh, lstm, gru" in line


@pytest.mark.parametrize("text, expected", [
    ('task = "copy"\ncells = ["lstm"]\nseq_lens = [10\n', "malformed TOML"),
    ('task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\nbatch = "many"\n', "suite.toml:4: batch must be int"),
    ('task = "copy"\ncells = ["lsm"]\nseq_lens = [10]\n', "suite.toml:2: cells: unknown cell 'lsm'; valid cells"),
    ('task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\nhiden = 3\n', "suite.toml:4: unknown key 'hiden'"),
    ('cells = ["lstm"]\nseq_lens = [10]\n', "missing required key 'task'"),
])
def test_malformed_suite_names_file_line_and_problem(tmp_path, text, expected):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "suite.toml").write_text(text)
    line = one_line_error(harness("run", str(tmp_path / "bad")))
    assert expected in line and "bad/suite.toml" in line


def test_unknown_task_lists_the_tasks(tmp_path):
    folder = write_suite(tmp_path / "s", task='"parity"')
    line = one_line_error(harness("run", str(folder), "--backends", "numpy"))
    assert "unknown task 'parity'" in line and "temporal_order" in line


def test_run_by_name_and_by_path_both_work(tmp_path):
    write_suite(tmp_path / "suites" / "tiny")
    for spec in ("tiny", "suites/tiny"):
        result = harness("run", spec, "--backends", "numpy", "-q", "--no-asv", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "1 ok, 0 failed, 0 skipped" in result.stdout
    assert len(list((tmp_path / "results" / "runs").glob("tiny-*.json"))) == 2


def test_too_short_sequence_for_the_task_is_named():
    line = one_line_error(harness("run", "long_range", "--backends", "numpy", "--seq-lens", "5"))
    assert "sequence length 5 is too short for task 'temporal_order' (minimum 10)" in line


@pytest.mark.parametrize("args, expected", [
    (["--threads", "0"], "--threads must be a positive finite number, got '0'"),
    (["--budget", "soon"], "--budget must be a positive number, got 'soon'"),
    (["--seq-lens", "10,x"], "--seq-lens must be a comma-separated list"),
    (["--inits", "default,xavier"], "unknown init 'xavier'; valid inits: default, orthogonal, identity, linear"),
    (["--inits", "forget_bias=1"], "init 'forget_bias' does not apply to cell 'rnn_tanh' (it applies to: lstm)"),
    (["--cells", "gru", "--inits", "chrono=1"], "init 'chrono=1': its T_max must be above 2, got '1'"),
])
def test_bad_option_values_are_one_line_errors(args, expected):
    assert expected in one_line_error(harness("run", "long_range", *args))


def test_bad_clip_is_a_one_line_error():
    assert "--clip must not be negative, got 1,-1" in one_line_error(harness("train", "adding", "--clip", "1,-1"))


def test_suites_lists_each_suite_with_its_task_source_and_criterion():
    out = harness("suites", check=True).stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert {"adding", "copy", "long_range"} <= set(rows)
    assert "temporal_order" in rows["long_range"] and "Pascanu" in rows["long_range"]
    assert "99%" in rows["long_range"] and "50,100,200,500,1000,2000" in rows["long_range"]


FAILS_AT_20 = """
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2
class FailsAt20(NumpyBackend):
    name = "fails-at-20"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            raise RuntimeError("no")
        super().forward()
@hookimpl
def harness_backends():
    return [FailsAt20]
"""


def test_default_run_shows_progress_and_exits_1_when_a_point_failed(plugin_dir, tmp_path):
    add_distribution(plugin_dir, "fails", {"fails_plugin": FAILS_AT_20}, {"fails": "fails_plugin"})
    folder = write_suite(tmp_path / "tiny", seq_lens="[12, 20]")
    result = harness("run", str(folder), "--backends", "fails-at-20", "--no-asv", "--results-dir", str(tmp_path))
    assert result.returncode == 1, result.stderr
    # Without a terminal the progress bar is one plain line per finished job, on stderr: each point's
    # timings, its gradient profile and memory peak (beside them), the spectra of each T.
    # (A line is never wrapped; "ok" may be followed by a note such as a busy machine's load.)
    assert re.search(r"^\[\d/6\] fails-at-20 rnn_tanh T=12: ok\b", result.stderr, re.M), result.stderr
    assert re.search(r"^\[\d/6\] fails-at-20 rnn_tanh T=20: failed \(RuntimeError: no\)$", result.stderr, re.M)
    assert re.search(r"^\[\d/6\] fails-at-20 rnn_tanh T=12 gradient profile and memory peak: ok\b", result.stderr,
                     re.M)
    assert "1 ok, 1 failed, 0 skipped" in result.stdout


def test_the_points_of_a_skipped_backend_are_one_progress_line(plugin_dir, tmp_path):
    from tests.support.plugins import UNAVAILABLE_PLUGIN

    add_distribution(plugin_dir, "limited", {"limited_plugin": UNAVAILABLE_PLUGIN}, {"limited": "limited_plugin"})
    folder = write_suite(tmp_path / "tiny", seq_lens="[12, 20]")
    result = harness("run", str(folder), "--backends", "nowhere", "--no-asv", "--results-dir", str(tmp_path))
    assert result.stderr.splitlines() == ["[2/2] nowhere rnn_tanh T=12..20 (2 points): skipped (needs a quantum "
                                          "computer)"], result.stderr
    assert "0 ok, 0 failed, 2 skipped" in result.stdout


def test_timing_and_thread_options_take_effect(tmp_path):
    folder = write_suite(tmp_path / "tiny", timing={"repeat": "2", "timeout": "120"})
    out = tmp_path / "run.json"
    result = harness("run", str(folder), "--backends", "numpy", "--no-asv", "-q", "--output", str(out),
                     "--repeat", "3", "--budget", "0.05", "--timeout", "77", "--threads", "2")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["suite"]["timing"] == {**data["suite"]["timing"], "repeat": 3, "budget": 0.05, "timeout": 77.0}
    assert data["suite"]["threads"] == 2 and data["provenance"]["threads"] == 2
    assert data["backends"]["numpy"]["info"]["threads"] == 2
    assert len(data["points"][0]["time"]["forward_backward"]["samples"]) == 3  # --repeat: exactly 3 blocks


def test_every_format_of_the_run_summary_is_for_its_reader(tmp_path):
    """--format json and csv: one record per point on stdout and nothing else there (the other lines on
    stderr); markdown: the pivot as a Markdown table (issue 30)."""
    import csv
    import io
    import json

    folder = write_suite(tmp_path / "tiny", seq_lens="[12, 16]", metrics='["time"]')
    common = ("run", str(folder), "--backends", "numpy", "--no-asv", "-q", "--results-dir", str(tmp_path))
    out = {fmt: harness(*common, "--format", fmt, check=True) for fmt in ("json", "csv", "markdown")}
    records = json.loads(out["json"].stdout)
    assert [(r["backend"], r["seq_len"], r["status"]) for r in records] == [("numpy", 12, "ok"), ("numpy", 16, "ok")]
    assert records[0]["forward_backward_median_s"] > 0 and "g" not in records[0]
    assert "2 ok, 0 failed, 0 skipped" in out["json"].stderr
    rows = list(csv.DictReader(io.StringIO(out["csv"].stdout)))
    assert [(r["seq_len"], r["status"]) for r in rows] == [("12", "ok"), ("16", "ok")]
    table = out["markdown"].stdout.splitlines()
    assert table[:2] == ["| cell | T | numpy |", "|---|---|---|"] and table[2].startswith("| rnn_tanh | 12 | ")


def test_plugins_and_suites_listings_in_every_format():
    """json (every listing, by title), csv (the main listing) and markdown, for scripts (issue 30)."""
    import csv
    import io
    import json

    listing = json.loads(harness("suites", "--format", "json", check=True).stdout)
    assert {"long_range", "adding"} <= {s["suite"] for s in listing["suites"]}
    plugins = json.loads(harness("plugins", "--format", "json", check=True).stdout)
    assert {"numpy", "tasks", "cells"} <= {p["plugin"] for p in plugins["plugins"]}
    assert {c["cell"] for c in plugins["cells"]} >= {"lstm", "mingru", "lru"}
    rows = list(csv.DictReader(io.StringIO(harness("suites", "--format", "csv", check=True).stdout)))
    assert "long_range" in {r["suite"] for r in rows}
    text = harness("plugins", "--format", "markdown", check=True).stdout
    assert text.startswith("## plugins\n\n| plugin | distribution |") and "## cells" in text


def test_bash_completion_completes_commands_suites_and_backends(tmp_path):
    """`harness completion bash` (shtab) completes commands, options, the installed suites and backends
    (asked of harness itself when TAB is pressed); zsh gets the same functions (issue 30)."""
    import shutil
    import subprocess

    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    script = tmp_path / "harness.bash"
    script.write_text(harness("completion", "bash", check=True).stdout)
    (tmp_path / "bin").mkdir()
    launcher = tmp_path / "bin" / "harness"  # the completion calls `harness`: this checkout's
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} -m harness \"$@\"\n")
    launcher.chmod(0o755)

    def complete(*words: str) -> list[str]:
        words_ = " ".join(words)
        out = subprocess.run(["bash", "-c", f'source {script}; COMP_WORDS=({words_}); COMP_CWORD={len(words) - 1}; '
                              f'_shtab_harness; printf "%s\\n" "${{COMPREPLY[@]}}"'],
                             env={**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"},
                             capture_output=True, text=True, timeout=300)
        return out.stdout.split()

    assert complete("harness", "com") == ["compare", "completion"]
    assert complete("harness", "run", "long_r") == ["long_range"]
    assert complete("harness", "run", "long_range", "--backends", "num") == ["numba", "numpy"]
    assert "_harness_suites" in harness("completion", "zsh", check=True).stdout


def test_export_writes_one_flat_row_per_point_and_never_replaces_a_file_unasked(tmp_path):
    import csv

    folder = write_suite(tmp_path / "tiny", seq_lens="[12, 16]", metrics='["time"]')
    run = tmp_path / "run.json"
    harness("run", str(folder), "--backends", "numpy", "--no-asv", "-q", "--output", str(run), check=True)
    out = tmp_path / "run.csv"
    harness("export", str(run), "--csv", str(out), check=True)
    rows = list(csv.DictReader(out.open()))
    assert [(r["backend"], r["seq_len"], r["status"]) for r in rows] == [("numpy", "12", "ok"), ("numpy", "16", "ok")]
    assert float(rows[0]["forward_backward_median_s"]) > 0 and "g" not in rows[0]
    out.write_text("precious")
    line = one_line_error(harness("export", str(run), "--csv", str(out)))
    assert "it exists; add --force" in line and out.read_text() == "precious"
    assert one_line_error(harness("export", str(run))).startswith("harness export: error:")  # --csv or --parquet
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        line = one_line_error(harness("export", str(run), "--parquet", str(tmp_path / "run.parquet")))
        assert "--parquet needs pyarrow or fastparquet" in line and not (tmp_path / "run.parquet").exists()
