"""Results files on disk: written atomically (readers see the old or the new file, never half of
one, and a crash leaves no partial file), read strictly through record/codec.py. A path ending in
``.gz`` is gzip-compressed JSON (a long training's curves shrink about fourfold), written and read
the same way."""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.record.codec import encode, from_json, to_json
from harness.record.results import ResultsFormatError, RunResults


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a results file gets the user's usual mode
    try:
        with os.fdopen(fd, "wb") as raw:
            text = json.dumps(encode(data), indent=1, allow_nan=False).encode()
            if path.suffix == ".gz":
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed:  # closes itself, not raw
                    compressed.write(text)
            else:
                raw.write(text)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(path: str | os.PathLike, run: RunResults) -> None:
    """Write a results file atomically: readers see the old or the new file, never half of one."""
    write_json_atomic(path, to_json(run))


def read(path: str | os.PathLike) -> RunResults:
    """A results file as a :class:`RunResults`; a file of another schema is a :class:`ResultsFormatError`."""
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if str(path).endswith(".gz") else open(path)) as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise ResultsFormatError(f"{path}: not JSON ({exc})") from None
    except RecursionError:
        raise ResultsFormatError(f"{path}: not a results file (JSON nested too deeply to read)") from None
    try:
        return from_json(data, str(path))
    except RecursionError:
        raise ResultsFormatError(f"{path}: not a results file (nested too deeply)") from None


def claim(path: Path, force: bool = False, what: str = "the results file", option: str = "--output") -> Path:
    """Check, before anything is measured or written, that ``path`` can be written as ``what`` (named
    by ``option``): a new path (created here, exclusively), or with ``force`` an existing regular file.
    A symbolic link, a folder, a device or a FIFO is refused, as is an existing file without ``force``."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "is a folder, not a file", str(path))
        kind = ("a symbolic link" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
                None if stat.S_ISREG(mode) else "not a regular file")
        if kind:
            raise HarnessError(f"cannot write {what} {path}: it is {kind}; {option} must name a new path or a "
                               f"regular file")
        if not force:
            raise HarnessError(f"cannot write {what} {path}: it exists; add --force to replace it, or name a new "
                               f"path")
        with open(path, "a"):  # writable (it is replaced as a whole when written)
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x"):
        return path
