"""`harness continuous BEFORE AFTER SUITE`: measure a suite at two commits, each in a checkout of its own.

As asv's ``continuous``: each side is a detached git worktree of the repository at that commit, and
`harness run` runs there, with the worktree (and its ``src/``) first on PYTHONPATH, so that the code
under test (a backend or cell plugin in this repository, or the harness itself) and the suite file
are the commit's own; the dependencies are the current environment's. Both runs record into this
repository's asv database, under their commits, and the caller compares them (harness compare).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError
from harness.record.provenance import git


def resolve(repo: str | os.PathLike, ref: str) -> str:
    """The full commit hash of ``ref`` (a branch, tag, ``HEAD~1`` or a hash prefix) in ``repo``."""
    if git(repo, "rev-parse", "--git-dir") is None:
        raise HarnessError(f"continuous: {Path(repo).resolve()} is not a git repository; run it in the "
                           f"repository whose commits to compare")
    commit = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if not commit:
        raise HarnessError(f"continuous: {ref!r} is not a commit of this repository (a branch, tag, HEAD~N or a "
                           f"commit hash)")
    return commit


@contextlib.contextmanager
def worktree(repo: str | os.PathLike, commit: str) -> Iterator[Path]:
    """A detached worktree of ``repo`` at ``commit`` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="harness-continuous-") as scratch:
        path = Path(scratch) / commit[:12]
        if git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit) is None:
            raise HarnessError(f"continuous: could not check out {commit[:12]} (git worktree add failed)")
        try:
            yield path
        finally:
            git(repo, "worktree", "remove", "--force", str(path))
            git(repo, "worktree", "prune")


def run_side(checkout: Path, suite: str, results_dir: str, run_args: list[str]) -> int:
    """`harness run SUITE RUN_ARGS` in ``checkout``, recording into ``results_dir``; its exit status. Its
    output goes to stderr: stdout is the comparison's (``--format json`` for scripts)."""
    paths = [str(checkout), str(checkout / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    command = [sys.executable, "-m", "harness", "run", suite, "--results-dir", results_dir, *run_args]
    return subprocess.run(command, cwd=checkout, env=env, stdout=sys.stderr).returncode
