"""Entry-point discovery: which installed plugins are loaded, as the environment asks.

Plugins are found in the entry-point group ``pocketcore`` and loaded into a
plugin manager; node classes declared in ``pocketcore.nodes`` are only noted
here, and loaded by the registry when the nodes are first asked for.
``POCKETCORE_DISABLE_PLUGIN_AUTOLOAD`` and ``POCKETCORE_PLUGINS`` select what is
loaded. An entry point that fails to load is recorded and warned about; it
never takes the others down.

Entry-point names are plugin names, and a plugin name is never given to one
of two distributions by the order of ``sys.path``: when distinct
distributions declare the same name, each is loaded under
``"NAME (DISTRIBUTION)"``. (The same distribution found twice on ``sys.path``
is one distribution, loaded once.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from importlib import metadata

import attrs
import pluggy

from pocketcore import hookspecs
from pocketcore._plugins.failures import PluginFailure, exception_line, warn_failure

__all__ = [
    "AUTOLOAD_ENV",
    "NODES_GROUP",
    "ONLY_ENV",
    "LoadedEntryPoints",
    "PluginSelection",
    "distribution_label",
    "load_entry_points",
    "normalize_name",
]

NODES_GROUP = "pocketcore.nodes"
AUTOLOAD_ENV = "POCKETCORE_DISABLE_PLUGIN_AUTOLOAD"
ONLY_ENV = "POCKETCORE_PLUGINS"


def normalize_name(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503): ``Foo_Bar`` is ``foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_label(ep: metadata.EntryPoint) -> str:
    """``"name version"`` of the distribution declaring ``ep``, or ``"?"``."""
    dist = ep.dist
    return "?" if dist is None else f"{dist.name} {dist.version}"


def _distribution_name(ep: metadata.EntryPoint) -> str | None:
    return None if ep.dist is None else ep.dist.name


@attrs.frozen
class PluginSelection:
    """What the environment asks to load.

    Attributes:
        autoload: Load every entry point (``POCKETCORE_DISABLE_PLUGIN_AUTOLOAD``
            unset, empty or ``0``).
        only: The entry-point or distribution names ``POCKETCORE_PLUGINS``
            lists, or ``None`` when it is unset or empty.
    """

    autoload: bool
    only: frozenset[str] | None

    @classmethod
    def from_environment(cls) -> PluginSelection:
        """Read the two variables now."""
        autoload = os.environ.get(AUTOLOAD_ENV, "").strip() in ("", "0")
        raw = os.environ.get(ONLY_ENV, "")
        only = frozenset(n.strip() for n in raw.split(",") if n.strip())
        return cls(autoload, only or None)

    @property
    def loads_anything(self) -> bool:
        """Whether any entry point is to be looked at."""
        return self.autoload or self.only is not None

    def selects(self, ep: metadata.EntryPoint) -> bool:
        """Whether ``ep`` is to be loaded (by its name or its distribution's)."""
        if self.only is None:
            return True
        return ep.name in self.only or _distribution_name(ep) in self.only

    def note(self) -> str | None:
        """Why fewer plugins than installed may be loaded, or ``None``."""
        if self.only is not None:
            return f"only the plugins named in {ONLY_ENV} were loaded"
        if not self.autoload:
            return f"plugin autoload is disabled by {AUTOLOAD_ENV}"
        return None


@attrs.define
class LoadedEntryPoints:
    """What :func:`load_entry_points` found.

    Attributes:
        failures: Entry points that failed to load, and names in
            ``POCKETCORE_PLUGINS`` that match nothing installed.
        distributions: Plugin name -> ``"distribution version"``.
        node_entry_points: The selected ``pocketcore.nodes`` entry points,
            not loaded yet.
    """

    failures: list[PluginFailure] = attrs.field(factory=list)
    distributions: dict[str, str] = attrs.field(factory=dict)
    node_entry_points: list[metadata.EntryPoint] = attrs.field(factory=list)


def load_entry_points(
    pm: pluggy.PluginManager, selection: PluginSelection | None = None
) -> LoadedEntryPoints:
    """Register the selected plugins of the group ``pocketcore`` in ``pm``.

    Args:
        pm: The plugin manager to register them in.
        selection: What to load; read from the environment by default.

    Warns:
        PluginWarning: Once for each recorded failure.
    """
    if selection is None:
        selection = PluginSelection.from_environment()
    found = LoadedEntryPoints()
    if not selection.loads_anything:
        return found
    plugins = _unique(metadata.entry_points(group=hookspecs.PROJECT_NAME))
    nodes = _unique(metadata.entry_points(group=NODES_GROUP))
    for plugin_name, ep in _plugin_names(ep for ep in plugins if selection.selects(ep)):
        failure = _load_plugin(pm, plugin_name, ep)
        if failure is None:
            found.distributions[plugin_name] = distribution_label(ep)
        else:
            _record(found.failures, failure)
    found.node_entry_points = [ep for ep in nodes if selection.selects(ep)]
    installed = {n for ep in [*plugins, *nodes] for n in (ep.name, _distribution_name(ep))}
    for name in sorted((selection.only or frozenset()) - installed):
        _record(found.failures, PluginFailure("?", name, f"not installed (named in {ONLY_ENV})"))
    return found


def _unique(eps: Iterable[metadata.EntryPoint]) -> list[metadata.EntryPoint]:
    """Each entry point once, though its distribution may be on ``sys.path`` twice."""
    seen: set[tuple[str, str | None]] = set()
    unique = []
    for ep in eps:
        dist = _distribution_name(ep)
        key = (ep.name, None if dist is None else normalize_name(dist))
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return unique


def _plugin_names(eps: Iterable[metadata.EntryPoint]) -> list[tuple[str, metadata.EntryPoint]]:
    """Each entry point with its plugin name: its own, unless another distribution shares it."""
    eps = list(eps)
    shared = {ep.name for ep in eps if sum(other.name == ep.name for other in eps) > 1}
    return [
        (f"{ep.name} ({_distribution_name(ep) or ep.value})" if ep.name in shared else ep.name, ep)
        for ep in eps
    ]


def _load_plugin(
    pm: pluggy.PluginManager, plugin_name: str, ep: metadata.EntryPoint
) -> PluginFailure | None:
    try:
        plugin = ep.load()
        already = pm.get_name(plugin)
        if already is not None:
            # pluggy would refuse it with a dump of every plugin; say it shortly.
            error = f"the same object is already registered as plugin {already!r}"
            return PluginFailure(distribution_label(ep), plugin_name, error)
        pm.register(plugin, name=plugin_name)
    except Exception as exc:  # a broken plugin must not take the others down
        return PluginFailure(distribution_label(ep), plugin_name, exception_line(exc))
    return None


def _record(failures: list[PluginFailure], failure: PluginFailure) -> None:
    failures.append(failure)
    warn_failure(failure)
