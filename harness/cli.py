"""The ``harness`` command line. Heavy imports happen inside the commands that need them."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from harness import __version__
from harness.errors import HarnessError, message

if TYPE_CHECKING:
    from harness.suites import Mode


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line like every other error of the harness."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(kind: str, cast=float):
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a positive number, got {text!r}") from None
        if not value > 0 or not math.isfinite(value):  # NaN compares False
            raise argparse.ArgumentTypeError(f"{kind} must be a positive finite number, got {text!r}")
        return value

    return parse


def _csv(kind: str, cast=str, minimum: float | None = None):
    def parse(text: str):
        try:
            values = tuple(cast(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a comma-separated list, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{kind} must list at least one value, got {text!r}")
        if minimum is not None and any(not v >= minimum for v in values):
            raise argparse.ArgumentTypeError(f"{kind} must be at least {minimum:g}, got {text!r}")
        return values

    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be an integer from 0 to 65535, got {text!r}")
    return value


def _print(renderable) -> None:
    from harness.report.console import console

    console().print(renderable)


def cmd_plugins(args) -> int:
    from harness.plugins import availability, get_registry

    registry = get_registry()
    available = {name: availability(cls) for name, cls in registry.backends.items()}
    rows = []
    for p in registry.plugins:
        offers = p.tasks + ([f"{len(p.cells)} cell{'s' if len(p.cells) > 1 else ''} (below)"] if p.cells else [])
        rows.append([p.name, f"{p.distribution} {p.version}", p.status, ", ".join(offers) or "-", p.error])
        for name in p.backends:
            cls = registry.backends[name]
            avail = available[name]
            state = "available" if avail else f"unavailable: {avail.reason}"
            if not cls.in_all:
                state += " (runs when named: not in --backends all)"
            rows.append([f"  backend {name}", "", state, f"cells: {', '.join(_backend_cells(cls))}",
                         f"dtypes: {', '.join(cls.dtypes)}"])
    plugins = ("plugins", ["plugin", "distribution", "status", "tasks / cells", "error / dtypes"], rows)
    cells = []
    for name, cls in registry.cells.items():
        record = registry.cell_plugins[name]
        runs = [b for b, bcls in registry.backends.items() if name in bcls.cell_names()]
        here = ", ".join(b for b in runs if available[b]) or "no backend available here"
        elsewhere = [b for b in runs if not available[b]]
        cells.append([name, f"{record.name} ({record.distribution} {record.version})",
                      ", ".join(s.name for s in cls.state), here + (f" (not here: {', '.join(elsewhere)})"
                                                                   if elsewhere else ""),
                      ", ".join(cls.init_names())])
    _emit([plugins, ("cells", ["cell", "plugin (distribution)", "states", "run by", "inits"], cells)], args.format)
    return 0


def _emit(tables: list[tuple[str, list[str], list[list[str]]]], fmt: str) -> None:
    """Listing tables (title, headers, rows) as ``fmt``: rich tables (the first untitled), one JSON
    object of records per title, Markdown tables under their titles, or the first table as CSV (the
    main listing; the others are in the JSON)."""
    from harness.report.console import markdown, table

    if fmt == "json":
        print(json.dumps({title: [dict(zip(headers, (c.strip() for c in row))) for row in rows]
                          for title, headers, rows in tables}, indent=1))
    elif fmt == "csv":
        title, headers, rows = tables[0]
        _write_csv([dict(zip(headers, (c.strip() for c in row))) for row in rows])
    elif fmt == "markdown":
        print("\n\n".join(f"## {title}\n\n{markdown(headers, rows)}" for title, headers, rows in tables))
    else:
        for i, (title, headers, rows) in enumerate(tables):
            _print(table(headers, rows, title=title if i else None))


def _backend_cells(cls) -> list[str]:
    """The cells a backend declares, ``every cell`` spelt out for one that runs any registered cell."""
    from harness.backend import EVERY_CELL

    return ["every cell"] if EVERY_CELL in cls.cells else list(cls.cell_names())


def cmd_suites(args) -> int:
    from harness import suites
    from harness.plugins import availability, get_registry

    registry = get_registry()
    rows = []
    in_suites: dict[str, list[str]] = {}
    for name, path in sorted(suites.available_suites().items()):
        s = suites.load(path)
        task = registry.tasks.get(s.task)
        rows.append([name, s.task, ",".join(s.cells), ",".join(map(str, s.seq_lens)),
                     task.reference if task else "task not installed", task.solved if task else "", str(path)])
        for cell in s.cells:
            in_suites.setdefault(cell, []).append(name)
    listing = ("suites", ["suite", "task", "cells", "T", "task source", "solved when", "path"], rows)
    # which backends run each cell: a backend that does not is skipped for it with the reason
    available = {name: bool(availability(cls)) for name, cls in registry.backends.items()}
    cells = []
    for cell in sorted(set(in_suites) | set(registry.cells), key=lambda c: (c not in registry.cells, c)):
        if cell not in registry.cells:
            cells.append([cell, ", ".join(in_suites[cell]), "cell not installed", ""])
            continue
        runs = [b for b, cls in registry.backends.items() if cell in cls.cell_names()]
        cells.append([cell, ", ".join(in_suites.get(cell, [])) or "-",
                      ", ".join(b for b in runs if available[b]) or "no backend available here",
                      ", ".join(b for b in runs if not available[b]) or "-"])
    _emit([listing, ("cells and the backends that run them (others are skipped with the reason)",
                     ["cell", "in suites", "run by (here)", "run by (not available here)"], cells)], args.format)
    return 0


def _grid(args, mode: Mode):
    """The suite with the command line's grid overrides, and the backends: checked before running."""
    from harness import suites
    from harness.plugins import get_registry
    from harness.run import runner

    suite = suites.load(args.suite)
    if args.backends is None:  # harness train and reproduce: the suite's [train] backends, else all
        args.backends = ",".join(suite.train.backends) or "all"
    if args.backends.strip() != "all" and not [n for n in args.backends.split(",") if n.strip()]:
        raise HarnessError(f"--backends must name at least one backend, got {args.backends!r}; installed "
                           f"backends: {', '.join(sorted(get_registry().backends)) or 'none'} (or 'all')")
    _check_threads(args)
    grid = dict(cells=args.cells, seq_lens=args.seq_lens, hidden=args.hidden, inits=args.inits, threads=args.threads)
    if mode == suites.Mode.TRAIN:
        grid.update(clip=args.clip, iterations=args.iterations, seeds=args.seeds)
    else:
        grid.update(batch=args.batch, regression=args.regression, repeat=args.repeat, budget=args.budget,
                    timeout=args.timeout, rounds=args.rounds, compile_repeat=args.compile_repeat,
                    isolate=args.isolate, exact=args.time_exact)
    return suite.with_grid(mode, **grid), runner.select_backends(args.backends)


