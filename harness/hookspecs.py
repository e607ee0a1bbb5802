"""Every hook a harness plugin may implement, in one place.

A plugin is a module (or object) registered under the ``harness`` entry-point group; it
implements any subset of these hooks with :data:`hookimpl`, and declares the plugin-API version it
was written for as the module attribute ``HARNESS_PLUGIN_API``. The core calls hooks with keyword
arguments only, and an implementation may take a subset of a spec's arguments, so a spec can grow
an argument without breaking the plugins written before it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from harness.backend import Backend
    from harness.cell import Cell
    from harness.tasks import Task

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_backends() -> list[type[Backend]]:
    """Return the backend classes this plugin offers.

    Each is a subclass of :class:`harness.Backend`. Return classes, not instances: a backend
    is instantiated in its worker process, and must not import heavy libraries (torch, numba) before
    it is used, so that listing plugins stays fast and a missing package only makes it unavailable.
    """


@hookspec
def harness_tasks() -> list[Task]:
    """Return the tasks this plugin offers, each a :class:`harness.tasks.Task`.

    The built-in tasks (copy, adding, temporal_order) are offered through this hook too.
    """


@hookspec
def harness_cells() -> list[type[Cell]]:
    """Return the recurrent cell classes this plugin offers.

    Each is a subclass of :class:`harness.cell.Cell`: parameters, state, output and one step
    function in torch operations, from which the core derives the float64 reference, BPTT, the
    per-step gradients and the Lyapunov recursion (:mod:`harness.derived`). Return classes, not
    instances, and import torch only inside the step (a cell module stays cheap to import). The
    built-in cells (rnn_tanh, lstm, gru, gru_cho, rnn_relu, indrnn, mingru, lru) are offered through
    this hook too, and are collected first. A class that is not a well-formed cell
    (:func:`harness.cell.check_cell_class`), or whose name another plugin already offers, is left out
    and recorded on its plugin (``harness plugins`` shows why); the plugin's other cells are kept.
    """


@hookspec
def harness_machine_info() -> dict[str, Any]:
    """Return extra provenance (for example a GPU driver version) to record with every run.

    The dicts of all plugins are merged into the run's ``provenance.plugins`` section, keyed by
    plugin name.
    """
