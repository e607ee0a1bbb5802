"""What the runner says while a run runs, to whoever listens: the CLI wires it to the rich progress bar
(``report.console.GridProgress``), a library caller to its own code or to nothing (:class:`Silent`).
Running and showing change apart: the runner knows this protocol, never the console."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.record.results import PointResult
    from harness.run.grid import PointJob


class RunObserver(Protocol):
    """The runner calls :meth:`begin` once, then the others as the run goes, then :meth:`end`
    (also when the run stops on an error or an interrupt)."""

    def begin(self, total: int, axes: tuple[str, ...]) -> None:
        """``total`` steps planned; ``axes``: the grid axes besides cell and T that name a point."""

    def end(self) -> None:
        """The run is over."""

    def add(self, count: int) -> None:
        """``count`` more steps than planned (a later timing round, the spectra)."""

    def start(self, job: PointJob | None) -> None:
        """A worker runs ``job`` now (``None``: nothing more of that backend)."""

    def progress(self, job: PointJob, partial: PointResult) -> None:
        """How far a running (training) point is."""

    def note(self, what: str) -> None:
        """What the run does between points (building problems, say)."""

    def advance(self, point: PointResult, what: str = "") -> None:
        """A step finished: ``point``'s record (``what`` it was, when not the point's first measurement)."""

    def advance_all(self, points: list[PointResult]) -> None:
        """Points that did not run, for one reason (a backend's cell skipped, say)."""


class Silent:
    """A :class:`RunObserver` that says nothing: ``run_suite``'s default."""

    def begin(self, total: int, axes: tuple[str, ...]) -> None:
        pass

    def end(self) -> None:
        pass

    def add(self, count: int) -> None:
        pass

    def start(self, job: PointJob | None) -> None:
        pass

    def progress(self, job: PointJob, partial: PointResult) -> None:
        pass

    def note(self, what: str) -> None:
        pass

    def advance(self, point: PointResult, what: str = "") -> None:
        pass

    def advance_all(self, points: list[PointResult]) -> None:
        pass
