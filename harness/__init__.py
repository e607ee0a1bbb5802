"""Benchmarking harness for gradient behaviour in recurrent neural networks.

What a plugin author needs is importable from here::

    from harness import Availability, Backend, Gradients, Outputs, Problem, hookimpl

``harness.load_results`` (a results file as a DataFrame) belongs to the storing layer (record/); it is
imported on first use (PEP 562), so that ``import harness``, which every plugin does, does not load it.
"""
from importlib.metadata import PackageNotFoundError, version as _version
from typing import TYPE_CHECKING

try:
    __version__ = _version("rnn-grad-harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: The plugin-API version this core implements. A plugin module declares the version it was
#: written for as ``HARNESS_PLUGIN_API``; a version this core does not run is reported instead of
#: loading the plugin. 3: cells are plugins (the ``harness_cells`` hook); a backend may run any
#: registered cell (``Backend.cells`` holding ``EVERY_CELL``) and reports every state tensor
#: (``Outputs.states``, ``Gradients.states``). A backend written for 2 runs unchanged.
PLUGIN_API_VERSION = 3
#: The plugin-API versions whose plugins this core loads.
SUPPORTED_PLUGIN_APIS = (2, 3)

from harness.errors import HarnessError  # noqa: E402
from harness.backend import Availability, Backend, Gradients, Outputs, Problem  # noqa: E402
from harness.hookspecs import hookimpl  # noqa: E402

if TYPE_CHECKING:  # for type checkers; at run time, __getattr__ below
    from harness.record.dataframe import load as load_results
    from harness.record.dataframe import load_outcomes

__all__ = ["PLUGIN_API_VERSION", "SUPPORTED_PLUGIN_APIS", "Availability", "Backend", "Gradients", "HarnessError",
           "Outputs", "Problem", "__version__", "hookimpl", "load_outcomes",
           "load_results"]


def __getattr__(name: str):
    """``load_results`` and ``load_outcomes``, imported from the storing layer when first asked for."""
    if name in ("load_results", "load_outcomes"):
        from harness.record import dataframe

        found = dataframe.load if name == "load_results" else dataframe.load_outcomes
        globals()[name] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
