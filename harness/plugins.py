"""Plugin discovery: entry points loaded one at a time, failures recorded instead of raised.

pluggy's own ``load_setuptools_entrypoints`` aborts on the first plugin whose import fails; a
benchmark harness must instead list the broken plugin with its error and carry on with the rest.
The same holds for what a plugin offers: a backend, task or cell that is malformed, or whose name
another plugin already offers, is left out and recorded on its plugin's record (``harness plugins``
shows it), and everything else goes on. Cells of the built-in ``harness_plugins`` are collected
first, so a third-party cell can never take the name of a built-in one.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from harness import PLUGIN_API_VERSION, SUPPORTED_PLUGIN_APIS, hookspecs
from harness.cell import check_cell_class, one_line
from harness.errors import HarnessError, check_choice, unknown_choice
from harness.jsonsafe import jsonable

if TYPE_CHECKING:
    from harness.backend import Availability, Backend
    from harness.cell import Cell
    from harness.tasks import Task

ENTRY_POINT_GROUP = "harness"
DISABLE_ENV = "HARNESS_DISABLE_PLUGINS"


@dataclass
class PluginRecord:
    """What happened when one entry point was loaded."""

    name: str
    distribution: str
    version: str
    module: str
    status: str  # "loaded", "failed", "disabled" or "incompatible"
    error: str = ""
    backends: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """``plugin 'NAME' (DISTRIBUTION VERSION)``: how messages name the plugin something came from."""
        return f"plugin {self.name!r} ({self.distribution} {self.version})"

    def note(self, error: str) -> None:
        """Record a problem with something this plugin offers (it keeps its status: the rest loaded)."""
        self.error = f"{self.error}; {error}" if self.error else error


@dataclass
class PluginRegistry:
    """The plugin manager plus what was found: plugins, backends, tasks and cells by name."""

    manager: pluggy.PluginManager
    plugins: list[PluginRecord]
    backends: dict[str, type[Backend]]
    tasks: dict[str, Task]
    cells: dict[str, type[Cell]] = field(default_factory=dict)
    #: the plugin record of each cell, by cell name
    cell_plugins: dict[str, PluginRecord] = field(default_factory=dict)
    #: cells offered but left out (malformed, or a name already taken), by name: why, naming the plugin
    rejected_cells: dict[str, str] = field(default_factory=dict)

    def backend_class(self, name: str) -> type[Backend]:
        """The class of backend ``name``; an unknown name lists the backends and the plugins that
        did not load (the backend may be one of theirs)."""
        if name not in self.backends:
            raise HarnessError(f"{unknown_choice('backend', name, sorted(self.backends), 'installed backends')}"
                               f"{not_loaded()}")
        return self.backends[name]

    def task(self, name: str, options: Iterable[tuple[str, str]] = ()) -> Task:
        """Task ``name`` with ``options`` (a suite's ``task_options``) set; unknown ones are one-line errors."""
        task = self.tasks[check_choice("task", name, sorted(self.tasks), "available tasks")]
        options = dict(options)
        return task.configured(options) if options else task

    def cell_class(self, name: str) -> type[Cell]:
        """The class of cell ``name``; an unknown name is one line naming the known cells (and a cell
        of that name that was offered but left out, with why; and the plugins that did not load)."""
        if name not in self.cells:
            rejected = f"; {self.rejected_cells[name]}" if name in self.rejected_cells else ""
            raise HarnessError(f"{unknown_choice('cell', name, list(self.cells), 'known cells')}{rejected}"
                               f"{not_loaded()}")
        return self.cells[name]

    def cell_origin(self, name: str) -> str:
        """``plugin 'NAME' (DISTRIBUTION VERSION)`` of the plugin that offers cell ``name``."""
        record = self.cell_plugins.get(name)
        return record.origin if record is not None else "no plugin"


def disabled_plugins() -> set[str]:
    """Plugin names blocked by ``HARNESS_DISABLE_PLUGINS`` (comma-separated)."""
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def call_hook(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    """Call one plugin's implementation with the keyword arguments it declares (a subset of the
    spec's), as pluggy does: a spec can grow an argument without breaking older plugins."""
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


def _record(ep: EntryPoint, status: str, error: str = "") -> PluginRecord:
    dist = getattr(ep, "dist", None)
    return PluginRecord(
        name=ep.name,
        distribution=dist.metadata["Name"] if dist is not None else "?",
        version=dist.version if dist is not None else "?",
        module=ep.value,
        status=status,
        error=error,
    )


def _load_one(pm: pluggy.PluginManager, ep: EntryPoint) -> PluginRecord:
    try:
        plugin = ep.load()
    except Exception as exc:  # a broken plugin must not stop the others
        return _record(ep, "failed", f"{type(exc).__name__}: {exc}")
    api = getattr(plugin, "HARNESS_PLUGIN_API", None)
    if api not in SUPPORTED_PLUGIN_APIS:
        older = ", ".join(str(v) for v in SUPPORTED_PLUGIN_APIS if v != PLUGIN_API_VERSION)
        return _record(
            ep,
            "incompatible",
            f"written for plugin API {api!r}, this harness implements {PLUGIN_API_VERSION}"
            f"{f' (and still runs plugins written for {older})' if older else ''} "
            f"(set HARNESS_PLUGIN_API = {PLUGIN_API_VERSION} after updating the plugin: docs/writing-a-backend.md)",
        )
    try:
        pm.register(plugin, name=ep.name)
        pm.check_pending()
    except Exception as exc:  # unknown hook names, duplicate registration, bad signatures
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        return _record(ep, "failed", f"{type(exc).__name__}: {exc}")
    return _record(ep, "loaded")


def _collect(pm: pluggy.PluginManager, hook_name: str, records: dict[str, PluginRecord],
             key: Callable[[Any], str]) -> dict[str, Any]:
    """Call one hook plugin by plugin, so every item is attributed to the plugin offering it."""
    found: dict[str, Any] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        record = records[impl.plugin_name]
        try:
            items = call_hook(impl) or []
        except Exception as exc:
            record.status, record.error = "failed", f"{hook_name}: {type(exc).__name__}: {exc}"
            continue
        for item in items:
            try:
                name = key(item)
            except Exception as exc:  # e.g. a class without `name`
                record.error = f"{hook_name}: {item!r} has no usable name ({type(exc).__name__}: {exc}); ignored"
                continue
            if not isinstance(name, str) or not name:
                record.error = f"{hook_name}: {item!r} has the name {name!r}, not a non-empty string; ignored"
                continue
            if name in found:
                record.error = f"{hook_name}: {name!r} is already offered by another plugin; ignored"
                continue
            found[name] = item
            getattr(record, "backends" if hook_name == "harness_backends" else "tasks").append(name)
    return found


@functools.lru_cache(maxsize=1)
def get_registry() -> PluginRegistry:
    """Load every plugin of the ``harness`` entry-point group once per process."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    blocked = disabled_plugins()
    records: list[PluginRecord] = []
    refused: list[PluginRecord] = []  # entry points whose name another distribution already offers
    for ep, others in _by_name(entry_points(group=ENTRY_POINT_GROUP)):
        refused += [_record(other, "failed", _collision(other, ep)) for other in others]
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            records.append(_record(ep, "disabled", f"blocked by {DISABLE_ENV}"))
            continue
        records.append(_load_one(pm, ep))
    by_name = {r.name: r for r in records}
    records += refused
    backends = _collect(pm, "harness_backends", by_name, key=lambda cls: cls.name)
    tasks = _collect(pm, "harness_tasks", by_name, key=lambda task: task.name)
    registry = PluginRegistry(manager=pm, plugins=records, backends=backends, tasks=tasks)
    _collect_cells(registry, by_name)
    return registry


def _by_name(eps) -> list[tuple[EntryPoint, list[EntryPoint]]]:
    """Each entry-point name once: the one that loads (the built-in plugin where the name is one, else
    the first on sys.path) and the other distributions' entry points of that name, which do not. The
    same distribution visible twice on sys.path is one entry point."""
    groups: dict[str, list[EntryPoint]] = {}
    for ep in eps:
        same = groups.setdefault(ep.name, [])
        if not any(_distribution(e) == _distribution(ep) and e.value == ep.value for e in same):
            same.append(ep)
    chosen = []
    for name in sorted(groups):
        same = sorted(groups[name], key=lambda e: not e.value.startswith("harness_plugins."))  # stable
        chosen.append((same[0], same[1:]))
    return chosen


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "?"


def _collision(refused: EntryPoint, loaded: EntryPoint) -> str:
    return (f"plugin name {refused.name!r} is also offered by {_distribution(loaded)} ({loaded.value}), which is "
            f"loaded; this one ({_distribution(refused)}, {refused.value}) is not: rename its entry point in the "
            f"[project.entry-points.harness] table of its pyproject.toml")


def _builtin_first(impl: pluggy.HookImpl, records: dict[str, PluginRecord]) -> tuple[int, str]:
    return (0 if records[impl.plugin_name].module.startswith("harness_plugins.") else 1, impl.plugin_name)


def _collect_cells(registry: PluginRegistry, records: dict[str, PluginRecord]) -> None:
    """Every plugin's ``harness_cells``, one plugin at a time, built-ins first. A class that is not a
    well-formed cell (:func:`harness.cell.check_cell_class`) or whose name is already taken is left
    out and recorded, naming the plugin and its distribution; the plugin's other cells are kept."""
    impls = sorted(registry.manager.hook.harness_cells.get_hookimpls(), key=lambda i: _builtin_first(i, records))
    for impl in impls:
        record = records[impl.plugin_name]
        try:
            offered = list(call_hook(impl) or [])
        except Exception as exc:  # the hook itself raised: none of its cells
            record.status = "failed"
            record.note(f"harness_cells: {one_line(exc)}")
            continue
        for cls in offered:
            name = getattr(cls, "name", None)
            key = name if isinstance(name, str) and name else repr(cls)
            try:
                check_cell_class(cls)
            except HarnessError as exc:
                why = f"harness_cells: {exc}; left out"
            else:
                if registry.cells.get(name) is cls:
                    continue  # the same class offered twice by one plugin is one cell
                if name not in registry.cells:
                    registry.cells[name] = cls
                    registry.cell_plugins[name] = record
                    record.cells.append(name)
                    continue
                why = (f"harness_cells: cell {name!r} ({cls.__module__}.{cls.__qualname__}) is already offered by "
                       f"{registry.cell_plugins[name].origin}; left out (uninstall one, or disable it with "
                       f"{DISABLE_ENV})")
            record.note(why)
            registry.rejected_cells.setdefault(key, f"{record.origin}: {why}")


def machine_info() -> dict[str, Any]:
    """Provenance contributed by plugins through ``harness_machine_info``, keyed by plugin; a hook
    that raises is recorded with its error, and what a hook returns is made plain JSON."""
    info = {}
    for impl in get_registry().manager.hook.harness_machine_info.get_hookimpls():
        try:
            info[impl.plugin_name] = jsonable(call_hook(impl))
        except Exception as exc:
            info[impl.plugin_name] = {"error": f"{type(exc).__name__}: {exc}"}
    return info


def availability(backend_cls: type[Backend]) -> Availability:
    """``backend_cls.availability()``, guarded: a plugin whose check raises is unavailable, with why."""
    from harness.backend import Availability

    try:
        result = backend_cls.availability()
        return result if isinstance(result, Availability) else Availability(
            False, f"availability() returned {result!r}, not an Availability")
    except Exception as exc:
        return Availability(False, f"availability() raised {type(exc).__name__}: {exc}")


def plugin_statuses() -> list[dict[str, Any]]:
    """Every plugin with its distribution, version and status (loaded, failed, incompatible,
    disabled) and error: recorded with every run."""
    return [{"name": p.name, "distribution": p.distribution, "version": p.version, "status": p.status,
             "error": p.error} for p in get_registry().plugins]


def not_loaded() -> str:
    """The plugins that did not load, with why, for error messages; empty when all loaded."""
    broken = [f"{p.name} ({p.status}: {p.error})" for p in get_registry().plugins
              if p.status in ("failed", "incompatible")]
    return "; plugins that did not load: " + ", ".join(broken) if broken else ""
