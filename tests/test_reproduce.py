"""Reproduction presets (suites/reproduce/, `harness reproduce`): the [reproduce] table, the verdict rules,
and the command end to end on a tiny preset."""
from __future__ import annotations

import dataclasses
import json

import pytest

from harness import HarnessError, suites
from harness.record import reproduction
from harness.record.results import OK, PointResult, RunResults, Training
from harness.suites import Expectation, Reproduction
from tests.support.cli import harness
from tests.support.suites import write_suite

PRESET = '''
[reproduce]
paper = "A & B 2020, figure 1"
protocol = "their protocol"
differences = "ours"
paper_iterations = 1000

[[reproduce.expect]]
cell = "gru"
outcome = "solved"
published = "solves it"

[[reproduce.expect]]
cell = "rnn_tanh"
outcome = "not below baseline"
published = "stays at the baseline"
'''


def _preset(tmp_path, extra: str = PRESET, **overrides):
    folder = write_suite(tmp_path / "reproduce" / "tiny", cells='["rnn_tanh", "gru"]', **overrides)
    text = (folder / "suite.toml").read_text()
    train = ("\n[train]\nseq_lens = [12]\niterations = 20\nbatch = 4\neval_every = 10\neval_size = 16\n"
             "profile_every = 20\nbackends = [\"numpy\"]\n")
    (folder / "suite.toml").write_text(text + train + extra)
    return folder


def test_every_shipped_preset_loads_and_names_its_paper_and_expectations():
    presets = suites.reproductions()
    assert {"arjovsky_adding", "arjovsky_copy", "le_irnn_adding", "pascanu_temporal_order",
            "tallec_chrono_copy"} <= set(presets)
    for folder in presets.values():
        suite = suites.load(folder)
        assert suite.reproduce is not None and suite.reproduce.expect and suite.reproduce.paper
        assert {e.cell for e in suite.reproduce.expect} <= set(suite.cells)


@pytest.mark.parametrize("extra, message", [
    ('\n[reproduce]\npaper = "x"\n', "[reproduce] needs protocol, differences, expect"),
    (PRESET.replace('outcome = "solved"', 'outcome = "learns"'), "unknown expected outcome 'learns'; outcomes: solved"),
    (PRESET.replace('cell = "gru"', 'cell = "lstm"'), "unknown expected cell 'lstm'; the suite's cells: rnn_tanh, gru"),
])
def test_a_bad_reproduce_table_is_a_one_line_error(tmp_path, extra, message):
    with pytest.raises(HarnessError, match=message.replace("[", r"\[").replace("]", r"\]")):
        suites.load(_preset(tmp_path, extra))


def _run(expect: Expectation, ratios: list[float], solved: list[int | None], iterations: int = 100,
         paper: int | None = 1000) -> RunResults:
    preset = Reproduction("P", "p", "d", (expect,), paper_iterations=paper)
    suite = dataclasses.replace(suites.Suite("s", "adding", ("gru",), (50,)), reproduce=preset)
    points = []
    for seed, (ratio, at) in enumerate(zip(ratios, solved)):
        training = Training(iterations=iterations, planned_iterations=iterations, baseline=1.0, train_loss=(),
                            grad_norm=(), clipped=(), eval_iterations=(0, iterations), eval_loss=(1.0, ratio),
                            eval_accuracy=None, snapshots=(), solved_at=at)
        points.append(PointResult("numpy", "gru", 50, "float32", OK, hidden=8, batch=4, init="default", seed=seed,
                                  clip=1.0, training=training, steps=50))
    return RunResults(suite=suite, provenance={}, points=points, mode="train", started_at="2026-12-07T00:00:00")


@pytest.mark.parametrize("expected, ratios, solved, iterations, paper, measured, verdict", [
    ("solved", [0.01, 0.02, 0.9], [40, 60, None], 100, 1000, "solved", "reproduced"),  # 2 of 3 solved
    ("solved", [0.9, 0.9, 0.02], [None, None, 60], 100, 1000, "not solved", "budget-limited"),  # fewer iterations
    ("solved", [0.9, 0.9, 0.02], [None, None, 60], 1000, 1000, "not solved", "not reproduced"),  # the paper's budget
    # a negative result at fewer iterations than the paper's
    ("not below baseline", [0.9, 0.95, 0.97], [None] * 3, 100, 1000, "not below baseline", "budget-limited"),
    ("not below baseline", [0.9, 0.95, 0.97], [None] * 3, 1000, 1000, "not below baseline", "reproduced"),
    ("not below baseline", [0.1, 0.2, 0.9], [None] * 3, 100, 1000, "below baseline", "not reproduced"),
    ("below baseline", [0.4, 0.5, 0.9], [None] * 3, 100, None, "below baseline", "reproduced"),  # median 0.5
    # the paper's budget unstated
    ("below baseline", [0.6, 0.5, 0.9], [None] * 3, 5000, None, "not below baseline", "budget-limited"),
])
def test_verdicts(expected, ratios, solved, iterations, paper, measured, verdict):
    (v,) = reproduction.verdicts(_run(Expectation("gru", expected, "the paper"), ratios, solved, iterations, paper))
    assert (v.measured, v.verdict, v.seeds) == (measured, verdict, (0, 1, 2))


def test_harness_reproduce_trains_the_preset_and_judges_it_and_judges_a_file_again(tmp_path, monkeypatch):
    _preset(tmp_path)
    monkeypatch.setenv("HARNESS_SUITES_PATH", str(tmp_path))
    out = tmp_path / "run.json"
    shown = harness("reproduce", "tiny", "--seeds", "0,1", "--no-asv", "-q", "--output", str(out), check=True).stdout
    assert "verdicts against A & B 2020, figure 1" in shown and "budget-limited" in shown  # 20 of 1000 iterations
    run = json.loads(out.read_text())
    assert {p["backend"] for p in run["points"]} == {"numpy"}  # the preset's backend
    again = harness("reproduce", "tiny", "--from", str(out), "--format", "json", check=True).stdout
    rows = json.loads(again)["verdicts against A & B 2020, figure 1"]
    assert [(r["cell"], r["paper reports"], r["verdict"]) for r in rows] == [
        ("gru", "solved", "budget-limited"), ("rnn_tanh", "not below baseline", "budget-limited")]
    assert "unknown preset 'nope'; presets: arjovsky_adding, " in harness("reproduce", "nope").stderr
