"""Concurrent runs into one results directory lose nothing: exclusive run files, a locked asv database."""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

from harness.run.runner import claim_path


def _claim(folder: str, queue) -> None:
    queue.put(str(claim_path(Path(folder), "suite-20261126T080000Z")))


def _record(tmp: str, backend: str) -> None:
    from tests.support.runs import record_synthetic, synthetic_point

    record_synthetic(Path(tmp) / backend, "shared", [synthetic_point(backend, 10, 1.0)],
                     results_dir=Path(tmp) / "results")


def test_runs_started_in_the_same_second_get_distinct_files(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(tmp_path), queue)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    paths = {queue.get(timeout=10) for _ in procs}
    assert len(paths) == 6 and all(Path(p).exists() for p in paths)


def _run_together(*calls: tuple) -> None:
    """Start every (function, *args) in its own spawned process at once; all must succeed."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for target, *args in calls]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_parallel_recorders_into_one_asv_database_lose_no_result(tmp_path):
    backends = [f"backend{i}" for i in range(10)]
    _run_together(*((_record, str(tmp_path), b) for b in backends))
    bench = json.loads((tmp_path / "results" / "benchmarks.json").read_text())
    assert set(bench["tiny.time_forward_backward"]["params"][0]) == {repr(b) for b in backends}
    (result_file,) = (tmp_path / "results" / "labels" / "shared").rglob("*.json")
    data = json.loads(result_file.read_text())
    entry = dict(zip(data["result_columns"], data["results"]["tiny.time_forward_backward"]))
    assert set(entry["params"][0]) == {repr(b) for b in backends}
    assert all(v is not None and v > 0 for v in entry["result"])  # every backend's value is there


def _publish(tmp: str) -> None:
    from harness.record import asvdb
    from harness.report import site

    conf = asvdb.load_config(path=Path(tmp) / "none.json", results_dir=Path(tmp) / "results")
    site.publish(conf)


def test_recording_while_publishing_loses_nothing(tmp_path):
    """Recorders and a publish at the same time: every result is in the database, the site is whole."""
    _record(str(tmp_path), "first")  # something to publish
    calls = [(_record, str(tmp_path), f"backend{i}") for i in range(4)]
    _run_together(*calls[:2], (_publish, str(tmp_path)), *calls[2:])
    bench = json.loads((tmp_path / "results" / "benchmarks.json").read_text())
    assert set(bench["tiny.time_forward_backward"]["params"][0]) == {repr(b) for b in
                                                                     ["first", *(f"backend{i}" for i in range(4))]}
    assert (tmp_path / "results" / "html" / "index.html").is_file()


def _swap_sites(target: str, tag: str, rounds: int, barrier) -> None:
    from harness.report.site import _swap_in

    barrier.wait()  # all three at once
    for i in range(rounds):
        built = Path(target).parent / f"built-{tag}-{i}"
        built.mkdir()
        (built / "index.html").write_text(f"{tag} {i}")
        _swap_in(built, Path(target))


def test_concurrent_publishes_swap_their_sites_in_one_after_the_other(tmp_path):
    """Three processes replacing one site folder 200 times each, all at once: none fails, and the site
    left is one of theirs, whole."""
    target = tmp_path / "html"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_swap_sites, args=(str(target), tag, 200, barrier)) for tag in "abc"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    assert (target / "index.html").read_text().split()[0] in "abc"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("built-", ".html-old-"))]