def _check_threads(args) -> None:
    """--threads at most this machine's CPU count (the CPUs the run may use), unless --oversubscribe;
    a cluster's workers (--scheduler) run on other machines, whose CPUs are not counted here."""
    from harness.run.executor import allowed_cpus

    if args.threads is None or getattr(args, "scheduler", None) or args.oversubscribe:
        return
    cpus = len(allowed_cpus())
    if args.threads > cpus:
        raise HarnessError(f"--threads {args.threads} is more than the {cpus} CPU(s) this run may use; "
                           f"use at most {cpus}, or add --oversubscribe to run more threads than CPUs anyway")


EXECUTORS = ("local", "dask")  # what run.runner.opened opens


def _run_and_record(args, mode: Mode, then: Callable | None = None, summary: bool = True) -> int:
    """`harness run` and `harness train`: run the grid, print the summary (unless not ``summary``) and
    ``then(results)``, record into asv."""
    from harness.errors import check_name
    from harness.record import asvdb
    from harness.report import console
    from harness.record.provenance import library_versions, machine_name
    from harness.run import runner

    if args.label is not None:
        check_name("label", args.label)  # before measuring anything: it becomes a folder name
    machine_name()  # $HARNESS_MACHINE, or the host name: it becomes the asv machine's folder
    if not args.no_asv:  # the python and library versions name the asv environment's file
        import platform

        asvdb.env_name({"python": platform.python_version(), "libraries": library_versions(), "threads": 1})
    suite, backends = _grid(args, mode)
    if getattr(args, "remeasure_peak", False):
        from harness.record.provenance import REMEASURE_PEAK_ENV

        os.environ[REMEASURE_PEAK_ENV] = "1"
    conf = asvdb.load_config(results_dir=args.results_dir)

    with runner.opened(args.executor, args.scheduler, args.workers, args.memory_limit,
                share_cpus=getattr(args, "share_cpus", False)) as executor:
        run = runner.run_suite(suite, backends, results_dir=conf.results_dir, output=args.output, mode=mode,
                               observer=console.GridProgress(enabled=not args.quiet), executor=executor,
                               force=args.force)
    if summary:
        _print_summary(run.results, args.columns, args.format)
    if then is not None:
        then(run.results)
    out = sys.stdout if args.format == "table" else sys.stderr  # scripts read the summary alone
    counts = run.results.counts
    print(f"\n{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped -> {run.path}", file=out)
    failed_plugins = [p for p in run.results.provenance["plugin_status"] if p["status"] in ("failed", "incompatible")]
    for p in failed_plugins:
        print(f"note: plugin {p['name']} ({p['distribution']} {p['version']}) did not load, so its backends are "
              f"missing from this run: {p['status']}: {p['error']}", file=sys.stderr)
    if run.results.busy:
        print(f"{run.results.busy} point(s) measured while the machine was busy (load average above the CPU "
              f"count): their timings shared the CPUs", file=out)
    for c in run.results.compile:
        where = f"cold {c.cold_s:.3g} s, warm {c.warm_s:.3g} s" if c.status == "ok" else f"failed: {c.reason}"
        print(f"compile time {c.backend} {c.cell} {c.dtype}: {where}", file=out)
    if not args.no_asv:
        with contextlib.redirect_stdout(out):
            _record_into_asv(run.results, conf, args.label, run.path)
    if run.interrupted:
        print("interrupted: every finished point was kept", file=sys.stderr)
        return 130
    return 1 if counts["failed"] else 0


FORMATS = ("table", "json", "csv", "markdown")


def _write_csv(rows: list[dict]) -> None:
    """Records as CSV on stdout, a header row first."""
    import csv

    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _print_summary(run, columns: str, fmt: str) -> None:
    """The run's summary on stdout: a table for people (``columns``: the pivot, or "all"), or one
    record per point as JSON or CSV, or the table as Markdown, for scripts and pull requests."""
    from harness.report import console

    if fmt in ("json", "csv"):
        from harness.record.dataframe import records

        if fmt == "json":
            print(json.dumps(records(run), indent=1))
        else:
            _write_csv(records(run))
        return
    if fmt == "markdown":
        headers, body, lines = console.summary_text(run, columns)
        print("\n".join([console.markdown(headers, body), *([""] + lines if lines else [])]))
        return
    _print(console.summary(run, columns))


