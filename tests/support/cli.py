"""Running the ``harness`` command in a subprocess, always with a time limit."""
from __future__ import annotations

import functools
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: Seconds any harness subprocess may take in a test: generous for a loaded 2-core machine, but a
#: hang fails the test instead of the whole CI run.
TIMEOUT = 600


def harness(*args: str, cwd: str | Path | None = None, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
    """``python -m harness ARGS``; with ``check``, a non-zero exit fails with its stderr."""
    result = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)
    if check and result.returncode != 0:
        raise AssertionError(f"harness {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def _read_only_command(folder: Path, args: list[str]) -> list[str]:
    """``args`` run in a mount namespace of their own, where ``folder`` is a read-only bind mount of itself."""
    mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", mount, str(folder), *args]


@functools.cache
def read_only_mounts() -> bool:
    """Whether this machine lets the tests mount a folder read-only (unshare and mount, as root with
    CAP_SYS_ADMIN): a real read-only file system, which chmod cannot give a root user."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            probe = subprocess.run(_read_only_command(Path(folder), ["touch", f"{folder}/x"]), capture_output=True,
                                   text=True, timeout=60)
        except OSError:  # no unshare
            return False
        return probe.returncode != 0 and "Read-only file system" in probe.stderr


def harness_read_only(folder: Path, *args: str, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` with ``folder`` on a read-only file system (see :func:`read_only_mounts`)."""
    return subprocess.run(_read_only_command(folder, [sys.executable, "-m", "harness", *args]), cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT)


def start_harness(*args: str, cwd: str | Path) -> subprocess.Popen:
    """``python -m harness ARGS`` in the background, output captured, with Ctrl-C (SIGINT) delivered
    as at a terminal: a shell starts background jobs with SIGINT ignored, and a Python started that
    way keeps ignoring it, so without the reset a Ctrl-C test would hang when pytest runs in one."""
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single stderr line of a usage error (exit code 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def section_rows(text: str, title: str) -> list[list[str]]:
    """The rows (split on whitespace) of the table titled ``title`` in printed output."""
    lines = [line.rstrip() for line in text.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    rows = []
    for line in lines[start + 3:]:  # title, header, rule
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def stop_when(proc: subprocess.Popen, ready: Callable[[], bool], sig: int = signal.SIGINT) -> str:
    """Wait (at most TIMEOUT) until ``ready()``, send ``sig`` to ``proc``, and return its stderr once it ended."""
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(sig)
        return proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
