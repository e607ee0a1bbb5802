"""Recording into asv's results database, publishing, comparing; asv's internal API contract."""
from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import inspect
import json
import math
import re
from pathlib import Path

import pytest

from harness.record import asvdb
from tests.support.asv_project import commit_change, git, make_repo
from tests.support.cli import harness as run_harness
from tests.support.cli import section_rows
from tests.support.runs import record_synthetic, synthetic_point


def harness(repo: Path, *args: str, check: bool = True):
    return run_harness(*args, cwd=repo, check=check)


@pytest.fixture
def project(published_project):
    """Two history points (two commits), published (one project for the session: conftest.py)."""
    return published_project


def test_rerecording_a_commit_keeps_the_other_points_samples_and_statistics(tmp_path):
    (written,), _ = record_synthetic(tmp_path, "same", [synthetic_point("a", 10, 1.0), synthetic_point("a", 20, 2.0)])
    record_synthetic(tmp_path, "same", [synthetic_point("a", 20, 3.0)])  # only T=20 again
    data = json.loads(written.read_text())
    names = data["result_columns"]
    entry = dict(zip(names, data["results"]["tiny.time_forward_backward"]))
    assert entry["params"] == [["'a'"], ["'lstm'"], ["10", "20"], ["4"], ["2"], ["'default'"]]
    assert entry["result"] == [pytest.approx(1.0), pytest.approx(3.0)]
    first, second = synthetic_point("a", 10, 1.0), synthetic_point("a", 20, 3.0)
    assert entry["samples"][0] == pytest.approx(list(first.time.forward_backward.samples))  # kept from run 1
    assert entry["samples"][1] == pytest.approx(list(second.time.forward_backward.samples))
    assert entry["stats_q_25"][0] is not None and entry["stats_q_25"][1] is not None


def test_horizon_shortfall_counts_every_step_the_layer_ran():
    """For the copy task the layer runs T + 20 steps: the shortfall is steps - horizon in both cases."""
    copy_point = synthetic_point("a", 100, 1.0, horizon=30, steps=120)
    assert asvdb.horizon_shortfall(copy_point) == 90
    overflowed = synthetic_point("a", 100, 1.0, horizon=None, steps=120)
    assert asvdb.horizon_shortfall(overflowed) == 120


def test_a_growing_profile_falls_short_by_its_growth_horizon_not_zero():
    """A growing profile passes 1e-6 g_T at every lag (horizon = steps); its shortfall counts the lags
    beyond the growth horizon, so an exploding cell never reads as the ideal 0."""
    point = synthetic_point("a", 100, 1.0, horizon=100, steps=100)
    grows = dataclasses.replace(point, gradient=dataclasses.replace(point.gradient, growth_horizon=35))
    assert asvdb.horizon_shortfall(point) == 0 and asvdb.horizon_shortfall(grows) == 66  # reach 34


def test_a_point_missing_a_measured_family_fails_loudly(tmp_path):
    broken = dataclasses.replace(synthetic_point("a", 10, 1.0), memory=None)  # the suite measured memory
    with pytest.raises(AttributeError, match="peak_bytes"):
        record_synthetic(tmp_path, "broken", [broken])


def test_an_interrupted_run_records_the_timings_of_a_point_whose_profile_never_ran(tmp_path):
    """Interrupted between a point's timings and its gradient profile and memory peak (runner._profile):
    the timings are recorded, the memory peak and the gradient metrics are NaN."""
    timed_only = dataclasses.replace(synthetic_point("a", 10, 1.0), memory=None, gradient=None)
    (path,), _ = record_synthetic(tmp_path, "stopped", [timed_only], status="interrupted")
    stored = json.loads(path.read_text())["results"]
    first = {name: entry[0][0] for name, entry in stored.items() if entry and entry[0]}  # result column, point 1
    assert first["tiny.time_forward_backward"] == pytest.approx(1.0)
    assert math.isnan(first["tiny.peak_memory"]) and math.isnan(first["tiny.grad_abs_decay_rate"])


def _graph(repo: Path, name: str) -> list:
    paths = [p for p in (repo / "results/html/graphs").rglob(f"{name}.json") if "summary" not in p.parts]
    assert len(paths) == 1, paths
    return json.loads(paths[0].read_text())


