"""Tiny suite files for tests."""
from __future__ import annotations

from pathlib import Path


def write_suite(folder: Path, **overrides) -> Path:
    """A tiny suite: temporal order, B=2, H=4, float64, two timed blocks, a 120 s timeout per point
    (generous: a loaded 2-core machine starts a worker in seconds, not minutes). Keyword arguments
    replace top-level keys (TOML text); ``timing={...}`` replaces [timing] keys, None removing one."""
    settings = {"task": '"temporal_order"', "cells": '["rnn_tanh"]', "seq_lens": "[12]", "batch": "2",
                "hidden": "4", "dtype": '"float64"', "seeds": "[0]"}
    settings.update({k: v for k, v in overrides.items() if k != "timing"})
    timing = {"repeat": "2", "timeout": "120", **overrides.get("timing", {})}
    timing = {k: v for k, v in timing.items() if v is not None}  # None: leave the key out
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(f"{k} = {v}" for k, v in settings.items())
    text += "\n\n[timing]\n" + "\n".join(f"{k} = {v}" for k, v in timing.items()) + "\n"
    (folder / "suite.toml").write_text(text)
    return folder
