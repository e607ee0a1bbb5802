"""Terminal output through rich: the progress bar over a grid, and every table the CLI prints.

On a terminal the progress bar redraws in place with the point now running and an ETA; when the
output is a file or a pipe it prints one plain line per finished point instead.
"""
from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from rich import box
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from harness.report import outcome_tables
from harness.suites import Mode, Suite, axis_values

if TYPE_CHECKING:
    from harness.record.results import PointResult, RunResults

#: Width of tables written to a file or pipe, where there is no terminal to measure.
FILE_WIDTH = 250


class Job(Protocol):
    """What the progress bar reads of the point a worker runs (a ``harness.run.grid.PointJob``: the
    running layer hands it in, this layer below it does not import it)."""

    suite: Suite

    def label(self) -> str: ...


class ConformanceReport(Protocol):
    """What :func:`check_report` reads of ``harness check``'s result (a ``harness.testing.Report``,
    defined in the application layer above this one)."""

    backend: str
    availability: str
    results: Sequence[Any]  # harness.testing.CheckResult

    @property
    def tolerances(self) -> Mapping[str, float]: ...


class CellConformanceReport(Protocol):
    """What :func:`cell_check_report` reads of ``harness check CELL``'s result (a
    ``harness.testing.CellReport``): the cell's own checks, then a backend report per backend."""

    cell: str
    origin: str
    results: Sequence[Any]  # harness.testing.CellCheckResult
    backends: Sequence[ConformanceReport]
    note: str

    @property
    def passed(self) -> bool: ...

    @property
    def skipped(self) -> Sequence[str]: ...

    @property
    def tolerances(self) -> Mapping[str, float]: ...


def console(stream: TextIO | None = None) -> Console:
    """A rich console on ``stream`` (stdout by default); wide and plain when it is not a terminal."""
    stream = stream or sys.stdout
    terminal = stream.isatty()
    return Console(file=stream, width=None if terminal else FILE_WIDTH, highlight=False,
                   force_terminal=None if terminal else False, soft_wrap=not terminal)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = (),
          title: str | None = None) -> Table:
    """A table with one header row; the columns numbered in ``right`` are right-aligned. Cells are text,
    never rich markup: "[the standard initialization]" in a quote, or a name from a shared results
    file, prints as written."""
    right = set(right)
    out = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, show_edge=False,
                collapse_padding=True)
    for i, header in enumerate(headers):
        out.add_column(header, justify="right" if i in right else "left", overflow="fold")
    for row in rows:
        out.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row))
    return out


def render(renderable, width: int = FILE_WIDTH) -> str:
    """What ``renderable`` prints, as plain text (for tests and files)."""
    import io

    buffer = io.StringIO()
    Console(file=buffer, width=width, force_terminal=False, highlight=False).print(renderable)
    return buffer.getvalue()


