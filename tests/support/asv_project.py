"""A throwaway git repository laid out like a harness project, for asv history tests."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.cli import TIMEOUT
from tests.support.suites import write_suite

ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                         capture_output=True, text=True, check=True, timeout=TIMEOUT)
    return out.stdout.strip()


def make_repo(path: Path, branch: str = "main") -> Path:
    """A git repository on ``branch`` with the project's asv.conf.json (which names main) and a tiny suite."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "asv.conf.json", path / "asv.conf.json")
    write_suite(path / "suites" / "tiny", cells='["rnn_tanh", "gru"]', seq_lens="[12, 16]")
    (path / ".gitignore").write_text("results/\n")
    git(path, "init", "-q", "-b", branch)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


def commit_change(repo: Path, message: str) -> str:
    (repo / "CHANGES").write_text(message)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")
