"""Results files and suite files are shared between people: names in them are text, never markup,
and never a path out of the results directory."""
from __future__ import annotations

import json

import pytest

from harness import HarnessError, suites
from harness.record import files, results
from harness.report import plots
from tests.support.cli import harness, one_line_error
from tests.support.runs import synthetic_point
from tests.support.suites import write_suite

SCRIPT = "q'\"><img src=x onerror=alert(1)>"


def test_names_in_a_results_file_are_escaped_in_every_page(tmp_path):
    from harness.record.results import RunResults

    suite = suites.load(write_suite(tmp_path / "s"))
    point = synthetic_point(SCRIPT, 10, 1.0)
    run = RunResults(suite=suite, started_at="now", provenance={"threads": 1, "cpu": SCRIPT, "git": {"commit": None}},
                     points=[point])
    page = plots.report(run, tmp_path / "out", title=f"run of {SCRIPT}").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize("name", ["../../escaped", "/abs/path", "feature/x", "", ".hidden", "a b"])
def test_a_name_that_would_become_an_unsafe_path_is_refused(tmp_path, name):
    folder = write_suite(tmp_path / "s", name=json.dumps(name))
    with pytest.raises(HarnessError, match="invalid suite name"):
        suites.load(folder)


@pytest.mark.parametrize("field, value, message", [
    ("name", "/etc/evil", "invalid suite name '/etc/evil'"),
    ("cell", SCRIPT, "invalid cell"),  # any safe name: a cell plugin need not be installed to read its results
])
def test_a_results_file_with_an_unsafe_name_is_not_a_results_file(tmp_path, field, value, message):
    folder = write_suite(tmp_path / "s")
    out = tmp_path / "run.json"
    harness("run", str(folder), "--backends", "numpy", "--no-asv", "-q", "--output", str(out), check=True)
    data = json.loads(out.read_text())
    if field == "name":
        data["suite"]["name"] = value
    else:
        data["points"][0]["cell"] = value
    out.write_text(json.dumps(data))
    with pytest.raises(results.ResultsFormatError, match=message):
        files.read(out)
    line = one_line_error(harness("report", str(out)))
    assert "not a harness results file" in line


@pytest.mark.parametrize("label", ["../../x", "/abs", "feature/x"])
def test_an_unsafe_label_is_refused_before_anything_runs(tmp_path, label):
    line = one_line_error(harness("run", str(write_suite(tmp_path / "s")), "--backends", "numpy", "--label", label,
                                  "--results-dir", str(tmp_path / "results")))
    assert f"invalid label {label!r}" in line
    assert not (tmp_path / "results").exists()
