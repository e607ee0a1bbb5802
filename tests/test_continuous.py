"""`harness continuous BEFORE AFTER SUITE`: both commits measured in worktrees of their own, recorded
under their commits, and compared (asv's continuous)."""
from __future__ import annotations

import json

from tests.support.asv_project import commit_change, git, make_repo
from tests.support.cli import harness

RUN = ["--", "--backends", "numpy", "--repeat", "2", "--cells", "rnn_tanh", "--seq-lens", "12", "-q"]


def test_continuous_runs_each_commit_in_its_own_checkout_and_compares_them(tmp_path):
    repo = make_repo(tmp_path / "proj")
    first = git(repo, "rev-parse", "HEAD")
    suite = repo / "suites" / "tiny" / "suite.toml"
    suite.write_text(suite.read_text().replace("seeds = [0]", "seeds = [0, 1]"))  # the second commit's own suite
    second = commit_change(repo, "two seeds")
    result = harness("continuous", "HEAD~1", "main", "tiny", "--all", "--format", "json", *RUN, cwd=repo)
    assert result.returncode in (0, 1), result.stderr
    assert f"at HEAD~1 ({first[:12]})" in result.stderr and f"at main ({second[:12]})" in result.stderr
    runs = [json.loads(p.read_text()) for p in (repo / "results" / "runs").glob("*.json")]
    by_commit = {r["provenance"]["git"]["commit"]: r for r in runs}
    assert set(by_commit) == {first, second}  # each side recorded under its own commit, from a clean checkout
    assert by_commit[first]["suite"]["seeds"] == [0] and by_commit[second]["suite"]["seeds"] == [0, 1]
    assert not any(r["provenance"]["git"]["dirty"] for r in runs)
    assert git(repo, "worktree", "list").count("\n") == 0  # the worktrees are gone
    json.loads(result.stdout)  # the comparison, as harness compare --format json prints it


def test_a_ref_that_is_not_a_commit_is_one_line(tmp_path):
    repo = make_repo(tmp_path / "proj")
    result = harness("continuous", "nope", "HEAD", "tiny", cwd=repo)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "harness: error: continuous: 'nope' is not a commit of this repository (a branch, tag, HEAD~N or a commit "
        "hash)"]
    assert "is not a git repository" in harness("continuous", "a", "b", "tiny", cwd=tmp_path).stderr