def cmd_run(args) -> int:
    from harness.suites import Mode

    return _run_and_record(args, Mode.RUN)


def cmd_train(args) -> int:
    from harness.suites import Mode

    return _run_and_record(args, Mode.TRAIN)


def cmd_reproduce(args) -> int:
    """A published experiment's preset (suites/reproduce/NAME): train it, or read a results file of it
    (--from), and give each of the paper's results its verdict; --list (or no NAME) lists the presets."""
    from harness import suites
    from harness.errors import check_choice

    presets = suites.reproductions()
    if args.list or args.suite is None:
        rows = []
        for name, folder in sorted(presets.items()):
            suite = suites.load(folder)
            rows.append([name, suite.reproduce.paper, str(suite.reproduce.paper_iterations or "not stated"),
                         str(suite.train.iterations), ", ".join(suite.cells),
                         ", ".join(map(str, suite.train.seq_lens)), ", ".join(map(str, suite.train.seeds))])
        _emit([("", ["preset", "compared with", "paper's iterations", "iterations here", "cells", "T", "seeds"],
                rows)], args.format)
        return 0
    from harness.suites import Mode

    args.suite = str(presets[check_choice("preset", args.suite, sorted(presets), "presets")])
    if args.from_results:
        run = _read_results_file(args.from_results)
        if run.suite.reproduce is None or run.suite.name != suites.load(args.suite).name:
            raise HarnessError(f"{args.from_results} is not a run of preset {args.suite!r} (its suite is "
                               f"{run.suite.name!r})")
        _print_verdicts(run, args.format, suites.load(args.suite).reproduce)  # judged by the preset as it is now
        return 0
    # json, csv and markdown print the verdicts alone: one document on stdout for a script
    return _run_and_record(args, Mode.TRAIN, then=lambda run: _print_verdicts(run, args.format),
                           summary=args.format == "table")


def _print_verdicts(run, fmt: str, preset=None) -> None:
    """The verdicts of ``preset`` (default: the run's own), as a table (or Markdown, or records for json
    and csv) on stdout."""
    from harness.report import outcome_tables
    from harness.report.console import table

    headers, rows = outcome_tables.verdict_rows(run, preset)
    title = f"verdicts against {run.suite.reproduce.paper}"
    if fmt == "table":
        _print(table(headers, rows, title=title))
    else:
        _emit([(title, headers, rows)], fmt)


def cmd_record(args) -> int:

    from harness.errors import check_name
    from harness.record import asvdb

    if args.label is not None:
        check_name("label", args.label)
    _record_into_asv(_read_results_file(args.results_file), asvdb.load_config(results_dir=args.results_dir),
                     args.label, args.results_file)
    return 0


def _read_results_file(text: str):
    """A results file named on the command line, or a one-line error saying why it is not one."""
    from pathlib import Path

    from harness.record import files

    path = Path(text)
    if not path.is_file():
        raise HarnessError(f"no such results file: {path}")
    try:
        return files.read(path)
    except ValueError as exc:
        raise HarnessError(f"not a harness results file: {exc}") from None


def _record_into_asv(run, conf, label: str | None, source) -> None:
    """Add ``run`` to the asv database: whole, as Ctrl-C and SIGTERM wait until it is written
    (:func:`_interrupts_deferred`), then stop the command with exit 130."""
    from harness.record import asvdb

    try:
        with _interrupts_deferred():
            written = asvdb.record_run(run, conf, label=label)
    except asvdb.MalformedRun as exc:  # the file's fault, not the database's: the database is untouched
        raise HarnessError(f"malformed results file {source}: {exc}; the asv database was not changed") from None
    label = asvdb.label_for(run.provenance, label)
    commit = run.provenance["git"]["commit"]
    if label:
        where = f"under label {label!r} (kept out of the history graphs)"
    elif asvdb.on_followed_branch(conf, commit):
        where = f"as a history point of {', '.join(conf.branches)}"
    else:
        where = (f"for commit {commit[:8]}, which is on none of the branches the history graphs follow "
                 f"({', '.join(conf.branches)}), so no graph shows it (add its branch to asv.conf.json's "
                 f"\"branches\" to follow it; harness compare reads it as it is)")
    print(f"recorded into asv {where}: {', '.join(map(str, written))}")


def cmd_publish(args) -> int:
    from harness.record import asvdb
    from harness.report import site

    index = site.publish(asvdb.load_config(results_dir=args.results_dir))
    print(f"published {index.parent.parent / 'index.html'} (asv) and {index} (harness pages)")
    return 0


def cmd_preview(args) -> int:
    from harness.record import asvdb
    from harness.report import site

    site.serve(asvdb.load_config(results_dir=args.results_dir).html_dir, port=args.port)
    return 0


def cmd_compare(args) -> int:
    from harness.errors import check_choice
    from harness.record import asvdb
    from harness.report import compare

    for which, spec in (("before", args.before), ("after", args.after)):
        if not spec.strip():
            raise HarnessError(f"compare: {which} is empty; give a commit prefix or a label")
    for family in args.metrics or ():
        check_choice("--metrics family", family, compare.FAMILIES)
    return _compare(args, asvdb.load_config(results_dir=args.results_dir))