def test_two_commits_give_two_points_in_the_published_history(project):
    repo, first, second = project
    index = json.loads((repo / "results/html/index.json").read_text())
    bench = index["benchmarks"]["tiny.time_forward_backward"]
    assert bench["params"] == [["'numpy'"], ["'rnn_tanh'", "'gru'"], ["12", "16"], ["4"], ["2"], ["'default'"]]
    assert bench["param_names"] == ["backend", "cell", "seq_len", "hidden", "batch", "init"]
    assert set(index["revision_to_hash"].values()) == {first, second}
    points = _graph(repo, "tiny.time_forward_backward")
    assert len(points) == 2
    for _, values in points:
        assert len(values) == 4 and all(v > 0 for v in values)
    assert index["params"]["machine"] and "numpy" in index["params"] and "python" in index["params"]
    assert {"tiny.peak_memory", "tiny.grad_abs_decay_rate", "tiny.grad_horizon_shortfall"} <= set(index["benchmarks"])
    assert index["benchmarks"]["tiny.peak_memory"]["unit"] == "bytes"
    # the machine probe and the timings in its units, history points like the timings in seconds
    assert index["benchmarks"]["tiny.time_forward_backward_vs_probe"]["unit"] == "probes"
    for name in ("tiny.machine_probe", "tiny.time_forward_vs_probe", "tiny.time_forward_backward_vs_probe"):
        assert all(len(values) == 4 and all(v > 0 for v in values) for _, values in _graph(repo, name))


def test_harness_pages_are_linked_from_the_asv_index(project):
    repo, first, second = project
    html = repo / "results/html"
    assert "harness/index.html" in (html / "index.html").read_text()
    index = (html / "harness/index.html").read_text()  # every run listed, newest first; the newest's page linked
    every = index[index.index('id="every-run"'):]
    assert every.index(second[:8]) < every.index(first[:8]) and every.count("<tr><td>") == 2
    assert every.count('href="tiny/index.html"') == 1
    assert every.count("<td>4</td><td>0</td><td>0</td>") == 2  # 4 points ok in each run (2 cells x 2 T)
    suite_page = (html / "harness/tiny/index.html").read_text()
    for stem in ("gradient_rnn_tanh", "gradient_gru", "decay_rate", "time", "memory"):
        assert (html / "harness/tiny" / f"{stem}.png").stat().st_size > 0
        assert (html / "harness/tiny" / f"{stem}.svg").is_file()
        assert f"{stem}.png" in suite_page


def test_rerun_at_the_same_commit_merges(tmp_path):
    repo = make_repo(tmp_path / "proj")
    harness(repo, "run", "tiny", "--backends", "numpy", "--cells", "rnn_tanh", "-q")
    harness(repo, "run", "tiny", "--backends", "numpy", "--cells", "gru", "--seq-lens", "16", "-q")
    machine_dir = next((repo / "results").glob("*/machine.json")).parent
    files = [p for p in machine_dir.glob("*.json") if p.name != "machine.json"]
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    values = data["results"]["tiny.time_forward"][0]
    params = data["results"]["tiny.time_forward"][1]
    assert params == [["'numpy'"], ["'rnn_tanh'", "'gru'"], ["12", "16"], ["4"], ["2"], ["'default'"]]
    # rnn_tanh 12, rnn_tanh 16 from the first run; gru 12 never ran (NaN); gru 16 from the second
    assert values[0] > 0 and values[1] > 0 and values[3] > 0
    assert values[2] is None or math.isnan(values[2])


def test_dirty_tree_is_recorded_under_a_label_outside_the_history(tmp_path):
    repo = make_repo(tmp_path / "proj")
    harness(repo, "run", "tiny", "--backends", "numpy", "--cells", "rnn_tanh", "-q")  # a history point
    (repo / "asv.conf.json").write_text((repo / "asv.conf.json").read_text() + "\n")  # uncommitted change
    out = harness(repo, "run", "tiny", "--backends", "numpy", "--cells", "rnn_tanh", "-q").stdout
    commit = git(repo, "rev-parse", "HEAD")
    assert f"under label 'dirty-{commit[:8]}'" in out
    assert list((repo / "results/labels" / f"dirty-{commit[:8]}").rglob("*.json"))
    machine = next((repo / "results").glob("*/machine.json")).parent
    assert len([p for p in machine.glob("*.json") if p.name != "machine.json"]) == 1  # no dirty history point
    harness(repo, "publish")
    result = harness(repo, "compare", commit[:8], f"dirty-{commit[:8]}", "--all", check=False)
    assert result.returncode in (0, 1), result.stderr  # 1: real timings of two runs may differ significantly
    rows = section_rows(result.stdout, "tiny.time_forward")
    assert sorted(row[-4] for row in rows) == ["12", "16"]  # both points (T, then H, B, init), with a ratio each
    assert all(float(row[-7].lstrip("~")) > 0 for row in rows)


