"""Random malformed suite files and results files, fed to run, report and publish: every outcome is an
exit status (0, 1 or 2) with a one-line error, never a traceback, and data already written stays as it was."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from harness.cli import main
from tests.support.runs import PROVENANCE, write_results_file

SUITE = """task = "temporal_order"
cells = ["rnn_tanh"]
seq_lens = [12]
batch = 2
hidden = 4
dtype = "float64"
seeds = [0]

[timing]
repeat = 1
timeout = 120

[train]
seq_lens = [12]
iterations = 5
eval_every = 5
profile_every = 5
eval_size = 4
batch = 2
"""
TOKENS = ["-1", "0", "nan", "inf", "1e400", '"x"', "[]", "[0]", "true", "{}", '"../../x"', "'", "[", "=", "\xff"]


def _mutate_text(text: str, rng: random.Random) -> str:
    kind = rng.randrange(5)
    i = rng.randrange(len(text))
    if kind == 0:
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text[:i] + rng.choice(TOKENS) + text[i:]
    if kind == 2:
        return text[:i]
    if kind == 3:
        lines = text.splitlines()
        j = rng.randrange(len(lines))
        key = lines[j].split("=")[0]
        lines[j] = f"{key}= {rng.choice(TOKENS)}" if "=" in lines[j] else lines[j] + rng.choice(TOKENS)
        return "\n".join(lines)
    lines = text.splitlines()
    j = rng.randrange(len(lines))
    return "\n".join(lines[: j + 1] + [lines[j]] + lines[j + 1 :])


def _mutate_json(data, rng: random.Random):
    """A copy of ``data`` with one random key dropped or one value replaced by junk, somewhere inside."""
    data = json.loads(json.dumps(data))
    node, path = data, []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return rng.choice([[1, 2, 3], {"schema": 1}, "junk", None])
    parent, key = path[-1]
    if isinstance(parent, dict) and rng.random() < 0.4:
        del parent[key]
    else:
        parent[key] = rng.choice([None, -1, "x", [], {}, "nan", 1e300, "../../escaped", "<script>"])
    return data


def _run_main(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as exit:  # argparse's own refusals (one line, exit 2)
        code = exit.code
    err = capsys.readouterr().err
    assert code in (0, 1, 2), (args, code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return code, err


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("seed", range(24))
def test_malformed_suite_files(tmp_path, capsys, seed):
    rng = random.Random(seed)
    folder = tmp_path / "fuzz"
    folder.mkdir()
    text = SUITE
    for _ in range(rng.randint(1, 3)):
        text = _mutate_text(text, rng)
    (folder / "suite.toml").write_text(text, encoding="utf-8", errors="surrogateescape")
    command = "train" if seed % 4 == 0 else "run"
    _run_main([command, str(folder), "--backends", "numpy", "-q", "--no-asv", "--results-dir", str(tmp_path / "r")],
              capsys)


@pytest.fixture
def published(published_project):
    """A project with recorded runs and a published site (the session's: conftest.py), and one run's JSON."""
    repo = published_project[0]
    run_file = sorted((repo / "results" / "runs").glob("*.json"))[0]
    return repo, json.loads(run_file.read_text())


# Each seed publishes the whole site: two (one truncated file, one mutated) in the default run, the
# rest in the slow tier.
@pytest.mark.parametrize("seed", [0, 1] + [pytest.param(s, marks=pytest.mark.slow) for s in range(2, 12)])
def test_malformed_results_files_in_report_and_publish(published, tmp_path, capsys, monkeypatch, seed):
    repo, valid = published
    rng = random.Random(seed)
    bad = repo / "results" / "runs" / f"zz-fuzz-{seed}.json"
    fuzzed = _mutate_json(valid, rng)
    bad.write_text(json.dumps(fuzzed) if seed % 3 else json.dumps(fuzzed)[: rng.randrange(1, 200)])
    database = {name: digest for name, digest in _digest(repo / "results").items()
                if not name.startswith(("html/", "runs/zz-fuzz"))}
    _run_main(["report", str(bad), "--out", str(tmp_path / "report")], capsys)
    monkeypatch.chdir(repo)
    code, err = _run_main(["publish"], capsys)
    assert code == 0, err  # a bad file among the runs is passed over, not fatal
    assert (repo / "results" / "html" / "index.html").is_file()
    after = {name: digest for name, digest in _digest(repo / "results").items()
             if not name.startswith(("html/", "runs/zz-fuzz"))}
    assert after == database  # report and publish change no data
    bad.unlink()


# Issue 29's hostile inputs: names that become paths or reach asv's HTML, and option values out of range.
HOSTILE = ["../../x", "/tmp/escaped", "<img src=x onerror=alert(1)>", "a\x00b", "x" * 5000, "..", "", "$(id)",
           "a/b", "..\\x", "1.0/../../x", None, 7, [], {}]
PROVENANCE_FIELDS = [("machine",), ("os",), ("cpu",), ("gpu",), ("arch",), ("python",), ("libraries", "numpy"),
                     ("libraries", "torch"), ("git", "commit"), ("threads",), ("cpu_count",)]


@pytest.mark.parametrize("seed", range(16))
def test_hostile_provenance_given_to_record(tmp_path, capsys, monkeypatch, seed):
    """A shared results file whose provenance holds paths, script or junk: recorded with its text escaped
    (exit 0) or refused in one line (exit 2); either way nothing lands outside the results folder."""
    rng = random.Random(seed)
    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    path = write_results_file(work, PROVENANCE)
    data = json.loads(path.read_text())
    for _ in range(rng.randint(1, 3)):
        *parents, leaf = rng.choice(PROVENANCE_FIELDS)
        node = data["provenance"]
        for key in parents:
            node = node[key]
        node[leaf] = rng.choice(HOSTILE)
    path.write_text(json.dumps(data))
    before = _digest(tmp_path)
    monkeypatch.chdir(work)
    code, err = _run_main(["record", str(path), "--results-dir", str(work / "results")], capsys)
    assert code in (0, 2), err
    written = {name for name in _digest(tmp_path) if name not in before}
    assert all(name.startswith("deep/er/results/") for name in written), written
    if code == 2:
        assert not written  # refused before the database was opened
    else:
        assert not any(b"<img" in (tmp_path / name).read_bytes() for name in written)


BAD_OPTIONS = {  # option -> values each refused before anything runs (harness run and train)
    "--backends": [",", "", "no-such-backend", "numpy,,"],
    "--cells": [",", "no_such_cell"],
    "--seq-lens": [",", "0", "-5", "x", "1e400"],
    "--threads": ["0", "-1", "999", "nan"],
    "--label": ["../x", "a/b", "", "<b>"],
    "--output": ["/dev/null", "."],
}
BAD_RUN_OPTIONS = {"--timeout": ["nan", "-1", "0", "inf"], "--repeat": ["0", "-2"]}
BAD_TRAIN_OPTIONS = {"--seeds": ["-1", ",", "x"], "--iterations": ["0", "-3"], "--clip": ["-1", "nan"]}


@pytest.mark.parametrize("seed", range(16))
def test_hostile_command_lines(tmp_path, capsys, monkeypatch, seed):
    """One to three bad option values at once, on run or train: one line and exit 2, nothing written."""
    rng = random.Random(seed)
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "suite.toml").write_text(SUITE)
    monkeypatch.chdir(tmp_path)
    command = "train" if seed % 3 == 0 else "run"
    bad = {**BAD_OPTIONS, **(BAD_TRAIN_OPTIONS if command == "train" else BAD_RUN_OPTIONS)}
    args = [command, str(folder), "-q", "--no-asv", "--results-dir", str(tmp_path / "r")]
    for option in rng.sample(sorted(bad), rng.randint(1, 3)):
        args += [f"{option}={rng.choice(bad[option])}"]
    code, err = _run_main(args, capsys)
    assert code == 2, (args, err)
    assert not (tmp_path / "r").exists()
