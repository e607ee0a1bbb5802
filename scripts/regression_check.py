"""The end-to-end check of `harness compare` on real timings (docs/user-guide.md, "Catching regressions").

1. Two back-to-back runs of the same code (numpy and numba, a small grid) must show no "+".
2. A backend made 30% slower (a plugin that busy-waits 30% longer after forward and backward) must be
   flagged "+" on its timing rows and nowhere else.

The grid takes its timings in eight rounds, and compare judges them in units of the machine probe
timed beside them (docs/user-guide.md). Real timings depend on how the machine behaves, so this is a
script to run (three times, quoting each) rather than a test:  python scripts/regression_check.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

SLOWED = """
import os, time
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2

def _slow(seconds):
    if os.environ.get("SLOW_DOWN"):  # 30% more time: a regression to catch
        end = time.perf_counter() + 0.3 * seconds
        while time.perf_counter() < end:
            pass


class Slowed(NumpyBackend):
    name = "slowed"

    def forward(self):
        t0 = time.perf_counter()
        super().forward()
        _slow(time.perf_counter() - t0)

    def backward(self, per_step=False):
        t0 = time.perf_counter()
        super().backward(per_step)
        _slow(time.perf_counter() - t0)

@hookimpl
def harness_backends():
    return [Slowed]
"""

SUITE = """
task = "temporal_order"
cells = ["rnn_tanh", "lstm"]
seq_lens = [100, 200]
batch = 16
hidden = 32
dtype = "float32"
metrics = ["time", "memory", "gradient"]

[timing]
repeat = 32
rounds = 8  # samples from eight moments of the run: the machine's slow phases last seconds to minutes
"""


def harness(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=1800)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="harness-regression-check-") as tmp:
        root = Path(tmp)
        site = root / "site"
        (site / "slowed-0.1.dist-info").mkdir(parents=True)
        (site / "slowed_plugin.py").write_text(textwrap.dedent(SLOWED))
        (site / "slowed-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: slowed\nVersion: 0.1\n")
        (site / "slowed-0.1.dist-info" / "entry_points.txt").write_text("[harness]\nslowed = slowed_plugin\n")
        (root / "grid").mkdir()
        (root / "grid" / "suite.toml").write_text(SUITE)
        env = {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}
        results_dir = str(root / "results")
        runs = [("first", "numpy,numba", {}), ("second", "numpy,numba", {}),
                ("before", "slowed", {}), ("after", "slowed", {"SLOW_DOWN": "1"})]
        for label, backends, extra in runs:
            run = harness("run", str(root / "grid"), "--backends", backends, "-q", "--label", label,
                          "--results-dir", results_dir, env={**env, **extra})
            if run.returncode != 0:
                print(run.stderr, file=sys.stderr)
                return 2
            print(f"run {label} ({backends}): " + run.stdout.strip().splitlines()[-2])
        from harness.report.compare import compare

        verdicts = []
        for before, after in (("first", "second"), ("before", "after")):
            result = harness("compare", before, after, "--results-dir", results_dir, env=env)
            print(f"\n$ harness compare {before} {after}   (exit {result.returncode})\n{result.stdout}{result.stderr}")
        same = compare(results_dir, "first", "second")
        verdicts.append((f"back-to-back runs: no + in {len(same)} points", not any(c.mark == "+" for c in same)))
        slowed = compare(results_dir, "before", "after")
        flagged = {c.key for c in slowed if c.mark == "+"}
        timing = {c.key for c in slowed if c.key[0].split(".")[1] in ("time_forward", "time_forward_backward")
                  and c.ratio is not None and c.key[1][0] == "slowed"}
        verdicts.append((f"slowed backend: + on its {len(timing)} timing rows and nowhere else",
                         flagged == timing))
        print("\n".join(f"{'PASS' if ok else 'FAIL'}  {what}" for what, ok in verdicts))
        return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