def test_compare_between_commits_prints_ratios(project):
    """The table shows each value with its unit and spread as asv does (1.23±0.01ms); the ratios are
    after / before of the stored values (read exactly from --format json)."""
    repo, first, second = project
    result = harness(repo, "compare", first[:8], second[:8], "--all", check=False)
    assert result.returncode in (0, 1), result.stderr
    rows = section_rows(result.stdout, "tiny.time_forward_backward")
    assert len(rows) == 4
    for fields in rows:  # [mark], before, after, ratio, machine, judged, backend, cell, T, H, B, init
        before, after = fields[-11], fields[-10]
        assert re.fullmatch(r"[\d.]+±[\d.]+(ns|μs|us|ms|s)", before) and re.fullmatch(r"[\d.]+±[\d.]+\w+", after)
        machine, judged = float(fields[-8]), float(fields[-7].lstrip("~"))  # the probe's ratio; the one marked
        assert float(fields[-9]) > 0 and machine > 0 and judged > 0
        assert fields[-6] == "numpy" and fields[-5] in ("rnn_tanh", "gru") and fields[-4] in ("12", "16")
        assert fields[-3:] == ["4", "2", "default"]
    records = json.loads(harness(repo, "compare", first[:8], second[:8], "--all", "--format", "json",
                                 check=False).stdout)
    timing = [r for r in records if r["benchmark"] == "tiny.time_forward_backward"]
    assert len(timing) == 4 and all(r["unit"] == "seconds" and r["before_spread"] is not None for r in timing)
    for r in timing:
        assert r["ratio"] == pytest.approx(r["after"] / r["before"], rel=1e-12)
    assert (result.returncode == 1) == ("significant regression" in result.stderr)


