"""Plugin loading and the registry of what plugins contribute."""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from pocketcore import hookspecs
from pocketcore._core.errors import ConfigError, PluginError, PluginWarning
from pocketcore._core.executor import Executor

if TYPE_CHECKING:
    from pocketcore._nodes.nodes import BaseNode

__all__ = [
    "ExecutorEntry",
    "NodeEntry",
    "PluginFailure",
    "Registry",
    "get_registry",
    "make_plugin_manager",
]

NODES_GROUP = "pocketcore.nodes"
AUTOLOAD_ENV = "POCKETCORE_DISABLE_PLUGIN_AUTOLOAD"
ONLY_ENV = "POCKETCORE_PLUGINS"


@attrs.frozen
class PluginFailure:
    """A plugin entry point that could not be loaded.

    Attributes:
        distribution: The distribution that declared the entry point, as
            ``"name version"`` (``"?"`` when it is not installed at all).
        entry_point: The entry point's name.
        error: A one-line description of what went wrong.
        group: The entry-point group: ``"pocketcore"`` (plugins) or
            ``"pocketcore.nodes"`` (node classes).
    """

    distribution: str
    entry_point: str
    error: str
    group: str = "pocketcore"

    def __str__(self) -> str:
        what = "plugin" if self.group == "pocketcore" else "node"
        return (
            f"{what} {self.entry_point!r} (distribution {self.distribution}) "
            f"failed to load: {self.error}"
        )


@attrs.frozen
class ExecutorEntry:
    """One registered executor and the plugin that registered it.

    Attributes:
        name: The executor's name.
        executor: The executor object.
        plugin: The name of the plugin that registered it (its entry-point
            name for installed plugins).
    """

    name: str
    executor: Executor
    plugin: str


@attrs.frozen
class NodeEntry:
    """One registered node (or flow) class and where it came from.

    Attributes:
        name: The name it is created by.
        cls: The class.
        supplier: The plugin that registered it, or ``"entry point NAME"``
            for classes declared in the ``pocketcore.nodes`` group.
        distribution: ``"name version"`` of the distribution that supplied
            it, or ``None`` when it was registered in code.
        plugin: The name of the plugin whose ``pocketcore_register_nodes``
            registered it, or ``None`` for a ``pocketcore.nodes`` entry point.
    """

    name: str
    cls: type[BaseNode]
    supplier: str
    distribution: str | None
    plugin: str | None = None


