"""The typed record: a strict JSON round trip, and schema drift that fails loudly."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from harness import suites
from harness.measure.timing import Measurement
from harness.record import codec, dataframe, files
from harness.record.results import (FAILED, OK, SKIPPED, GradientProfile, LossAtInit, Memory, PointResult,
                                    ResultsFormatError, RunResults, Times)
from tests.support.suites import write_suite


@pytest.fixture
def run(tmp_path) -> RunResults:
    suite = suites.load(write_suite(tmp_path / "tiny", cells='["lstm"]'))
    times = Times(Measurement([0.002, 0.003, 0.004], 5), Measurement([0.01, 0.02, 0.03], 2))
    gradient = GradientProfile(decay_rate=0.3, log10_ratio=math.nan, horizon=None, exploded=True, first_nonfinite_lag=2,
                        vanished=False, g=(math.inf, math.nan, 1.0), gc=(0.5, 0.25, 1.0))
    ok = PointResult("numpy", "lstm", 12, "float64", OK, steps=12, loss=LossAtInit(1.39, 1.386), time=times,
                     memory=Memory(4096, "tracemalloc", 2048), gradient=gradient, duration_s=0.7, hidden=4, batch=2,
                     init="default")
    return RunResults(suite=suite, started_at="2026-11-26T07:00:00+00:00", provenance={"threads": 1, "x": math.inf},
                      points=[ok, PointResult("numba", "lstm", 12, "float64", FAILED, reason="boom\ntraceback",
                                              hidden=4, batch=2, init="default"),
                              PointResult("cuda", "lstm", 12, "float64", SKIPPED, hidden=4, batch=2, init="default")])


def test_a_file_from_before_the_size_axes_reads_with_the_suites_sizes(run, tmp_path):
    path = tmp_path / "run.json"
    files.write(path, run)
    data = json.loads(path.read_text())
    data["schema"] = 2  # as the previous version wrote it
    for point in data["points"]:
        del point["hidden"], point["batch"]
    path.write_text(json.dumps(data))
    assert {(p.hidden, p.batch) for p in files.read(path).points} == {(run.suite.hidden, run.suite.batch)}


def test_a_file_from_before_the_init_axis_reads_with_its_one_init(run, tmp_path):
    """Its suite had init and init_gain, its points no init, its training snapshots W_hh's spectra
    beside the gradient rather than in it."""
    path = tmp_path / "run.json"
    files.write(path, run)
    data = json.loads(path.read_text())
    data["schema"] = 2  # as the previous version wrote it
    data["suite"]["init"], data["suite"]["init_gain"] = "orthogonal", 1.5
    for point in data["points"]:
        del point["init"]
    spectra = [{"gate": "i", "spectral_radius": 0.5, "sigma_max": 0.6}]
    data["points"][0]["training"] = {"iterations": 0, "budget": 1, "baseline": 1.0, "train_loss": [],
                                     "grad_norm": [], "clipped": [], "eval_iterations": [0], "eval_loss": [1.0],
                                     "eval_accuracy": None,
                                     "snapshots": [{"iteration": 0, "gradient": data["points"][0]["gradient"],
                                                    "spectra": spectra}]}
    path.write_text(json.dumps(data))
    back = files.read(path)
    assert back.suite.init == "orthogonal=1.5" and {p.init for p in back.points} == {"orthogonal=1.5"}
    assert back.points[0].training.snapshots[0].gradient.sigma_max == 0.6
    assert back.points[0].training.planned_iterations == 1  # schema 2's Training.budget


def test_round_trip_is_exact_and_standard_json(run, tmp_path):
    path = tmp_path / "run.json"
    files.write(path, run)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = files.read(path)
    assert back.points[1:] == run.points[1:] and back.suite == run.suite
    g = back.points[0].gradient
    assert math.isinf(g.g[0]) and math.isnan(g.g[1]) and math.isnan(g.log10_ratio) and g.gc == (0.5, 0.25, 1.0)
    assert back.points[0].time == run.points[0].time and back.points[0].time.forward.median == 0.003
    assert back.provenance["x"] == math.inf and back.counts == {"ok": 1, "failed": 1, "skipped": 1, "interrupted": 0}


@pytest.mark.parametrize("drift, message", [
    (lambda d: d["points"][0]["memory"].pop("peak_bytes"), r"points\[0\]\.memory: missing key 'peak_bytes'"),
    (lambda d: d["points"][0].update(horizon=3), r"points\[0\]: unknown keys \['horizon'\]"),
    (lambda d: d["points"][0]["time"]["forward"].update(samples="fast"), r"forward\.samples: expected a list"),
    (lambda d: d["points"][0].update(seq_len="12"), r"points\[0\]\.seq_len: expected int, got '12'"),
    (lambda d: d.update(schema=1), r"results schema 1, this harness reads 2 to 3"),
    (lambda d: d.update(schema=4), r"results schema 4, this harness reads 2 to 3"),
    (lambda d: d["points"][0].update(status="fine"), r"points\[0\]\.status: 'fine' is not one of 'ok', 'failed'"),
])
def test_schema_drift_fails_loudly(run, drift, message):
    data = json.loads(json.dumps(codec.to_json(run)))
    drift(data)
    with pytest.raises(ResultsFormatError, match=message):
        codec.from_json(data)


FINDINGS = sorted(Path(__file__).parents[1].glob("docs/findings/**/*.json"))
#: two training files of the modern cells' first findings, kept when the findings were measured again
KEPT = sorted(Path(__file__).parent.glob("data/schema-2/*.json"))
SCHEMA_2 = [p for p in FINDINGS + KEPT if json.loads(p.read_text()).get("schema") == 2]


@pytest.mark.parametrize("path", SCHEMA_2, ids=lambda p: p.name)
def test_the_results_files_the_previous_version_wrote_still_read(path):
    """Results files of schema 2 (written before the versioned migrations): the findings' that are still
    of it, and two training files kept in tests/data/schema-2 (training records: the rename of budget)."""
    assert len(SCHEMA_2) >= 5 and len(KEPT) == 2
    run = files.read(path)
    assert run.points and all(p.hidden is not None and p.init is not None for p in run.points)
    assert all(p.training.planned_iterations >= p.training.iterations for p in run.points if p.training)


def test_a_file_that_is_not_json_is_a_format_error(tmp_path):
    (tmp_path / "x.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(ResultsFormatError, match="not JSON"):
        files.read(tmp_path / "x.json")


def test_notes_never_fail_on_an_empty_reason():
    assert PointResult("b", "lstm", 1, "float32", SKIPPED, reason="").note == "skipped"
    assert PointResult("b", "lstm", 1, "float32", FAILED, reason="first\nsecond").note == "first"


def test_the_dataframe_has_one_row_per_point(run):
    frame = dataframe.frame(run)
    assert list(frame["status"]) == ["ok", "failed", "skipped"]
    assert frame.loc[0, "peak_bytes"] == 4096 and frame.loc[0, "forward_backward_median_s"] == 0.02
    assert math.isnan(frame.loc[1, "peak_bytes"]) and frame.attrs["suite"] == "tiny"


def test_a_jobs_point_is_the_identity_of_every_record_made_for_it(tmp_path):
    """PointJob.point is built once per job; Point.record carries it into the record, and a record's
    point reads it back: the runner matches a job with its record by it (issue 26)."""
    from harness import suites
    from harness.run.grid import PointJob
    from tests.support.suites import write_suite

    suite = suites.load(write_suite(tmp_path / "s", hidden="[4, 8]", batch="[2, 3]"))
    run_job = PointJob("numpy", "lstm", 12, suite.at(8, 3, "default"), "time")
    assert run_job.point.record(OK).point == run_job.point == dataclasses.replace(run_job, mode="profile").point
    assert run_job.point.key == ("numpy", "lstm", 12, 8, 3, "default") and run_job.point.clip is None
    train_job = PointJob("numpy", "lstm", 12, suite, "train", seed=2)
    record = train_job.point.record(FAILED, reason="boom")
    assert (record.seed, record.clip, record.hidden, record.batch) == (2, suite.clip, suite.hidden, suite.batch)
    assert record.point != dataclasses.replace(train_job, seed=3).point  # seeds are points of their own


def test_a_gz_results_file_is_written_compressed_and_reads_back(run, tmp_path):
    path = tmp_path / "run.json.gz"
    files.write(path, run)
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip's magic number
    assert codec.to_json(files.read(path)) == codec.to_json(run)
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ResultsFormatError, match="not JSON"):
        files.read(tmp_path / "bad.json.gz")
