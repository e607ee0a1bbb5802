"""Does untimed work on the spare CPUs slow the timings down? (docs/performance.md, "Untimed work beside the timings")

Times forward + backward of a few points pinned to the timing CPU, alone and while the gradient
profiles of T = 2000 points run in a loop on the spare CPUs (executor.spare_cpus), alternating
three times, and prints each point's medians and their ratio (busy / alone).

    python scripts/beside_check.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from threadpoolctl import threadpool_limits

from harness.measure.blas import THREAD_ENV
from harness.measure.timing import Timer
from harness.plugins import get_registry
from harness.run import point
from harness.run.executor import spare_cpus, timing_cpus
from harness.run.grid import PointJob, build
from harness.suites import load

CASES = [("numba", "lstm", 2000), ("numba", "rnn_tanh", 200), ("numpy", "gru", 500), ("torch-cpu", "lstm", 1000),
         ("numba", "gru", 50)]
BUSY = [("numpy", "lstm", 2000), ("numba", "gru", 2000)]  # the untimed work: their gradient profiles


def _profiles(folder: str) -> None:
    """The background: profile jobs of BUSY, over and over (run in a child on the spare CPUs)."""
    suite = load("long_range")
    task = get_registry().task(suite.task)
    backends = {name: get_registry().backend_class(name)(threads=1) for name, _, _ in BUSY}
    while True:
        for name, cell, T in BUSY:
            point.measure(backends[name], PointJob(name, cell, T, suite, "profile", problems=folder), task)


def main() -> None:
    spare = spare_cpus(1)
    if not spare:
        sys.exit("no spare CPU here: nothing runs beside the timings")
    os.environ.update({name: "1" for name in THREAD_ENV})  # one thread, as the harness's workers (and the child)
    threadpool_limits(limits=1)  # the BLAS libraries this process has loaded already
    os.sched_setaffinity(0, timing_cpus(1))
    suite, folder = load("long_range"), tempfile.mkdtemp(prefix="beside-")
    task = get_registry().task(suite.task)
    backends: dict = {}

    def median(case) -> float:
        name, cell, T = case
        backend = backends.setdefault(name, get_registry().backend_class(name)(threads=1))
        backend.prepare(build(task, cell, T, suite, 0, folder).timed)
        step = lambda: (backend.forward(), backend.backward())  # noqa: E731
        step()
        return Timer(step).timeit(15).median

    for name, cell, T in BUSY:  # built once, before anything is timed
        for seed in suite.seeds:
            build(task, cell, T, suite, seed, folder)
    alone, busy = {c: [] for c in CASES}, {c: [] for c in CASES}
    for _ in range(3):
        for case in CASES:
            alone[case].append(median(case))
        child = subprocess.Popen(["taskset", "-c", ",".join(map(str, spare)), sys.executable, "-c",
                                  f"import sys; sys.path.insert(0, 'scripts'); import beside_check; "
                                  f"beside_check._profiles({folder!r})"],
                                 env=os.environ)
        time.sleep(5)  # its imports and first profile
        for case in CASES:
            busy[case].append(median(case))
        child.kill()
        child.wait()
    print(f"timing CPU {timing_cpus(1)}, untimed work on {spare}; forward + backward medians (ms), 15 blocks each")
    for case in CASES:
        a, b = statistics.median(alone[case]), statistics.median(busy[case])
        print(f"{' '.join(map(str, case)):<22} alone {a * 1e3:8.2f}  beside {b * 1e3:8.2f}  ratio {b / a:.3f}  "
              f"(alone {', '.join(f'{x * 1e3:.2f}' for x in alone[case])}; beside "
              f"{', '.join(f'{x * 1e3:.2f}' for x in busy[case])})")


if __name__ == "__main__":
    main()
