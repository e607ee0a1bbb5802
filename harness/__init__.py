"""Benchmarking harness for gradient behaviour in recurrent neural networks.

What a plugin author needs is importable from here::

    from harness import Availability, Backend, Gradients, Outputs, Problem, hookimpl
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("rnn-grad-harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: The plugin-API version this core implements. A plugin module declares the version it was
#: written for as ``HARNESS_PLUGIN_API``; a mismatch is reported instead of loading the plugin.
PLUGIN_API_VERSION = 2

from harness.errors import HarnessError  # noqa: E402
from harness.backend import Availability, Backend, Gradients, Outputs, Problem  # noqa: E402
from harness.hookspecs import hookimpl  # noqa: E402
from harness.record.results import load as load_results  # noqa: E402

__all__ = ["PLUGIN_API_VERSION", "Availability", "Backend", "Gradients", "HarnessError", "Outputs", "Problem",
           "__version__", "hookimpl", "load_results"]
