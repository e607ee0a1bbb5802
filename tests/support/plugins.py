"""Installing small plugin distributions into a folder on sys.path, and plugins the tests share."""
from __future__ import annotations

import textwrap
from pathlib import Path


def add_distribution(root: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Write modules and a ``.dist-info`` with entry points: an installed distribution, minus pip."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[harness]\n{lines}\n")


UNAVAILABLE_PLUGIN = """
from harness import Availability, hookimpl
from harness_plugins.numpy_backend import NumpyBackend

HARNESS_PLUGIN_API = 2

class Nowhere(NumpyBackend):
    name = "nowhere"

    @classmethod
    def availability(cls):
        return Availability(False, "needs a quantum computer")

class RnnOnly(NumpyBackend):
    name = "rnn-only"
    cells = ("rnn_tanh",)

@hookimpl
def harness_backends():
    return [Nowhere, RnnOnly]
"""
