"""Bad input gets one line and exit status 2 before anything is measured; what was written is kept."""
from __future__ import annotations

import json
import os
import stat

import pytest

from tests.support.asv_project import make_repo
from tests.support.cli import harness, harness_read_only, one_line_error, read_only_mounts
from tests.support.plugins import add_distribution
from tests.support.suites import write_suite


@pytest.mark.parametrize("args, expected", [
    (["--timeout", "nan"], "--timeout must be a positive finite number, got 'nan'"),
    (["--timeout", "inf"], "--timeout must be a positive finite number, got 'inf'"),
    (["--seq-lens", ","], "--seq-lens must list at least one value"),
    (["--memory-limit", "lots"], "--memory-limit must be a size like 512M or 8G"),
])
def test_bad_numbers_are_usage_errors(tmp_path, args, expected):
    assert expected in one_line_error(harness("run", str(write_suite(tmp_path / "s")), *args))


def test_a_port_out_of_range_is_a_usage_error():
    assert "--port must be an integer from 0 to 65535, got '99999'" in one_line_error(
        harness("preview", "--port", "99999"))


@pytest.mark.parametrize("content, expected", [
    (b'task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\nname = "\xff\xfe"\n', "not UTF-8 text"),
    (b'task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\n[timing]\ntimeout = -1\n',
     "suite.toml:5: timing.timeout must be positive and finite, got -1"),
    (b'task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\n[timing]\nrepeat = 0\n',
     "suite.toml:5: timing.repeat must be positive and finite, got 0"),
    (b'task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\n[timing]\nrounds = 0\n',
     "suite.toml:5: timing.rounds must be positive and finite, got 0"),
    (b'task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\nseeds = [-1]\n', "suite.toml:4: seeds must be non-negative"),
    (b'task = "copy"\ncells = ["lstm"]\nseq_lens = [10]\n[timing]\nthreshold = nan\n',
     "suite.toml:5: timing.threshold must be non-negative and finite, got nan"),
])
def test_bad_suite_files_are_one_line_errors(tmp_path, content, expected):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "suite.toml").write_bytes(content)
    assert expected in one_line_error(harness("run", str(tmp_path / "bad"), "--backends", "numpy"))


def test_a_problem_that_cannot_fit_in_memory_is_refused_with_the_estimate(tmp_path):
    line = one_line_error(harness("run", str(write_suite(tmp_path / "s")), "--backends", "numpy",
                                  "--seq-lens", str(10**9), "--no-asv", "--results-dir", str(tmp_path / "r")))
    assert "sequence length 1000000000 needs about" in line and "GiB" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("content", ["[1, 2, 3]", '{"schema": 1}', "{not json"])
def test_report_on_a_file_that_is_not_a_results_file(tmp_path, content):
    (tmp_path / "x.json").write_text(content)
    assert "not a harness results file" in one_line_error(harness("report", str(tmp_path / "x.json")))


def test_unwritable_outputs_are_refused_before_measuring(tmp_path):
    suite = str(write_suite(tmp_path / "s"))
    (tmp_path / "file").write_text("")
    line = one_line_error(harness("run", suite, "--backends", "numpy", "--results-dir", str(tmp_path / "file" / "r")))
    assert "cannot write the results file" in line
    line = one_line_error(harness("run", suite, "--backends", "numpy", "--output", str(tmp_path)))
    assert "cannot write the results file" in line and "is a folder" in line
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        assert "cannot write" in one_line_error(harness("run", suite, "--results-dir", str(tmp_path / "ro")))


def test_a_damaged_asv_database_keeps_the_run_and_harness_record_adds_it_later(tmp_path):
    suite = str(write_suite(tmp_path / "s"))
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "benchmarks.json").write_text('{"version": 2, "tiny.time_fo')  # truncated
    result = harness("run", suite, "--backends", "numpy", "-q", "--results-dir", str(results_dir), "--label", "x")
    line = one_line_error(result)
    assert "the asv database" in line and "is damaged" in line and "harness record RUN.json" in line
    (run_file,) = (results_dir / "runs").glob("*.json")
    assert json.loads(run_file.read_text())["status"] == "complete"  # the measurements are kept
    (results_dir / "benchmarks.json").unlink()
    recorded = harness("record", str(run_file), "--label", "x", "--results-dir", str(results_dir))
    assert recorded.returncode == 0 and "recorded into asv under label 'x'" in recorded.stdout
    assert "s.time_forward" in json.loads((results_dir / "benchmarks.json").read_text())