def test_compare_with_an_unknown_commit_lists_the_known_ones(project):
    repo, first, second = project
    result = harness(repo, "compare", first[:8], "deadbeef", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown commit, git ref or label 'deadbeef'" in result.stderr
    assert first[:8] in result.stderr and second[:8] in result.stderr


def test_publish_without_results_says_so(tmp_path):
    result = harness(tmp_path, "publish", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "harness: error: no results to publish in results: run `harness run SUITE` first"]


def test_report_draws_one_results_file_without_asv(project, tmp_path):
    repo, *_ = project
    run_file = sorted((repo / "results/runs").glob("tiny-*.json"))[0]
    out = harness(repo, "report", str(run_file), "--out", str(tmp_path / "rep")).stdout
    assert "index.html" in out
    assert (tmp_path / "rep/gradient_gru.png").stat().st_size > 0


#: Every name harness.record.asvapi imports from asv: the test below checks each against the installed asv.
ASV_NAMES_USED = {
    ("asv.benchmarks", "Benchmarks"), ("asv.commands.compare", "_is_result_better"),
    ("asv.commands.publish", "Publish"), ("asv.config", "Config"), ("asv.console", "log"),
    ("asv.results", "Results"), ("asv.results", "get_filename"), ("asv.runner", "BenchmarkResult"),
    ("asv.util", "ProcessError"), ("asv.util", "UserError"), ("asv.util", "human_value"),
}


def _asv_imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) of every import from asv in a file, at any depth (asvapi imports inside functions);
    ``import asv.x`` counts as (``asv.x``, "")."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "asv":
            found |= {(node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "asv"}
    return found


def test_asv_is_imported_by_the_adapter_only():
    """harness.record.asvapi is the one module that imports asv (lint-imports' "asv-behind-one-module"
    says the same in CI), so the contract test below guards every use of asv."""
    root = Path(__file__).resolve().parent.parent
    sources = [*root.glob("harness/**/*.py"), *root.glob("harness_plugins/**/*.py")]
    importers = sorted(str(path.relative_to(root)) for path in sources if _asv_imports(path))
    assert importers == ["harness/record/asvapi.py"]


def test_asv_internal_api_is_what_the_recorder_uses(tmp_path):
    """Fails loudly when a new asv changes what harness.record.asvapi relies on: every asv name it imports
    exists, with the signature, fields or attributes the adapter uses."""
    import logging

    import asv
    from asv.benchmarks import Benchmarks
    from asv.commands.compare import _is_result_better
    from asv.commands.publish import Publish
    from asv.config import Config
    from asv.console import log
    from asv.results import Results, get_filename
    from asv.runner import BenchmarkResult
    from asv.util import ProcessError, UserError

    from harness.record import asvapi

    assert asv.__version__.startswith(asvapi.ASV_SERIES)
    # a name the adapter starts to use is added to ASV_NAMES_USED, and checked below
    assert _asv_imports(Path(asvapi.__file__)) == ASV_NAMES_USED
    params = lambda f: list(inspect.signature(f).parameters)  # noqa: E731

    # configuration: Config.load(path), Config.from_json(settings), and the attributes the harness reads
    assert params(Config.load) == ["path"] and params(Config.from_json) == ["d"]
    conf = asvapi.config_from_dict({"version": 1, "project": "p", "repo": ".", "dvcs": "git", "branches": ["main"],
                                    "results_dir": "r", "html_dir": "r/html"})
    assert (conf.results_dir, conf.html_dir, conf.repo) == ("r", "r/html", ".")
    # writing: Results(...), load_data, add_result(..., selected_idx), save, get_filename, Benchmarks(conf, [...])
    assert params(Results.__init__) == [
        "self", "params", "requirements", "commit_hash", "date", "python", "env_name", "env_vars"]
    assert {"benchmark", "result", "started_at", "record_samples", "selected_idx"} <= set(params(Results.add_result))
    assert BenchmarkResult._fields == ("result", "samples", "number", "errcode", "stderr", "profile")
    assert Results.api_version == 2 and Benchmarks.api_version == 2
    assert params(Results.load_data) == params(Results.save) == ["self", "result_dir"]
    assert get_filename("m", "0123456789abcdef", "env") == "m/01234567-env.json"
    assert params(Benchmarks.__init__)[:3] == ["self", "conf", "benchmarks"] and callable(Benchmarks.save)
    # reading: Results.load(path), its accessors, commit_hash, env_vars and benchmark_version
    assert params(Results.load)[0] == "path"
    assert params(Results.get_all_result_keys) == ["self"] and params(Results.get_result_params) == ["self", "key"]
    for method in ("get_result_value", "get_result_stats", "get_result_samples"):
        assert params(getattr(Results, method)) == ["self", "key", "params"]
    # compare: asv's own decision; publish: Publish.run(conf, pull=...), a quiet log, the errors it raises
    assert params(_is_result_better) == ["a", "b", "a_ss", "b_ss", "factor", "use_stats"]
    assert params(Publish.run)[0] == "conf" and "pull" in params(Publish.run)
    with log.set_level(logging.CRITICAL):
        pass
    assert issubclass(UserError, Exception) and ProcessError(["git"], 3, "", "").retcode == 3

    # and the adapter round-trips a benchmark through asv's own files
    bench = {"name": "s.m", "type": "track", "unit": "u", "params": [["'a'", "'b'"]], "param_names": ["x"],
             "version": "1", "code": "", "timeout": 60}
    results = asvapi.new_results({"machine": "m"}, {}, "0123456789abcdef", 1, "3.11", "env", {"K": "1"})
    asvapi.load_existing(results, tmp_path)  # nothing there yet
    asvapi.add_benchmark_result(results, bench, [1.5, None], [[1.0, 2.0], None], [3, None],
                                started_at=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), selected_idx={0, 1})
    asvapi.save_results(results, tmp_path)
    asvapi.save_benchmarks(conf, [bench], tmp_path)
    assert conf.results_dir == "r" and (tmp_path / "benchmarks.json").is_file()
    read = asvapi.read_results(tmp_path / asvapi.results_filename("m", "0123456789abcdef", "env"))
    assert asvapi.commit_of(read) == "0123456789abcdef" and asvapi.env_vars_of(read) == {"K": "1"}
    (stored,) = asvapi.stored_benchmarks(read)
    assert (stored.name, stored.params, stored.values, stored.version) == ("s.m", [["'a'", "'b'"]], [1.5, None], "1")
    assert stored.samples == [[1.0, 2.0], None] and stored.stats[0]["repeat"] == 2  # asv computed the statistics


def test_results_dir_comes_from_asv_conf_json(tmp_path):
    repo = make_repo(tmp_path / "proj")
    conf = json.loads("\n".join(line for line in (repo / "asv.conf.json").read_text().splitlines()
                                if not line.strip().startswith("//")))
    conf.update(results_dir="db", html_dir="db/html")
    (repo / "asv.conf.json").write_text(json.dumps(conf))
    git(repo, "commit", "-q", "-am", "results in db/")
    harness(repo, "run", "tiny", "--backends", "numpy", "--cells", "rnn_tanh", "-q")
    assert (repo / "db/benchmarks.json").is_file() and list((repo / "db/runs").glob("tiny-*.json"))
    assert not (repo / "results").exists()


