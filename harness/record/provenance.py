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


def git(repo: str | os.PathLike, *args: str) -> str | None:
    """``git ARGS`` in ``repo``: its output stripped ("" from a command that only answers with its
    status, such as ``merge-base --is-ancestor``), or None when it fails or git is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(path: str | os.PathLike = ".") -> dict:
    """Commit, commit date (ms), branch and dirtiness of the repository holding ``path``."""
    commit = git(path, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "commit_date_ms": None, "branch": None, "dirty": None}
    date = git(path, "log", "-1", "--format=%ct", commit)
    return {
        "commit": commit,
        "commit_date_ms": int(date) * 1000 if date else None,
        "branch": git(path, "rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(git(path, "status", "--porcelain", "--untracked-files=no")),
    }


#: Names the machine in the records and in asv (as asv's ``--machine``); the host name otherwise.
MACHINE_ENV = "HARNESS_MACHINE"


#: Where measurements that belong to the machine, not to a run, are kept (the roof and the GEMM engines).
CACHE_ENV = "HARNESS_CACHE_DIR"
#: Set to 1 to measure the machine's peak again (``harness run --remeasure-peak`` sets it).
REMEASURE_PEAK_ENV = "HARNESS_REMEASURE_PEAK"


def cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/harness``, else ``~/.cache/harness``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness"


#: Bumped when what :func:`cpu_peak` measures changes, so that a cached value of the old kind is not
#: read; a results file without it holds a GEMM peak from before the roof (RunResults.peak_gflops).
PEAK_VERSION = "roof 1"


def _peak_key(threads: int) -> str:
    """What the peak depends on: the machine and CPU, the BLAS libraries and their settings, threads."""
    libs = library_versions()
    settings = ",".join(f"{k}={os.environ[k]}" for k in sorted(os.environ) if k.startswith("OPENBLAS_"))
    return (f"{PEAK_VERSION}|{machine_name()}|{cpu_model()}|numpy {libs['numpy']}|torch {libs['torch']}|{settings}|"
            f"{threads} threads")


@functools.lru_cache(maxsize=None)
def cpu_peak(threads: int) -> dict[str, dict]:
    """This machine's CPU roof per dtype on ``threads`` threads (``peak_gflops``: the FMA microkernel of
    measure/roof.py, what "% of peak" divides by) and its GEMM engines under it (``gemm_gflops``:
    engine -> dtype -> GFLOP/s): measured once per machine, libraries and thread count and kept in
    :func:`cache_dir` (seconds saved on every run); measured again when ``HARNESS_REMEASURE_PEAK=1``
    or when the cache cannot be read."""
    import json

    from harness.measure.roof import cpu_roof
    from harness.measure.roofline import gemm_engines
    from harness.record.files import write_json_atomic

    path, key = cache_dir() / "peak_gflops.json", _peak_key(threads)
    try:
        known = json.loads(path.read_text())
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    cached = known.get(key)
    if isinstance(cached, dict) and cached.get("peak_version") == PEAK_VERSION and \
            os.environ.get(REMEASURE_PEAK_ENV) != "1":
        return cached
    peak = {"peak_gflops": cpu_roof(threads), "peak_version": PEAK_VERSION, "gemm_gflops": gemm_engines(threads)}
    try:
        write_json_atomic(path, {**known, key: peak})
    except OSError:  # a read-only home: measured every run, as before
        pass
    return peak


def machine_name() -> str:
    """``$HARNESS_MACHINE``, else the host name: checked, since it becomes the asv machine's folder."""
    from harness.errors import HarnessError, check_name

    given = os.environ.get(MACHINE_ENV)
    try:
        return check_name("machine name", given or platform.node())
    except HarnessError as exc:
        where = f"${MACHINE_ENV}" if given else f"the host name; set ${MACHINE_ENV} to name this machine"
        raise HarnessError(f"{exc} ({where})") from None


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
        **cpu_peak(max(threads, 1)),  # the roof (peak_gflops) and GEMM engines, on the run's thread count
        "git": git_state(),
    }
