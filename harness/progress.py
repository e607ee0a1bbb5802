"""A dependency-free progress bar over the grid, redrawn in place on a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, width: int = 28):
        self.total, self.done, self.width = total, 0, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()

    def _line(self, label: str) -> str:
        filled = int(self.width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.started
        return f"[{bar}] {self.done}/{self.total} {elapsed:5.0f}s  {label}"

    def show(self, label: str) -> None:
        """Show the cell now running (in place on a terminal; silent otherwise, see :meth:`advance`)."""
        if self.tty:
            self.stream.write("\r\033[K" + self._line(label))
            self.stream.flush()

    def advance(self, label: str) -> None:
        self.done += 1
        if self.tty:
            self.show(label)
        else:
            self.stream.write(self._line(label) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