def test_the_probes_version_starts_new_series_for_what_is_measured_in_its_units(tmp_path):
    """A new probe workload (PROBE_VERSION) changes the versions of the metrics in its units and of
    no other metric: the seconds keep their history."""
    from harness import suites
    from tests.support.suites import write_suite

    suite = suites.load(write_suite(tmp_path / "suite"))
    versions = {}
    for definition in ("probe 1", "probe 2"):
        for m in asvdb.METRICS:
            m = dataclasses.replace(m, definition=definition) if m.definition else m
            versions.setdefault(m.name, set()).add(asvdb.benchmark_version(suite, m))
    changed = {name for name, v in versions.items() if len(v) == 2}
    assert changed == {"machine_probe", "time_forward_vs_probe", "time_forward_backward_vs_probe"}


def test_machine_fields_are_escaped_for_asv_and_ordinary_ones_unchanged():
    from tests.support.runs import PROVENANCE

    ordinary = {**PROVENANCE, "cpu": "Intel(R) Xeon(R) Platinum 8480+ @ 2.0GHz", "gpu": "NVIDIA H100 80GB HBM3"}
    info = asvdb.asv_machine(ordinary)
    assert info["cpu"] == ordinary["cpu"] and info["gpu"] == ordinary["gpu"] and info["os"] == "Linux"
    hostile = asvdb.asv_machine({**PROVENANCE, "os": "<img src=x onerror=alert(1)>", "gpu": "a & 'b'"})
    assert hostile["os"] == "&lt;img src=x onerror=alert(1)&gt;" and hostile["gpu"] == "a &amp; &#x27;b&#x27;"
    # a PEP 440 local version (torch's +cpu) is a safe part of the environment's file name
    name = asvdb.env_name({**PROVENANCE, "libraries": {"numpy": "2.0", "torch": "2.3.0+cpu"}})
    assert name == "harness-py3.11-numpy2.0-torch2.3.0+cpu-threads1"
    asvdb.check_provenance(PROVENANCE)
    with pytest.raises(asvdb.MalformedRun, match="invalid torch version '../x'"):
        asvdb.check_provenance({**PROVENANCE, "libraries": {"torch": "../x"}})


def test_history_follows_the_repository_branch_and_says_when_a_commit_is_off_it(tmp_path):
    """A repository whose branch is master (asv.conf.json names main) records history points of
    master and publishes their graphs, where asv used to end in a traceback; a commit on a feature
    branch is reported as outside the followed branches, never as a history point (issue 30)."""
    grid = ("tiny", "--backends", "numpy", "--cells", "rnn_tanh", "--seq-lens", "12", "-q")
    master = make_repo(tmp_path / "master", branch="master")
    ran = harness(master, "run", *grid, check=True)
    assert "recorded into asv as a history point of master:" in ran.stdout
    published = harness(master, "publish", check=False)
    assert published.returncode == 0 and "Traceback" not in published.stderr, published.stderr
    assert len(_graph(master, "tiny.time_forward_backward")) == 1  # the commit is drawn, on branch-master

    repo = make_repo(tmp_path / "main")
    git(repo, "checkout", "-q", "-b", "feature")
    commit = commit_change(repo, "feature work")
    ran = harness(repo, "run", *grid, check=True)
    assert (f"recorded into asv for commit {commit[:8]}, which is on none of the branches the history graphs "
            f"follow (main), so no graph shows it") in ran.stdout


def test_compare_takes_git_refs_a_metric_filter_and_machine_readable_formats(project):
    """HEAD~1 and main are the two commits; --metrics time keeps the timing benchmarks only; json is one
    record per point and markdown a table; an unknown family is a one-line error (issue 30)."""
    repo, first, second = project
    by_ref = json.loads(harness(repo, "compare", "HEAD~1", "main", "--all", "--format", "json", check=False).stdout)
    by_hash = json.loads(harness(repo, "compare", first[:8], second[:8], "--all", "--format", "json",
                                 check=False).stdout)
    assert [r["benchmark"] for r in by_ref] == [r["benchmark"] for r in by_hash] and by_ref
    assert {r["family"] for r in by_ref} >= {"time", "memory", "gradient"}
    timings = json.loads(harness(repo, "compare", "HEAD~1", "HEAD", "--all", "--metrics", "time", "--format",
                                 "json", check=False).stdout)
    assert timings and {r["family"] for r in timings} == {"time"}
    table = harness(repo, "compare", "HEAD~1", "HEAD", "--all", "--format", "markdown", check=False).stdout
    assert table.splitlines()[0] == "|  | benchmark | point | before | after | ratio | judged |"
    bad = harness(repo, "compare", "HEAD~1", "HEAD", "--metrics", "speed", check=False)
    assert bad.returncode == 2 and "unknown --metrics family 'speed'" in bad.stderr and "time" in bad.stderr