def test_results_files_follow_the_users_umask(tmp_path):
    out = tmp_path / "run.json"
    harness("run", str(write_suite(tmp_path / "s")), "--backends", "numpy", "--no-asv", "-q", "--output", str(out),
            check=True)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("args, expected", [
    (["run", "long_range", "--backends", ","], "--backends must name at least one backend, got ','; installed "
                                                "backends: "),
    (["run", "long_range", "--backends", ""], "--backends must name at least one backend, got ''; installed "
                                               "backends: "),
    (["train", "adding", "--seeds=-1"], "--seeds must be at least 0, got '-1'"),
    (["compare", "", ""], "compare: before is empty; give a commit prefix or a label"),
    (["compare", "abc", " "], "compare: after is empty"),
])
def test_empty_and_out_of_range_values_are_one_line_errors(args, expected):
    line = one_line_error(harness(*args))
    assert expected in line
    if "--backends" in args:
        assert "numpy" in line  # the installed backends are named


def test_more_threads_than_cpus_needs_oversubscribe(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    suite = str(write_suite(tmp_path / "s"))
    line = one_line_error(harness("run", suite, "--backends", "numpy", "--threads", str(cpus + 1),
                                  "--results-dir", str(tmp_path / "r")))
    assert f"--threads {cpus + 1} is more than the {cpus} CPU(s) this run may use" in line
    assert "--oversubscribe" in line and not (tmp_path / "r").exists()
    out = tmp_path / "run.json"
    ran = harness("run", suite, "--backends", "numpy", "--threads", str(cpus + 1), "--oversubscribe", "--no-asv", "-q",
                  "--output", str(out))
    assert ran.returncode == 0, ran.stderr
    assert json.loads(out.read_text())["provenance"]["threads"] == cpus + 1


def test_a_malformed_results_file_is_not_called_a_damaged_database(tmp_path):
    out = tmp_path / "run.json"
    harness("run", str(write_suite(tmp_path / "s")), "--backends", "numpy", "--no-asv", "-q", "--output", str(out),
            check=True)
    data = json.loads(out.read_text())
    del data["provenance"]["machine"]
    data["provenance"]["libraries"] = ["numpy"]
    out.write_text(json.dumps(data))
    line = one_line_error(harness("record", str(out), "--results-dir", str(tmp_path / "results")))
    assert f"malformed results file {out}: provenance.machine is missing" in line
    assert "damaged" not in line and "the asv database was not changed" in line
    data["provenance"]["machine"] = "box"
    out.write_text(json.dumps(data))
    line = one_line_error(harness("record", str(out), "--results-dir", str(tmp_path / "results")))
    assert "provenance.libraries must map library names to version text or null" in line
    assert not (tmp_path / "results" / "benchmarks.json").exists()


HUGE_MESSAGE = """
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2
class Verbose(NumpyBackend):
    name = "verbose"
    def forward(self):
        raise RuntimeError("start " + "x" * 20_000_000 + " end")
@hookimpl
def harness_backends():
    return [Verbose]
"""


def test_a_20_mb_failure_reason_is_capped_with_a_note(plugin_dir, tmp_path):
    add_distribution(plugin_dir, "verbose", {"verbose_plugin": HUGE_MESSAGE}, {"verbose": "verbose_plugin"})
    out = tmp_path / "run.json"
    result = harness("run", str(write_suite(tmp_path / "s")), "--backends", "verbose", "--no-asv", "-q",
                     "--output", str(out))
    assert result.returncode == 1, result.stderr
    assert out.stat().st_size < 100_000
    (point,) = json.loads(out.read_text())["points"]
    reason = point["reason"]
    assert point["status"] == "failed" and len(reason) < 10_200
    assert reason.startswith("RuntimeError: start xxx") and "characters cut: the reason was" in reason
    assert reason.rstrip().endswith("xxx end")  # the traceback's last line, the exception, is kept


def test_cap_reason_keeps_short_reasons_and_both_ends_of_long_ones():
    from harness.run.executor import cap_reason

    assert cap_reason("short") == "short"
    capped = cap_reason("a" * 50 + "b" * 50, limit=20)
    assert capped.startswith("a" * 16) and capped.endswith("b" * 4) and "80 characters cut" in capped


UNPRINTABLE = """
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2

class Unprintable(Exception):
    def __str__(self):
        raise ValueError("no message for you")

class RaisesUnprintable(NumpyBackend):
    name = "raises-unprintable"
    def forward(self):
        raise Unprintable()

@hookimpl
def harness_backends():
    return [RaisesUnprintable]
"""


def test_a_backend_exception_whose_str_raises_still_fails_its_point_with_a_reason(plugin_dir, tmp_path):
    add_distribution(plugin_dir, "unprintable", {"unprintable_plugin": UNPRINTABLE},
                     {"unprintable": "unprintable_plugin"})
    out = tmp_path / "run.json"
    result = harness("run", str(write_suite(tmp_path / "s")), "--backends", "raises-unprintable", "--no-asv", "-q",
                     "--output", str(out))
    assert result.returncode == 1, result.stderr
    reasons = {p["reason"].splitlines()[0] for p in json.loads(out.read_text())["points"]}
    assert reasons == {"Unprintable: <the message of this Unprintable could not be shown: its __str__ raised "
                       "ValueError>"}


def test_report_on_json_nested_too_deeply_is_one_line(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    line = one_line_error(harness("report", str(tmp_path / "deep.json")))
    assert "nested too deeply" in line


def test_preview_on_a_port_in_use_is_one_line(tmp_path):
    import socket

    (tmp_path / "results" / "html").mkdir(parents=True)
    (tmp_path / "results" / "html" / "index.html").write_text("<html></html>")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(harness("preview", "--results-dir", str(tmp_path / "results"), "--port", str(port)))
    assert line == (f"harness: error: cannot serve on 127.0.0.1:{port}: Address already in use; choose another "
                    f"port with --port")


def test_an_os_error_anywhere_is_one_line_with_exit_2(monkeypatch, capsys):
    """A full disk or a read-only folder met by any command (here: record, faked) is one line, not a traceback."""
    import errno

    from harness import cli

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/results/vm/machine.json")

    monkeypatch.setattr(cli, "cmd_record", full)
    assert cli.main(["record", "x.json"]) == 2
    assert capsys.readouterr().err == "harness: error: No space left on device: /results/vm/machine.json\n"


def test_publish_of_a_damaged_database_or_outside_the_repository_is_one_line(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "benchmarks.json").write_text("[1, 2]")
    line = one_line_error(harness("publish", "--results-dir", str(damaged)))  # from the checkout
    assert line == f"harness: error: asv cannot publish {damaged}: No version specified in {damaged}/benchmarks.json."
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "benchmarks.json").write_text('{"version": 2}')
    line = one_line_error(harness("publish", "--results-dir", str(elsewhere), cwd=tmp_path))  # no git repository
    assert line.startswith("harness: error: asv publish needs the project's git repository ('.' from here)")


def test_report_on_a_results_file_without_its_provenance_is_one_line(tmp_path):
    from harness import suites
    from harness.record import files
    from harness.record.results import RunResults
    from tests.support.runs import PROVENANCE, synthetic_point

    run = RunResults(suite=suites.load(write_suite(tmp_path / "s")), started_at="2026-11-26T08:00:00+00:00",
                     provenance={k: v for k, v in PROVENANCE.items() if k != "git"},
                     points=[synthetic_point("a", 10, 1.0)], status="complete")
    files.write(tmp_path / "run.json", run)
    line = one_line_error(harness("report", str(tmp_path / "run.json")))
    assert line == f"harness: error: not a harness results file: {tmp_path / 'run.json'}: provenance.git is missing"


def test_a_disk_that_fills_up_during_a_run_is_one_line_and_the_file_keeps_what_was_written(tmp_path, monkeypatch):
    import errno

    from harness import suites
    from harness.errors import HarnessError
    from harness.record import files
    from harness.run.runner import run_suite

    real, calls = files.write, []

    def fills_up(path, data):
        calls.append(len(data.points))
        if len(calls) > 2:  # the first two points fit, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(files, "write", fills_up)
    suite = suites.load(write_suite(tmp_path / "s", seq_lens="[12, 16, 20]", metrics='["time"]'))
    out = tmp_path / "run.json"
    with pytest.raises(HarnessError) as raised:
        run_suite(suite, ["numpy"], output=out)
    assert str(raised.value) == (f"cannot write the results file {out}: No space left on device; it keeps the 2 "
                                 f"point(s) written before")
    kept = json.loads(out.read_text())
    assert kept["status"] == "running" and len(kept["points"]) == 2


@pytest.mark.skipif(not read_only_mounts(), reason="needs unshare and mount (root with CAP_SYS_ADMIN) for a "
                                                    "read-only file system")
def test_a_read_only_results_folder_is_one_line_for_every_command_and_changes_nothing(tmp_path):
    """record, publish, report and run (into the folder, or --output into it) on a read-only file system:
    one line naming the path and exit 2, with everything already written kept as it was."""
    repo = make_repo(tmp_path / "proj")
    grid = ("tiny", "--backends", "numpy", "--cells", "rnn_tanh", "--seq-lens", "12", "-q")
    harness("run", *grid, cwd=repo, check=True)
    run_file = next((repo / "results" / "runs").glob("*.json"))
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    kept = {p: p.read_bytes() for p in (repo / "results").rglob("*") if p.is_file()}
    for folder, args in [
        (repo / "results", ("record", str(run_file))),
        (repo / "results", ("publish",)),
        (read_only, ("report", str(run_file), "--out", str(read_only / "report"))),
        (repo / "results", ("run", *grid)),
        (read_only, ("run", *grid, "--no-asv", "--output", str(read_only / "run.json"))),
    ]:
        line = one_line_error(harness_read_only(folder, *args, cwd=repo))
        assert line.startswith("harness: error: ") and "Read-only file system" in line and folder.name in line, \
            (args, line)
    assert {p: p.read_bytes() for p in (repo / "results").rglob("*") if p.is_file()} == kept
    assert list(read_only.iterdir()) == []