def make_plugin_manager() -> pluggy.PluginManager:
    """Build an empty plugin manager that knows pocketcore's hook specs.

    Nothing is registered in it; :meth:`Registry.from_environment` adds the
    installed plugins, and tests register their own.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _dist_label(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    return "?" if dist is None else f"{dist.name} {dist.version}"


def _env_plugin_selection() -> tuple[bool, frozenset[str] | None]:
    autoload = os.environ.get(AUTOLOAD_ENV, "").strip() in ("", "0")
    raw = os.environ.get(ONLY_ENV, "")
    only = frozenset(n.strip() for n in raw.split(",") if n.strip())
    return autoload, (only or None)


def _selected(ep: metadata.EntryPoint, only: frozenset[str] | None) -> bool:
    return only is None or ep.name in only or (ep.dist is not None and ep.dist.name in only)


@attrs.define
class Registry:
    """The plugins of a process and what they contribute.

    Build one with :meth:`from_environment` (what :func:`get_registry` does
    once per process) or around an empty :func:`make_plugin_manager` in tests.
    Contributions are collected from the plugins on first use and again after
    :meth:`register` / :meth:`unregister`.

    Attributes:
        pm: The pluggy plugin manager.
        failures: Entry points that failed to load; each is reported, none is
            fatal to the others.
        distributions: Plugin name -> ``"distribution version"`` for plugins
            loaded from entry points.
        node_entry_points: The ``pocketcore.nodes`` entry points to load when
            the nodes are first asked for.
    """

    pm: pluggy.PluginManager = attrs.field(factory=make_plugin_manager)
    failures: list[PluginFailure] = attrs.field(factory=list)
    distributions: dict[str, str] = attrs.field(factory=dict)
    node_entry_points: list[metadata.EntryPoint] = attrs.field(factory=list)
    _executors: dict[str, ExecutorEntry] | None = attrs.field(default=None, init=False)
    _nodes: dict[str, NodeEntry] | None = attrs.field(default=None, init=False)
    _observer: Observer | bool | None = attrs.field(default=False, init=False)
    _lock: threading.RLock = attrs.field(factory=threading.RLock, init=False)

    @classmethod
    def from_environment(cls) -> Registry:
        """Load the installed plugins as the environment asks.

        Entry points of the group ``pocketcore`` are loaded (and those of
        ``pocketcore.nodes`` noted, to be loaded on first use) unless
        ``POCKETCORE_DISABLE_PLUGIN_AUTOLOAD`` is set (to anything but ``0``).
        ``POCKETCORE_PLUGINS=a,b`` loads only the entry points (or
        distributions) with those names, also when autoload is disabled; a
        name that matches nothing is recorded as a failure.

        Warns:
            PluginWarning: Once for each plugin that failed to load (also
                recorded in :attr:`failures`); the other plugins still load.
        """
        registry = cls()
        autoload, only = _env_plugin_selection()
        if not autoload and only is None:
            return registry
        seen: set[str] = set()
        for ep in metadata.entry_points(group=hookspecs.PROJECT_NAME):
            seen.update((ep.name, ep.dist.name if ep.dist is not None else ""))
            if not _selected(ep, only) or registry.pm.has_plugin(ep.name):
                continue  # not asked for, or the same distribution twice on sys.path
            try:
                registry.pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                registry._fail(PluginFailure(_dist_label(ep), ep.name, _describe(exc)))
            else:
                registry.distributions[ep.name] = _dist_label(ep)
        for ep in metadata.entry_points(group=NODES_GROUP):
            seen.update((ep.name, ep.dist.name if ep.dist is not None else ""))
            if _selected(ep, only):
                registry.node_entry_points.append(ep)
        for name in sorted((only or frozenset()) - seen):
            registry._fail(PluginFailure("?", name, f"not installed (named in {ONLY_ENV})"))
        return registry

    def _fail(self, failure: PluginFailure) -> None:
        self.failures.append(failure)
        warnings.warn(str(failure), PluginWarning, stacklevel=3)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register ``plugin`` and return its name; contributions are re-collected.

        Raises:
            PluginError: The plugin, or another under the same name, is
                already registered.
        """
        try:
            registered = self.pm.register(plugin, name=name)
        except ValueError:  # pluggy's "already registered", with a dump of all plugins
            shown = name or self.pm.get_canonical_name(plugin)
            raise PluginError(
                f"cannot register plugin {shown!r}: it, or another plugin of that name, "
                "is already registered"
            ) from None
        if registered is None:  # pragma: no cover - pluggy returns None only when blocked
            raise PluginError(f"plugin {name!r} is blocked")
        self._forget()
        return registered

    def unregister(self, plugin: object) -> None:
        """Remove ``plugin``; contributions are re-collected on next use."""
        self.pm.unregister(plugin)
        self._forget()

    def _forget(self) -> None:
        self._executors = self._nodes = None
        self._observer = False

    # --- executors ----------------------------------------------------------

    @property
    def executors(self) -> Mapping[str, ExecutorEntry]:
        """Every registered executor by name, collected from the plugins once."""
        found = self._executors
        if found is None:
            with self._lock:
                found = self._executors
                if found is None:
                    found = self._executors = self._collect_executors()
        return found

    def _collect_executors(self) -> dict[str, ExecutorEntry]:
        found: dict[str, ExecutorEntry] = {}

        def add(plugin: str, executor: Any) -> None:
            _check_executor(executor, plugin)
            name = executor.name
            if name in found:
                raise PluginError(
                    f"executor {name!r} is registered twice: by plugin "
                    f"{found[name].plugin!r} and by plugin {plugin!r}"
                )
            found[name] = ExecutorEntry(name, executor, plugin)

        self._call_each("pocketcore_register_executors", add)
        return found

    def _call_each(self, hook_name: str, add: Callable[..., None]) -> None:
        # Each implementation gets its own register callback, so every
        # contribution is recorded with the plugin that made it.
        hook = getattr(self.pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            impl.function(functools.partial(add, impl.plugin_name))

    def get_executor(self, name: str, *, source: str) -> Executor:
        """Return the executor called ``name``.

        Args:
            name: The executor's name.
            source: Where the name came from, for the error message.

        Raises:
            ConfigError: No executor has that name; the message lists the
                installed ones and any plugin that failed to load.
        """
        entry = self.executors.get(name)
        if entry is None:
            raise ConfigError(
                f"unknown executor {name!r} (from {source}); "
                f"installed executors: {self.describe_choices()}"
            )
        return entry.executor

    def describe_choices(self) -> str:
        """The installed executor names, plus load failures, for error messages."""
        return self._describe(sorted(self.executors))

    def _describe(self, names: list[str]) -> str:
        text = ", ".join(names) or "none"
        if self.failures:
            text += "; " + "; ".join(str(f) for f in self.failures)
        note = self.selection_note()
        return text if note is None else f"{text} ({note})"

    @staticmethod
    def selection_note() -> str | None:
        """Why fewer plugins than installed may be loaded, or ``None``.

        Says so when ``POCKETCORE_PLUGINS`` restricts loading or
        ``POCKETCORE_DISABLE_PLUGIN_AUTOLOAD`` turns it off.
        """
        autoload, only = _env_plugin_selection()
        if only is not None:
            return f"only the plugins named in {ONLY_ENV} were loaded"
        if not autoload:
            return f"plugin autoload is disabled by {AUTOLOAD_ENV}"
        return None

    # --- nodes ----------------------------------------------------------------

    @property
    def nodes(self) -> Mapping[str, NodeEntry]:
        """Every registered node class by name.

        Collected once, from the ``pocketcore.nodes`` entry points (loaded
        now; one that fails to import or names something that is not a node
        class is recorded in :attr:`failures` and warned about, the others
        still load) and from the plugins' ``pocketcore_register_nodes`` hooks.

        Raises:
            PluginError: Two suppliers registered the same name; the message
                names both.
        """
        found = self._nodes
        if found is None:
            with self._lock:
                found = self._nodes
                if found is None:
                    found = self._nodes = self._collect_nodes()
        return found

    def _collect_nodes(self) -> dict[str, NodeEntry]:
        from pocketcore._nodes.nodes import BaseNode

        found: dict[str, NodeEntry] = {}

        def add(
            supplier: str, dist: str | None, name: Any, cls: Any, plugin: str | None = None
        ) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"{supplier} registered a node with the invalid name {name!r}")
            if not (isinstance(cls, type) and issubclass(cls, BaseNode)):
                raise PluginError(
                    f"{supplier} registered {cls!r} as node {name!r}; it is not a "
                    "subclass of pocketcore.BaseNode"
                )
            if name in found:
                raise PluginError(
                    f"node {name!r} is registered twice: by {found[name].supplier} "
                    f"and by {supplier}"
                )
            found[name] = NodeEntry(name, cls, supplier, dist, plugin)

        for ep in self.node_entry_points:
            try:
                cls = ep.load()
                if not (isinstance(cls, type) and issubclass(cls, BaseNode)):
                    raise TypeError(f"{ep.value} is not a subclass of pocketcore.BaseNode")
            except Exception as exc:  # one broken entry point must not hide the rest
                self._fail(PluginFailure(_dist_label(ep), ep.name, _describe(exc), NODES_GROUP))
                continue
            add(f"entry point {ep.name!r} of {_dist_label(ep)}", _dist_label(ep), ep.name, cls)

        def add_from_plugin(plugin: str, name: Any, cls: Any) -> None:
            add(f"plugin {plugin!r}", self.distributions.get(plugin), name, cls, plugin)

        self._call_each("pocketcore_register_nodes", add_from_plugin)
        return found

    def create_node(self, name: str, params: Mapping[str, Any] | None = None) -> BaseNode:
        """Create the node registered as ``name``, with ``params`` as its params.

        Raises:
            ConfigError: No node has that name; the message lists the
                registered ones.
        """
        entry = self.nodes.get(name)
        if entry is None:
            raise ConfigError(
                f"unknown node {name!r}; registered nodes: {self._describe(sorted(self.nodes))}"
            )
        node = entry.cls()
        if params:
            node.set_params(dict(params))
        return node

    # --- observers ------------------------------------------------------------

    @property
    def observer(self) -> Observer | None:
        """What to tell about lifecycle events, or ``None`` when no plugin listens.

        ``None`` is what keeps the lifecycle hooks free when unused: the kernel
        checks it once per flow pass and never calls into pluggy.
        """
        found = self._observer
        if found is False:
            listening = any(
                getattr(self.pm.hook, name).get_hookimpls() for name in hookspecs.LIFECYCLE_HOOKS
            )
            found = self._observer = Observer(self.pm.hook) if listening else None
        return found  # type: ignore[return-value]


class Observer:
    """Calls the lifecycle hooks; exists only while some plugin implements one."""

    __slots__ = (
        "batch_item_done",
        "batch_start",
        "node_end",
        "node_start",
        "run_end",
        "run_start",
    )

    def __init__(self, hook: Any) -> None:
        self.run_start = hook.pocketcore_run_start
        self.run_end = hook.pocketcore_run_end
        self.node_start = hook.pocketcore_node_start
        self.node_end = hook.pocketcore_node_end
        self.batch_start = hook.pocketcore_batch_start
        self.batch_item_done = hook.pocketcore_batch_item_done


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _check_executor(executor: Any, plugin: str) -> None:
    missing = [a for a in ("name", "backend", "run", "map") if not hasattr(executor, a)]
    if missing or not isinstance(executor.name, str) or not executor.name:
        raise PluginError(
            f"plugin {plugin!r} registered {executor!r}, which is not an executor "
            f"(needs a non-empty str name, backend, run() and map(); missing: "
            f"{', '.join(missing) or 'a valid name'})"
        )


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """Return the process-wide registry, loading the installed plugins on first use."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = Registry.from_environment()
    return _registry