def _compare(args, conf) -> int:
    """Compare args.before with args.after in ``conf``'s results: print the changes, warn about timings a
    comparison cannot trust, and exit 1 on a significant regression."""
    from harness.report import compare
    from harness.suites import REGRESSION_TIMING

    results_dir = conf.results_dir
    changes = compare.compare(results_dir, args.before, args.after, factor=args.factor, normalize=not args.raw,
                              repo=conf.repo, machine=args.machine)
    if args.metrics:
        changes = [c for c in changes if compare.family_of(c) in args.metrics]
    if args.format == "json":
        print(json.dumps(compare.change_records(changes), indent=1))
    elif args.format == "markdown":
        from harness.report.console import markdown

        shown = [c for c in changes if c.mark in compare.CHANGED] if args.only_changed else changes
        print(markdown(compare.FLAT_HEADERS, compare.flat_rows(shown)))
    else:
        _print(compare.compare_report(changes, only_changed=args.only_changed, sort=args.sort))
    needed = REGRESSION_TIMING["rounds"]
    for spec in (args.before, args.after):
        rounds = compare.timing_rounds(results_dir, spec, conf.repo)
        if rounds is not None and rounds < needed:
            print(f"warning: {spec} was timed in {rounds} round(s); on a shared machine a comparison needs "
                  f"{needed} (harness run --regression), so its timing marks may be noise", file=sys.stderr)
        if compare.timed_beside(results_dir, spec, conf.repo):
            print(f"warning: {spec} was timed with untimed work beside its timings on the spare CPUs, which can "
                  f"slow a timing by a few percent (harness run --isolate or --regression: nothing beside)",
                  file=sys.stderr)
    regressions = sum(c.regression for c in changes)
    if regressions:
        print(f"{regressions} significant regression(s) from {args.before} to {args.after}", file=sys.stderr)
    return 1 if regressions else 0


def cmd_report(args) -> int:
    from pathlib import Path

    from harness.report import plots

    from harness.record import asvdb

    run = _read_results_file(args.results_file)
    try:
        asvdb.check_provenance(run.provenance)  # the plots' captions name its machine and commit
    except asvdb.MalformedRun as exc:
        raise HarnessError(f"not a harness results file: {args.results_file}: {exc}") from None
    path = Path(args.results_file)
    out = Path(args.out) if args.out else path.with_name(path.stem + "-report")
    print(f"wrote {plots.report(run, out)}")
    return 0


def cmd_continuous(args) -> int:
    """Run the suite at BEFORE and at AFTER, each in a worktree of its own (run/continuous.py), then
    compare them as harness compare does (exit 1 on a significant regression)."""
    from pathlib import Path

    from harness.errors import check_choice
    from harness.record import asvdb
    from harness.report import compare
    from harness.run import continuous

    for family in args.metrics or ():
        check_choice("--metrics family", family, compare.FAMILIES)
    conf = asvdb.load_config(results_dir=args.results_dir)
    commits = [continuous.resolve(".", ref) for ref in (args.before, args.after)]
    results_dir = str(Path(conf.results_dir).resolve())
    run_args = args.run_args or ["--regression"]
    for ref, commit in zip((args.before, args.after), commits):
        print(f"continuous: {args.suite} at {ref} ({commit[:12]})", file=sys.stderr)
        with continuous.worktree(".", commit) as checkout:
            status = continuous.run_side(checkout, args.suite, results_dir, run_args)
        if status not in (0, 1):  # 1: some points failed, recorded as such; compare shows them
            raise HarnessError(f"continuous: harness run at {ref} ({commit[:12]}) exited {status}")
    args.before, args.after = commits
    return _compare(args, conf)


def cmd_export(args) -> int:
    from pathlib import Path

    from harness.record import dataframe, files

    run = _read_results_file(args.results_file)
    fmt, out = ("csv", args.csv) if args.csv else ("parquet", args.parquet)
    existed = Path(out).exists()
    target = files.claim(Path(out), args.force, what="the export", option=f"--{fmt}")
    try:
        dataframe.export(run, target, fmt)
    except BaseException:
        if not existed:  # the empty file claim made
            target.unlink(missing_ok=True)
        raise
    print(f"wrote {len(run.points)} point(s) of {args.results_file} to {target} ({fmt})")
    return 0


def _check_target(args) -> tuple[str, str]:
    """(kind, name) of what ``harness check`` checks: ``--backend NAME``, ``--cell NAME``, or NAME,
    which must be exactly one installed backend or cell (else a one-line error)."""
    from harness.plugins import get_registry, not_loaded

    given = [(kind, name) for kind, name in (("name", args.name), ("backend", args.backend), ("cell", args.cell))
             if name is not None]
    if len(given) != 1:
        raise HarnessError("name one thing to check: harness check NAME, or --backend NAME, or --cell NAME")
    kind, name = given[0]
    registry = get_registry()
    if kind == "backend":
        registry.backend_class(name)
        return kind, name
    if kind == "cell":
        registry.cell_class(name)
        return kind, name
    is_backend, is_cell = name in registry.backends, name in registry.cells
    if is_backend and is_cell:
        raise HarnessError(f"{name!r} is both a backend and a cell ({registry.cell_origin(name)}); say which: "
                           f"harness check --backend {name}, or harness check --cell {name}")
    if is_backend or is_cell:
        return ("backend" if is_backend else "cell"), name
    rejected = f"; {registry.rejected_cells[name]}" if name in registry.rejected_cells else ""
    raise HarnessError(f"unknown backend or cell {name!r}; installed backends: {', '.join(registry.backends)}; "
                       f"known cells: {', '.join(registry.cells)}{rejected}{not_loaded()}")


