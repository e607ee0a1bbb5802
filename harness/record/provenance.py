"""Where and with what a run was made: machine, CPU/GPU model, library versions, git commit."""
from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

LIBRARIES = ("numpy", "torch", "numba", "scipy", "pluggy", "asv")


def library_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata without importing the packages."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_model() -> str | None:
    """The first NVIDIA GPU's name from nvidia-smi, without importing torch."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return names[0] if out.returncode == 0 and names else None


def git_state(path: str | os.PathLike = ".") -> dict:
    """Commit, commit date (ms), branch and dirtiness of the repository holding ``path``."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "commit_date_ms": None, "branch": None, "dirty": None}
    date = git("log", "-1", "--format=%ct", commit)
    return {
        "commit": commit,
        "commit_date_ms": int(date) * 1000 if date else None,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


#: Names the machine in the records and in asv (as asv's ``--machine``); the host name otherwise.
MACHINE_ENV = "HARNESS_MACHINE"


@functools.lru_cache(maxsize=None)
def cpu_peak(threads: int) -> dict[str, float]:
    """This machine's measured CPU GEMM peak, once per process and thread count."""
    from harness.measure.roofline import cpu_gemm_peak

    return cpu_gemm_peak(threads)


def machine_name() -> str:
    return os.environ.get(MACHINE_ENV) or platform.node()


def collect(threads: int) -> dict:
    from harness import __version__

    return {
        "harness": __version__,
        "machine": machine_name(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_model(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "libraries": library_versions(),
        "threads": threads,
        "peak_gflops": cpu_peak(max(threads, 1)),  # BLAS GEMM on the run's thread count, per dtype
        "git": git_state(),
    }
