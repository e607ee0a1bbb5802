"""Plan a suite's grid, run it backend by backend, and record every cell as it finishes.

The results file is rewritten atomically after every cell, so an interrupted or crashed run keeps
everything that finished. Unavailable backends and unsupported cells are recorded as skipped.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from harness import HarnessError, provenance, results
from harness.executor import Executor, LocalExecutor
from harness.plugins import get_registry, machine_info
from harness.problem import CellJob
from harness.progress import Progress
from harness.suites import Suite


@dataclass
class Run:
    """A run in progress or finished: the data of its results file and where that file is."""

    path: Path
    data: dict
    interrupted: bool = False
    counts: dict = field(default_factory=dict)


def select_backends(spec: str) -> list[str]:
    """``all`` or a comma-separated list of installed backend names."""
    installed = sorted(get_registry().backends)
    if spec == "all":
        return installed
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        if name not in installed:
            raise HarnessError(f"unknown backend {name!r}; installed backends: {', '.join(installed)}")
    return names


def _skip(backend: str, cell: str, seq_len: int, suite: Suite, reason: str) -> dict:
    return {"backend": backend, "cell": cell, "seq_len": seq_len, "dtype": suite.dtype,
            "status": "skipped", "reason": reason}


def _fresh_path(folder: Path, stem: str) -> Path:
    """``stem.json`` in ``folder``, or ``stem-2.json``, ... when an earlier run took that name."""
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.json"
    return path


def run_suite(
    suite: Suite,
    backends: list[str],
    results_dir: str | Path = "results",
    output: str | Path | None = None,
    executor: Executor | None = None,
    progress: bool = True,
) -> Run:
    registry = get_registry()
    task = registry.task(suite.task)  # unknown task: a clear error before anything runs
    too_short = [t for t in suite.seq_lens if t < task.min_seq_len]
    if too_short:
        raise HarnessError(f"sequence length {too_short[0]} is too short for task {task.name!r} "
                           f"(minimum {task.min_seq_len})")
    executor = executor or LocalExecutor()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = Path(output) if output else _fresh_path(Path(results_dir) / "runs", f"{suite.name}-{stamp}")
    data = {
        "schema": results.SCHEMA,
        "suite": suite.to_dict(),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "finished_at": None,
        "status": "running",
        "provenance": {**provenance.collect(suite.threads), "plugins": machine_info()},
        "backends": {},
        "records": [],
    }
    run = Run(path, data)
    total = len(backends) * len(suite.cells) * len(suite.seq_lens)
    bar = Progress(total) if progress else None

    def record(entry: dict) -> None:
        data["records"].append(entry)
        results.write_json_atomic(path, data)
        if bar:
            bar.advance(f"{entry['backend']} {entry['cell']} T={entry['seq_len']}: {entry['status']}")

    try:
        for name in backends:
            cls = registry.backend_class(name)
            availability = cls.availability()
            data["backends"][name] = {"available": availability.available, "reason": availability.reason,
                                      "description": cls.description}
            jobs = []
            for cell in suite.cells:
                support = cls.supports(cell, suite.dtype) if availability else availability
                for seq_len in suite.seq_lens:
                    if support:
                        jobs.append(CellJob(name, cell, seq_len, suite.to_dict()))
                    else:
                        record(_skip(name, cell, seq_len, suite, support.reason))
            if not jobs:
                continue
            if bar:
                bar.show(f"{name}: starting worker")

            def on_result(job: CellJob, rec: dict) -> None:
                record({"backend": job.backend, "cell": job.cell, "seq_len": job.seq_len,
                        "dtype": suite.dtype, **rec})
                if bar:
                    bar.show(f"{job.backend} running")

            executor.run(name, jobs, on_result, threads=suite.threads, timeout=suite.timing.timeout)
            data["backends"][name]["info"] = getattr(executor, "backend_info", {}).get(name, {})
        data["status"] = "complete"
    except KeyboardInterrupt:
        data["status"] = "interrupted"
        run.interrupted = True
    finally:
        if bar:
            bar.close()
        data["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
        results.write_json_atomic(path, data)
    statuses = [r["status"] for r in data["records"]]
    run.counts = {s: statuses.count(s) for s in ("ok", "failed", "skipped")}
    return run