def cmd_check(args) -> int:
    from harness.errors import check_choice
    from harness.plugins import get_registry

    kind, name = _check_target(args)
    registry = get_registry()
    if kind == "cell":
        from harness.report.console import cell_check_report
        from harness.testing import check_cell_plugin

        if args.cells:
            raise HarnessError(f"--cells applies to a backend check; {name!r} is a cell (use --backends to choose "
                               f"which backends to check it on)")
        cls = registry.cell_class(name)
        claimed = [b for b, bcls in registry.backends.items() if name in bcls.cell_names()]
        for backend in args.backends or ():
            check_choice("backend", backend, claimed, f"backends that run cell {name}")
        for dtype in args.dtypes or ():
            check_choice("dtype", dtype, ("float32", "float64"))
        report = _checked(kind, check_cell_plugin, cls, args.backends, args.dtypes, args.timeout)
        if report is None:
            return 1
        print(cell_check_report(report))
        return 0 if report.passed else 1

    from harness.report.console import check_report
    from harness.testing import check_backend

    if args.backends:
        raise HarnessError(f"--backends applies to a cell check; {name!r} is a backend (use --cells to choose "
                           f"which of its cells to check)")
    cls = registry.backend_class(name)
    for cell in args.cells or ():
        check_choice("cell", cell, cls.cell_names(), f"cells {name} runs")
    for dtype in args.dtypes or ():
        check_choice("dtype", dtype, cls.dtypes)
    report = _checked(kind, check_backend, cls, args.cells, args.dtypes, args.timeout)
    if report is None:
        return 1
    print(check_report(report))
    if report.availability:  # nothing was checked: a skip (as harness run skips it), not a failure
        return 0
    return 0 if report.passed else 1


def _checked(kind: str, check, cls: type, members: list[str] | None, dtypes: list[str] | None, timeout: float):
    """``check(cls, members, dtypes)`` (testing.check_backend or check_cell_plugin) in a process of its
    own: a plugin that crashes, exhausts memory or hangs fails the check with one line saying so
    (None), and the CLI goes on."""
    from harness.run.processes import ChildFailed, in_child

    try:
        return in_child(check, cls, members, dtypes, timeout=timeout)
    except ChildFailed as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        print(f"{kind} {cls.name}: FAILED: the check did not finish: {lines[-1] if lines else exc}", file=sys.stderr)
        return None


def cmd_new_backend(args) -> int:
    from harness.scaffold import new_backend

    root = new_backend(args.name, args.dir)
    print(f"wrote {root}\nnext: pip install -e {root} && harness check {args.name}")
    return 0


def cmd_new_cell(args) -> int:
    from harness.scaffold import new_cell

    root = new_cell(args.name, args.dir)
    print(f"wrote {root}\nnext: pip install -e {root} && harness check {args.name}")
    return 0


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """The options `harness train` and `harness reproduce` add to the grid's."""
    p.add_argument("--iterations", type=_positive("--iterations", int), help="training iterations (default: [train])")
    p.add_argument("--seeds", type=_csv("--seeds", int, minimum=0), help="seeds, e.g. 0,1,2 (default: [train] seeds)")
    p.add_argument("--clip", type=_csv("--clip", float),
                   help="gradient clipping thresholds, 0 = off; several make an axis, e.g. 0,1 (default: [train])")
    p.add_argument("--share-cpus", action="store_true",
                   help="with --executor dask: let training points run side by side on a machine (more "
                        "throughput; their iteration times then share the CPUs)")


def _add_grid_options(p: argparse.ArgumentParser, seq_lens: str, mode: str = "run") -> None:
    """The options `harness run`, `harness train` and `harness reproduce` (``mode``) share: the grid,
    where results go, output. For reproduce the positional names a preset (optional)."""
    if mode == "reproduce":
        p.add_argument("suite", nargs="?", metavar="PRESET", help="a preset's name (harness reproduce --list)")
    else:
        p.add_argument("suite", help="a suite folder (suites/long_range) or a suite name (long_range)"
                       ).complete = COMPLETE_SUITES
    p.add_argument("--backends", default="all" if mode == "run" else None,
                   help="'all' or a comma-separated list (default: " + ("all" if mode == "run" else
                                                                         "the suite's [train] backends, else all")
                        + ")").complete = COMPLETE_BACKENDS
    p.add_argument("--cells", type=_csv("--cells"), help="override the suite's cells, e.g. lstm,gru")
    p.add_argument("--seq-lens", type=_csv("--seq-lens", int), help=f"override {seq_lens}, e.g. 100,200")
    p.add_argument("--hidden", type=_csv("--hidden", int), help="override the hidden sizes H, e.g. 128,512: an axis")
    p.add_argument("--inits", type=_csv("--inits"),
                   help="override the initialisations, e.g. default,orthogonal=1.5,forget_bias=1: an axis "
                        "(docs/metrics.md, 'Initialisations')")
    p.add_argument("--threads", type=_positive("--threads", int),
                   help="threads for BLAS, numba and torch (default: the suite's); at most the CPU count")
    p.add_argument("--oversubscribe", action="store_true",
                   help="allow --threads above this machine's CPU count (the threads then share the CPUs)")
    _add_results_dir(p)
    p.add_argument("--output", help="results file, a new path (default: RESULTS_DIR/runs/SUITE-TIMESTAMP.json)")
    p.add_argument("--force", action="store_true", help="let --output replace an existing results file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="the summary on stdout: a table (default), one record per point as json or csv, or the "
                        "table as markdown; the other lines go to stderr with json and csv")
    p.add_argument("--columns", choices=("summary", "all"), default="summary",
                   help="summary (default): forward + backward per cell x T and backend, 100 columns wide; all: "
                        "one row per point with every metric")
    p.add_argument("--label", help="record into asv under this label, outside the history graphs "
                                   "(default: a label only for a dirty or untracked tree)")
    p.add_argument("--no-asv", action="store_true", help="write the results file only, not the asv database")
    p.add_argument("--memory-limit", type=_bytes, help="cap each worker's memory (address space), e.g. 8G; a "
                                                       "point that needs more fails with that reason")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: this machine, one point at a time; dask: a Dask cluster (docs/cluster.md)")
    p.add_argument("--scheduler", help="with --executor dask: an existing cluster's scheduler, tcp://HOST:PORT "
                                       "(default: start a local cluster)")
    p.add_argument("--workers", type=_positive("--workers", int),
                   help="with --executor dask and no --scheduler: the local cluster's worker processes (default 2)")


