"""Installing a plugin distribution into a folder, without network and without touching the test venv."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import TIMEOUT


def pip_install(source: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, timeout=TIMEOUT)


def env_with(path: Path) -> dict[str, str]:
    """The environment with ``path`` first on PYTHONPATH (so subprocesses and workers see the plugin)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(path), os.environ.get("PYTHONPATH")) if p)}


def run_pytest(tests: Path, path: Path) -> subprocess.CompletedProcess:
    """pytest on a plugin's own tests, in a subprocess that sees the plugin installed at ``path``."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                          env=env_with(path), capture_output=True, text=True, timeout=TIMEOUT)