def _num(value: float | int | None, scale: float = 1.0, fmt: str = "{:.3g}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value * scale)


#: The width the default summary of `harness run` fits (a terminal, a CI log, a pull request).
SUMMARY_WIDTH = 100


def summary(run: RunResults, columns: str = "summary") -> Table | Group:
    """What `harness run` or `harness train` prints at the end: for a run the pivot that fits
    :data:`SUMMARY_WIDTH` columns (:func:`run_pivot`), or with ``columns`` "all" one row per point
    with every metric (:func:`run_summary`); for training one row per point."""
    if run.mode == Mode.TRAIN:
        return training_summary(run)
    return run_summary(run) if columns == "all" else run_pivot(run)


def _fits(line: str, width: int = SUMMARY_WIDTH) -> str:
    return textwrap.shorten(line, width, placeholder=" ...")


def run_pivot(run: RunResults) -> Group:
    """Forward + backward time (median ms) with rows cell x T (x the grid's other axes) and a column per
    backend that ran, as torch.utils.benchmark's Compare shows a sweep; beside it the gradient's decay
    rate and the one the Lyapunov exponents predict (float64 explanations, the same for every backend:
    the first backend's measured rate is shown). Under it, one line per backend that ran none of a
    cell's points (with the reason) and one per distinct note (failures, busy machine), each cut to
    :data:`SUMMARY_WIDTH` columns: the whole per-point table is ``--columns all``."""
    from rich.text import Text

    headers, body, lines = pivot(run)
    return Group(table(headers, body, right=range(1, len(headers)), title=PIVOT_TITLE),
                 *(Text(line, no_wrap=True) for line in lines))


PIVOT_TITLE = "forward + backward, median ms per backend"


def _timed_exact(run: RunResults) -> bool:
    """Whether the run timed the exact path (--time-exact): then tables show it beside forward + backward."""
    return any(p.time is not None and p.time.exact is not None for p in run.points)


def pivot(run: RunResults) -> tuple[list[str], list[list[str]], list[str]]:
    """:func:`run_pivot`'s headers, rows and the lines under it, as text (for every output format)."""
    from harness.record.results import FAILED, OK, SKIPPED

    axes = grid_axes(run)
    ran = [b for b in dict.fromkeys(p.backend for p in run.points) if any(
        p.backend == b and p.status != SKIPPED for p in run.points)]
    rows: dict[tuple, dict[str, Any]] = {}
    for p in run.points:
        row = rows.setdefault((p.cell, p.seq_len, *axis_values(p, axes)), {})
        if p.status == OK and p.time is not None:
            row[p.backend] = _num(p.time.forward_backward.median, 1e3)
            if p.time.exact is not None:
                row[p.backend] += " / " + _num(p.time.exact.median, 1e3)
        elif p.status == FAILED:
            row[p.backend] = "failed"
        if p.status == OK and p.gradient is not None and "decay" not in row:
            row["decay"], row["predicted"] = p.gradient.decay_rate, _predicted(p.gradient)
    explained = any("decay" in row for row in rows.values())  # a run that measured gradients
    named = [f"{b} / exact" for b in ran] if _timed_exact(run) else ran  # "113 / 254": fwd+bwd / the exact path
    headers = ["cell", "T", *axes, *named, *(["decay/step", "predicted"] if explained else [])]
    body = [[cell, str(T), *rest, *(row.get(b, "-") for b in ran),
             *([_num(row.get("decay"), 1, "{:.2e}"), _num(row.get("predicted"), 1, "{:.2e}")] if explained else [])]
            for (cell, T, *rest), row in rows.items()]
    lines = []
    unrun: dict[tuple[str, str], list[str]] = {}
    for p in run.points:
        cells = unrun.setdefault((p.backend, p.reason), [])
        if p.status == SKIPPED and p.cell not in cells and not any(
                q.backend == p.backend and q.cell == p.cell and q.status != SKIPPED for q in run.points):
            cells.append(p.cell)
    for (backend, reason), cells in unrun.items():
        if cells:
            first = reason.strip().splitlines()[0] if reason.strip() else "skipped"
            lines.append(_fits(f"{backend}: skipped for {', '.join(cells)}: {first}"))
    notes: dict[str, list[str]] = {}
    for p in run.points:
        if p.status != SKIPPED and p.note:
            notes.setdefault(p.note, []).append(f"{p.backend} {p.cell} T={p.seq_len}")
    for note, where in notes.items():
        lines.append(_fits(f"{f'{len(where)} points' if len(where) > 1 else where[0]}: {note}"))
    return headers, body, lines


def markdown(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (a ``|`` inside a cell escaped)."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *map(line, rows)])


def grid_axes(run: RunResults) -> tuple[str, ...]:
    """The axes this run varies besides backend, cell and T ("H", "B", "init"): the columns a table
    adds after T."""
    return run.suite.axes(run.mode)


def summary_text(run: RunResults, columns: str = "summary") -> tuple[list[str], list[list[str]], list[str]]:
    """:func:`summary`'s headers, rows and the lines under it, as text (``--format markdown``)."""
    if run.mode != Mode.TRAIN and columns != "all":
        return pivot(run)
    headers, rows = training_rows(run) if run.mode == Mode.TRAIN else point_rows(run)
    return headers, rows, []


def training_summary(run: RunResults) -> Group:
    """One row per training point (final eval loss / baseline, when it was solved, iteration times),
    then the outcomes over seeds per setting and the paired differences (report/outcome_tables.py)."""
    headers, rows = training_rows(run)
    shown: list = [table(headers, rows, right=range(2, len(headers) - 1))]
    for extra in outcome_tables.tables(run):
        shown += ["", extra["title"], table(extra["headers"], extra["rows"])]
    return Group(*shown)


def training_rows(run: RunResults) -> tuple[list[str], list[list[str]]]:
    """:func:`training_summary`'s headers and rows, as text."""
    axes = grid_axes(run)
    headers = ["backend", "cell", "T", *axes, "seed", "status", "iterations", "eval/baseline", "solved at", "clipped %",
               "it ms",
               "backend %", "it / fwd+bwd", "note"]
    rows = []
    for p in run.points:
        t = p.training
        times = t.times if t else None
        rows.append([
            p.backend, p.cell, str(p.seq_len), *axis_values(p, axes), _num(p.seed, 1, "{:d}"), p.status,
            _num(t.iterations if t else None, 1, "{:d}"),
            _num(t.final_ratio if t and t.eval_loss else None, 1, "{:.3f}"),
            _num(t.solved_at if t else None, 1, "{:d}"),
            _num(t.clipped_fraction if t else None, 100, "{:.0f}"),
            _num(times.iteration_s if times else None, 1e3),
            _num(times.backend_s / times.iteration_s if times else None, 100, "{:.0f}"),
            _num(times.iteration_s / times.fwd_bwd_s if times else None, 1, "{:.2f}"),
            p.note[:60],
        ])
    return headers, rows


def _predicted(grad) -> float | None:
    """The decay rate the top Lyapunov exponent predicts, else the closed form (lru, indrnn), else None."""
    if grad is None:
        return None
    return grad.predicted_decay_rate if grad.predicted_decay_rate is not None else grad.closed_form_decay_rate


def _reach(grad) -> str:
    """The horizon column: how far back the gradient reaches (DecayMetrics.reach), marked "grows"
    where growth, not vanishing, cut it short."""
    if grad is None or grad.reach is None:
        return "-"
    grows = grad.growth_horizon is not None and grad.growth_horizon <= (grad.horizon or 0)
    return f"{grad.reach} grows" if grows else str(grad.reach)


def run_summary(run: RunResults) -> Table:
    """One row per grid point: status, median times, peak memory, gradient metrics, loss vs baseline."""
    headers, rows = point_rows(run)
    return table(headers, rows, right=range(2, len(headers) - 1))


def point_rows(run: RunResults) -> tuple[list[str], list[list[str]]]:
    """:func:`run_summary`'s headers and rows, as text."""
    axes = grid_axes(run)
    exact = _timed_exact(run)
    headers = ["backend", "cell", "T", *axes, "status", "fwd ms", "fwd+bwd ms", *(["exact ms"] if exact else []),
               "IQR %", "GFLOP/s", "% peak", "peak MiB", "decay/step", "predicted", "horizon", "loss/baseline", "note"]
    rows = []
    for p in run.points:
        t, mem, grad, loss = p.time, p.memory, p.gradient, p.loss
        fb = t.forward_backward if t else None
        rows.append([
            p.backend, p.cell, str(p.seq_len), *axis_values(p, axes), p.status,
            _num(t.forward.median if t else None, 1e3),
            _num(fb.median if fb else None, 1e3),
            *([_num(t.exact.median if t and t.exact else None, 1e3)] if exact else []),
            _num(fb.relative_iqr if fb else None, 100, "{:.1f}"),
            _num(p.gflops(), 1, "{:.3g}"),
            _num(run.peak_fraction(p), 100, "{:.1f}"),
            _num(mem.peak_bytes if mem else None, 1 / 2**20, "{:.2f}"),
            _num(grad.decay_rate if grad else None, 1, "{:.2e}"),
            _num(_predicted(grad), 1, "{:.2e}"),
            _reach(grad),
            _num(loss.init / loss.baseline if loss else None, 1, "{:.2f}"),
            p.note[:60],
        ])
    return headers, rows


def _short(note: str, width: int = 100) -> str:
    """A point's note on one progress line: its first line, cut at a word with an ellipsis."""
    return textwrap.shorten(note.splitlines()[0] if note else "", width, placeholder=" ...")


class GridProgress:
    """Progress over the points of a run (a ``run.observer.RunObserver``): a live rich bar on a
    terminal, plain lines otherwise, nothing when not ``enabled``."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.total, self.done, self.enabled, self.axes = 0, 0, enabled, ()
        self._console = Console(file=stream or sys.stderr, highlight=False)
        self._live = enabled and self._console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=self._console, transient=False,
        ) if self._live else None
        self._task = None

    def begin(self, total: int, axes: tuple[str, ...]) -> None:
        """``total`` steps; ``axes`` (besides cell and T) name a point on its line."""
        self.total, self.axes = total, axes
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("starting", total=self.total)

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, job: Job | None) -> None:
        """Show the point a worker is running now (``None``: the backend is done)."""
        if self._progress is not None and job is not None:
            self._progress.update(self._task, description=f"running {job.label()}")

    def progress(self, job: Job, partial: PointResult) -> None:
        """Show how far the running training point is: iteration and eval loss / baseline."""
        training = partial.training
        if self._progress is not None and training is not None:
            self._progress.update(self._task, description=(
                f"training {job.label()}: iteration {training.eval_iterations[-1]}/{job.suite.train.iterations}, "
                f"eval loss / baseline {training.final_ratio:.3f}"))

    def note(self, what: str) -> None:
        """Say what the run is doing between points (building problems, say)."""
        if self._progress is not None:
            self._progress.update(self._task, description=what)
        elif self.enabled:
            self._console.print(what, markup=False, soft_wrap=True)

    def add(self, count: int) -> None:
        """``count`` more steps than planned (a later timing round)."""
        self.total += count
        if self._progress is not None:
            self._progress.update(self._task, total=self.total)

    def advance(self, point: PointResult, what: str = "") -> None:
        """Count a finished point (``what`` it was, when not the point's first measurement); without a
        terminal, print one line for it."""
        self.done += 1
        seed = f" seed {point.seed}" if point.seed is not None else ""
        what = f" {what}" if what else ""
        where = f" on {point.machine}" if point.machine else ""
        on_axes = "".join(f" {a}={v}" for a, v in zip(self.axes, axis_values(point, self.axes)))
        line = f"{point.backend} {point.cell} T={point.seq_len}{on_axes}{seed}{what}{where}: {point.status}"
        if point.note:
            line += f" ({_short(point.note)})"
        self._show(line, 1)

    def advance_all(self, points: list[PointResult]) -> None:
        """Count points that did not run, for one reason (a backend's cell skipped, say): one line."""
        if len(points) == 1:
            return self.advance(points[0])
        self.done += len(points)
        first, lengths = points[0], sorted({p.seq_len for p in points})
        line = f"{first.backend} {first.cell} T={lengths[0]}..{lengths[-1]} ({len(points)} points): {first.status}"
        if first.note:
            line += f" ({_short(first.note)})"
        self._show(line, len(points))

    def _show(self, line: str, steps: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, description=line)
        elif self.enabled:
            self._console.print(f"[{self.done}/{self.total}] {line}", markup=False, soft_wrap=True)


def check_report(report: ConformanceReport) -> str:
    """``harness check``'s output: one row per check, then the verdict."""
    if report.availability:
        return f"backend {report.backend!r}: skipped, unavailable here: {report.availability}"
    rows = [[r.cell, r.dtype, r.check, "pass" if r.passed else "FAIL", f"{r.error:.2e}", r.detail]
            for r in report.results]
    failed = sum(not r.passed for r in report.results)
    verdict = "all checks passed" if not failed else f"{failed} of {len(report.results)} checks FAILED"
    text = render(table(["cell", "dtype", "check", "result", "max error", "detail"], rows, right=(4,)))
    return f"{text}\n{report.backend}: {verdict} (tolerances: {report.tolerances})"


def cell_check_report(report: CellConformanceReport) -> str:
    """``harness check CELL``'s output: the cell's own checks (one row per init and check), then
    :func:`check_report` for each backend that claims the cell (skipped where unavailable), then the
    verdict."""
    rows = [[r.init, r.dtype, r.check, "pass" if r.passed else "FAIL", f"{r.error:.2e}", r.detail]
            for r in report.results]
    tol = report.tolerances
    parts = [f"cell {report.cell!r} from {report.origin}",
             render(table(["init", "dtype", "check", "result", "max error", "detail"], rows, right=(4,))),
             f"{report.cell}: derived float64 gradients against central finite differences (eps {tol['eps']:g}; "
             f"|derived - numeric| <= {tol['finite differences rtol']:g} x the largest entry + {tol['atol']:g})"]
    for backend in report.backends:
        if backend.availability:
            parts.append(f"backend {backend.backend!r}: skipped, unavailable here: {backend.availability}")
        else:
            parts.append(check_report(backend))
    if report.note:
        parts.append(report.note)
    own = sum(not r.passed for r in report.results)
    failed = [b.backend for b in report.backends if not b.availability and not all(r.passed for r in b.results)]
    checked = [b.backend for b in report.backends if not b.availability]
    if report.passed:
        verdict = "all checks passed"
    else:
        verdict = " and ".join(
            ([f"{own} of {len(report.results)} cell checks FAILED"] if own else [])
            + ([f"backend(s) {', '.join(failed)} FAILED"] if failed else []))
    backends = f"backends checked: {', '.join(checked) or 'none'}"
    if report.skipped:
        backends += f"; skipped (unavailable): {', '.join(report.skipped)}"
    parts.append(f"{report.cell}: {verdict} ({backends})")
    return "\n".join(parts)