def _bytes(text: str) -> int:
    """A size such as 512M or 8G (binary units), in bytes."""
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)([KMGT]?)", text.strip().upper())
    value = float(match[1]) * 1024 ** " KMGT".index(match[2] or " ") if match else 0.0
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"--memory-limit must be a size like 512M or 8G, got {text!r}")
    return int(value)


def _add_compare_options(p: argparse.ArgumentParser, sides: str) -> None:
    """The arguments `harness compare` and `harness continuous` share: the two sides (``sides`` says
    what each may be), what to compare and how to show it."""
    p.add_argument("before", help=f"the side before: {sides}")
    p.add_argument("after", help=f"the side after: {sides}")
    p.add_argument("--metrics", type=_csv("--metrics"),
                   help="only these measurement families, e.g. time (gate CI on timings only): time, memory, "
                        "gradient, compile, train")
    p.add_argument("--format", choices=("table", "json", "markdown"), default="table",
                   help="table (default), one record per point as json, or the table as markdown")
    p.add_argument("--sort", choices=("ratio", "point"), default="ratio",
                   help="order each benchmark's rows by the judged ratio, worst first (default), or by point")
    p.add_argument("--machine", help="compare only this machine's results (where several recorded A and B)")
    p.add_argument("--factor", type=_positive("--factor"), default=1.1,
                   help="ratio that counts as a change (default: 1.1)")
    p.add_argument("--raw", action="store_true",
                   help="judge timings in seconds, not in units of the machine probe timed beside them")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--only-changed", dest="only_changed", action="store_true", default=True,
                       help="show only significant changes (the default)")
    shown.add_argument("--all", dest="only_changed", action="store_false", help="show every benchmark point")
    _add_results_dir(p)


def _add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", help="results database folder (default: asv.conf.json's results_dir, "
                                              "else results)")


#: Every environment variable the harness reads (docs/user-guide.md, "Environment variables").
ENVIRONMENT = """environment variables:
  HARNESS_MACHINE          the machine's name in results and asv (default: the host name)
  HARNESS_CACHE_DIR        where the machine's roof and GEMM rates are kept (default: ~/.cache/harness)
  HARNESS_REMEASURE_PEAK   1: measure the roof again (as --remeasure-peak)
  HARNESS_SUITES_PATH      more folders to find suites in (os.pathsep-separated)
  HARNESS_DISABLE_PLUGINS  plugins not to load, by entry-point name (comma-separated)
  HARNESS_NUMBA_BLAS       the numba backend's GEMM engine: auto (default), tiles, mkl, openblas, np.dot"""


#: Shell functions the completion script calls for suite and backend names (the installed ones, asked
#: of harness itself when the user presses TAB), by shell.
_NAMES = """
_harness_suite_names() { harness suites --format csv 2>/dev/null | tail -n +2 | cut -d, -f1; }
_harness_backend_names() {
  echo all; harness plugins --format csv 2>/dev/null | sed -n 's/^ *backend \\([^,]*\\),.*/\\1/p'
}
"""
COMPLETION_PREAMBLE = {
    "bash": _NAMES + """
_harness_suites() { compgen -W "$(_harness_suite_names)" -- "$1"; }
_harness_backends() { compgen -W "$(_harness_backend_names)" -- "$1"; }
""",
    "zsh": _NAMES + """
_harness_suites() { compadd -- ${(f)"$(_harness_suite_names)"}; }
_harness_backends() { compadd -- ${(f)"$(_harness_backend_names)"}; }
""",
}
COMPLETE_SUITES = {"bash": "_harness_suites", "zsh": "_harness_suites"}
COMPLETE_BACKENDS = {"bash": "_harness_backends", "zsh": "_harness_backends"}


