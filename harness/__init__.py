"""Benchmarking harness for gradient behaviour in recurrent neural networks."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("rnn-grad-harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: The plugin-API version this core implements. A plugin module declares the version it was
#: written for as ``HARNESS_PLUGIN_API``; a mismatch is reported instead of loading the plugin.
PLUGIN_API_VERSION = 1


class HarnessError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, without a traceback."""
