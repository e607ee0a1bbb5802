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


#: Backends that raise, hang or kill their process at T=20 (and more ways to fail): tests/test_runner.py.
MISBEHAVING = """
import os, time
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend

HARNESS_PLUGIN_API = 2

class Raises(NumpyBackend):
    name = "raises"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            raise RuntimeError("deliberate failure at T=20")
        super().forward()

class Hangs(NumpyBackend):
    name = "hangs"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            time.sleep(3600)
        super().forward()

class Dies(NumpyBackend):
    name = "dies"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            os.kill(os.getpid(), 9)
        super().forward()

class Explodes(NumpyBackend):
    name = "explodes"
    def backward(self, per_step=False):
        super().backward(per_step)
        if per_step:
            self._grads.h[: self._grads.h.shape[0] // 2] = float("inf")  # the first half overflowed

class LaterRoundFails(NumpyBackend):
    # Fails while timed (under harness.run.point._time) in any process but the first one that timed
    # it (the marker file names that process): timing rounds 2, 3, ... fail; its gradient profiles
    # and memory peaks, measured in other processes but never timed, do not.
    name = "later-round-fails"
    def forward(self):
        import inspect
        if any(frame.function == "_time" for frame in inspect.stack()):
            marker = os.environ["HARNESS_TEST_MARKER"]
            if not os.path.exists(marker):
                with open(marker, "w") as f:
                    f.write(str(os.getpid()))
            elif open(marker).read() != str(os.getpid()):
                raise RuntimeError("a later round")
        super().forward()

class KillsDaskWorker(NumpyBackend):
    # Kills the process that started its worker (on a Dask cluster: the Dask worker) at T=20.
    name = "kills-dask-worker"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            os.kill(os.getppid(), 9)
            time.sleep(3600)
        super().forward()

class Threads(NumpyBackend):
    name = "threads"
    def info(self):
        return {**super().info(), "env_threads": os.environ.get("OPENBLAS_NUM_THREADS")}

@hookimpl
def harness_backends():
    return [Raises, Hangs, Dies, Explodes, LaterRoundFails, KillsDaskWorker, Threads]
"""


def add_misbehaving(root: Path) -> Path:
    add_distribution(root, "misbehaving", {"misbehaving_plugin": MISBEHAVING}, {"misbehaving": "misbehaving_plugin"})
    return root