def cmd_completion(args) -> int:
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell, preamble=COMPLETION_PREAMBLE[args.shell]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness", description="Benchmark gradient behaviour, speed and memory of recurrent layers.",
        epilog=ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("plugins", help="list plugins, their backends, tasks and cells, and availability",
                       description="List every plugin (including failed and disabled ones), its "
                                   "distribution, backends, tasks and cells, whether each backend can run here "
                                   "and which backends run each cell.")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default), json (every listing), csv (the plugins) or markdown")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("suites", help="list the suites", description="List the suites found by name.")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default), json (every listing), csv (the suites) or markdown")
    p.set_defaults(func=cmd_suites)

    p = sub.add_parser("run", help="run a suite on backends",
                       description="Run a suite's grid (cell x sequence length) on each backend and record "
                                   "speed, memory and gradient behaviour.")
    _add_grid_options(p, "the sequence lengths")
    p.add_argument("--repeat", type=_positive("--repeat", int),
                   help="exactly this many timed blocks, over all rounds (disables the adaptive stop)")
    p.add_argument("--batch", type=_csv("--batch", int), help="override the batch sizes B, e.g. 1,64: an axis")
    p.add_argument("--budget", type=_positive("--budget"),
                   help="seconds at most per timed measurement, over all rounds")
    p.add_argument("--rounds", type=_positive("--rounds", int),
                   help="passes over the grid that each take a share of every timing, in fresh workers "
                        "(default: the suite's, 1)")
    p.add_argument("--compile-repeat", type=_positive("--compile-repeat", int),
                   help="cold + warm compile-time samples per backend and cell, each in fresh workers "
                        "(default: the suite's, 1)")
    p.add_argument("--remeasure-peak", action="store_true",
                   help="measure this machine's roof and GEMM engines again instead of reading the cached one "
                        "(after a hardware or BLAS change the cache key does not see)")
    p.add_argument("--isolate", action="store_true", default=None,
                   help="run nothing beside the timings: the gradient profiles, memory peaks and spectra "
                        "wait until every timing is taken, instead of running on the CPUs the timings leave "
                        "free (slower; what --regression does)")
    p.add_argument("--time-exact", action="store_true", default=None,
                   help="also time the exact path, forward + backward with the total dL/ds_t of every step "
                        "(what a gradient profile costs), beside the timed forward + backward")
    p.add_argument("--regression", action="store_true",
                   help="regression-grade timing, what harness compare needs on a shared machine: "
                        "--rounds 8 --repeat 32 --compile-repeat 3 --isolate (explicit options win)")
    p.add_argument("--timeout", type=_positive("--timeout"),
                   help="seconds per grid point before it is recorded as failed")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("train", help="train every cell on a suite's task and record learning curves",
                       description="Train each cell at each sequence length of the suite's [train] table, on "
                                   "each backend and seed: learning curves, iterations to solve, gradient-profile "
                                   "snapshots and W_hh spectra while it learns, time per iteration.")
    _add_grid_options(p, "the [train] sequence lengths", "train")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("reproduce", help="run a published experiment's preset and give each result its verdict",
                       description="Train a preset of suites/reproduce/ (a paper's protocol: optimizer, clipping, "
                                   "batch, task variant) and compare with the paper's reported results: "
                                   "'reproduced', 'not reproduced' or 'budget-limited', with why. --list shows the "
                                   "presets; --from RESULTS judges a results file of a preset without training.")
    _add_grid_options(p, "the preset's [train] sequence lengths", "reproduce")
    _add_train_options(p)
    p.add_argument("--list", action="store_true", help="list the presets and the papers they follow")
    p.add_argument("--from", dest="from_results", metavar="RESULTS",
                   help="judge this results file of the preset instead of training")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("record", help="record a finished results file into the asv database",
                       description="Add a results file (harness run or harness train) to the asv database, as "
                                   "the run itself would have: for a run recorded with --no-asv, or whose "
                                   "recording failed.")
    p.add_argument("results_file", help="a results file written by harness run or harness train")
    p.add_argument("--label", help="record under this label, outside the history graphs")
    _add_results_dir(p)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("check", help="check a backend, or a cell plugin, against the float64 reference",
                       description="harness check BACKEND: check a backend on seeded shapes (edge cases B=1, "
                                   "T=1, H=1 included) for each cell and dtype it runs: output shapes and dtypes, "
                                   "states, all gradients and the per-step gradient of every state against the "
                                   "float64 reference (the hand-written NumPy one for the classic cells, the one "
                                   "derived from the cell's step for the others), untouched inputs, deterministic "
                                   "repeats, training. harness check CELL: check a cell plugin: its declaration, "
                                   "every init, the derived float64 gradients against central finite differences "
                                   "(T, B, I, H = 5, 2, 3, 4; eps 1e-6; 1e-6 of the largest entry + 1e-9), then "
                                   "every installed backend that runs the cell with the backend checks (an "
                                   "unavailable backend is skipped). Exits 1 on failure.")
    p.add_argument("name", nargs="?", help="an installed backend or cell (see harness plugins)")
    p.add_argument("--backend", help="check this backend (when a backend and a cell share NAME)")
    p.add_argument("--cell", help="check this cell plugin (when a backend and a cell share NAME)")
    p.add_argument("--cells", type=_csv("--cells"), help="a backend check: only these of its cells")
    p.add_argument("--backends", type=_csv("--backends"),
                   help="a cell check: only these of the backends that run it (default: all installed)")
    p.add_argument("--dtypes", type=_csv("--dtypes"), help="only these dtypes")
    p.add_argument("--timeout", type=_positive("--timeout"), default=1800.0,
                   help="seconds before a hanging check is stopped and failed (default 1800); the check runs "
                        "in a process of its own, so a plugin that crashes or hangs fails it with the reason")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("new-backend", help="write a ready, installable backend plugin package",
                       description="Write harness-NAME/: a pip-installable plugin with the entry point, a "
                                   "backend delegating to the NumPy reference and a conformance test.")
    p.add_argument("name", help="backend name, e.g. my-kernel")
    p.add_argument("--dir", default=".", help="where to create harness-NAME/ (default: .)")
    p.set_defaults(func=cmd_new_backend)

    p = sub.add_parser("new-cell", help="write a ready, installable cell plugin package",
                       description="Write harness-NAME/: a pip-installable cell plugin with the entry point, a "
                                   "leaky tanh RNN cell to start from and its tests (the checks of harness "
                                   "check NAME, as one pytest decorator). NAME must be new: not an installed cell.")
    p.add_argument("name", help="cell name, e.g. my_cell: lower-case letters, digits and '_'")
    p.add_argument("--dir", default=".", help="where to create harness-NAME/ (default: .)")
    p.set_defaults(func=cmd_new_cell)

    p = sub.add_parser("publish", help="build the HTML site: asv's history plus gradient/speed/memory pages",
                       description="Run asv publish on the results database, then write the harness's own "
                                   "pages (gradient-norm curves, decay rate, time and memory against T).")
    _add_results_dir(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("preview", help="serve the published site on localhost",
                       description="Serve the published HTML directory on http://127.0.0.1:PORT/.")
    _add_results_dir(p)
    p.add_argument("--port", type=_port, default=8080, help="port (default: 8080; 0 picks a free one)")
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("compare", help="significant changes between two commits or labels",
                       description="Compare every benchmark point between two commits (prefixes) or labels with "
                                   "asv's statistics on the stored samples: + a significant regression, - an "
                                   "improvement, ! newly failed, ~ a ratio beyond the factor within the noise. "
                                   "Timings are judged in units of the machine probe timed beside them. "
                                   "Exits 1 when a significant regression is found (for CI).")
    _add_compare_options(p, "commit prefix, git ref (main, HEAD~1, a tag) or label")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("continuous", help="run a suite at two commits and compare them (asv continuous)",
                       description="Check out BEFORE and AFTER in worktrees of their own, run the suite in each "
                                   "(the worktree first on PYTHONPATH: its own code and suite file, this "
                                   "environment's dependencies), record both into this repository's asv "
                                   "database, and compare them as harness compare does. Exits 1 when a "
                                   "significant regression is found. Options after -- go to harness run on both "
                                   "sides (default: --regression), e.g. -- --backends numpy --regression.")
    _add_compare_options(p, "a commit: a branch, tag, HEAD~N or hash")
    p.add_argument("suite", help="a suite folder, relative to the repository (suites/long_range), or a name"
                   ).complete = COMPLETE_SUITES
    p.set_defaults(func=cmd_continuous, run_args=[])

    p = sub.add_parser("export", help="one results file as a CSV or Parquet table",
                       description="Write one flat row per point of a results file (the DataFrame's columns "
                                   "less the g_t curves) as CSV or Parquet, for a spreadsheet or a script.")
    p.add_argument("results_file", help="a results file written by harness run or harness train")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--csv", metavar="FILE", help="write CSV to FILE")
    where.add_argument("--parquet", metavar="FILE", help="write Parquet to FILE (needs pyarrow or fastparquet)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("completion", help="print a shell completion script",
                       description="Print the completion script of a shell for the commands, their options, the "
                                   "suites and the backends, e.g. in ~/.bashrc: eval \"$(harness completion bash)\".")
    p.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    p.set_defaults(func=cmd_completion)

    p = sub.add_parser("report", help="plots of one results file, without asv",
                       description="Draw the gradient, decay-rate, time and memory plots of one results file "
                                   "into a folder with an index.html.")
    p.add_argument("results_file", help="a results file written by harness run")
    p.add_argument("--out", help="output folder (default: next to the file, NAME-report)")
    p.set_defaults(func=cmd_report)
    return parser


def _terminated(signum, frame):
    """SIGTERM stops a run as Ctrl-C does: finished points kept, the file marked interrupted."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (a write that must be whole), then interrupt
    as they would have (KeyboardInterrupt: exit 130). Python runs signal handlers in the main thread
    only, so the block runs there undisturbed whichever thread the signal reached."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    before = {signum: signal.signal(signum, lambda number, frame: pending.append(number))
              for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    if pending:
        raise KeyboardInterrupt


def _exit_interrupted(signum, frame) -> None:
    """After the command is done, an interrupt has nothing left to stop or keep: exit 130 at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def entry() -> int:
    """The console script and ``python -m harness``: :func:`main`, with an interrupt at any instant
    ending the command with exit 130 (SIGTERM's default would give 143)."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        return main()
    finally:
        signal.signal(signal.SIGTERM, _exit_interrupted)
        signal.signal(signal.SIGINT, _exit_interrupted)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    passed: list[str] = []  # `harness continuous ... -- RUN_OPTIONS`: harness run's, not ours
    if argv[:1] == ["continuous"] and "--" in argv:
        argv, passed = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if args.func is cmd_continuous:
        args.run_args = passed
    signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `harness ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's recipe: no error at exit
        return 0
    except OSError as exc:  # a full disk, a read-only folder, a path that is a folder: one line, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"harness: error: {exc.strerror or message(exc)}{where}", file=sys.stderr)
        return 2
