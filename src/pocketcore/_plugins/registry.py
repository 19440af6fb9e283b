"""The registry: what the plugins contribute, collected with the plugin that made it.

Three registries live here: the executors, the node classes and the lifecycle
observer. Executors and nodes are collected lazily, the first time they are
asked for, by calling each plugin's registration hook separately
(:func:`~pocketcore._plugins.manager.per_plugin_calls`): a plugin whose hook
raises, or registers something invalid, is recorded as a failure and
contributes nothing through that hook, while every other plugin's
contributions are kept. Two plugins claiming one name is a
:class:`~pocketcore.PluginError` naming both, since neither is broken on its
own and picking one would be a silent choice.

The calls, and the checks of what each registers (once per contribution,
as it is registered, against what the layers below declare), are in
:mod:`~pocketcore._plugins.registering`; the records kept of each
contribution in :mod:`~pocketcore._plugins.entries`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, TypeVar

import attrs
import pluggy

from pocketcore import hookspecs
from pocketcore._core.errors import ConfigError, PluginError
from pocketcore._core.executor import Executor
from pocketcore._core.node import NodeLike
from pocketcore._core.plugin import ReportsState
from pocketcore._core.store import StoreOpener
from pocketcore._plugins.discovery import (
    NODES_GROUP,
    PluginSelection,
    distribution_label,
    load_entry_points,
)
from pocketcore._plugins.entries import ExecutorEntry, NodeEntry, StoreEntry
from pocketcore._plugins.extras import install_hint
from pocketcore._plugins.failures import PluginFailure, exception_line, warn_failure
from pocketcore._plugins.manager import make_plugin_manager
from pocketcore._plugins.registering import (
    Check,
    call_registration_hook,
    check_executor,
    check_node,
    check_store,
    is_node_class,
)

Observer = pluggy.HookRelay
"""What lifecycle events are reported to: pluggy's relay of the hooks, ``pm.hook``."""

__all__ = [
    "Observer",
    # PluginFailure and make_plugin_manager live in failures.py and manager.py;
    # they are named here too because pocketcore/__init__.py imports them from here.
    "PluginFailure",
    "Registry",
    "get_registry",
    "make_plugin_manager",
]

EXECUTORS_HOOK = "pocketcore_register_executors"
NODES_HOOK = "pocketcore_register_nodes"
STORES_HOOK = "pocketcore_register_stores"
#: The name the kernel's own stores (``sqlite``, ``memory``) are registered under.
BUILTIN_STORES = "pocketcore.stores"


_E = TypeVar("_E")
_C = TypeVar("_C")


@attrs.define
class Registry:
    """The plugins of a process and what they contribute.

    Build one with :meth:`from_environment` (what :func:`get_registry` does
    once per process) or around an empty :func:`make_plugin_manager` in tests.
    Contributions are collected from the plugins on first use and again after
    :meth:`register` / :meth:`unregister`.

    Attributes:
        pm: The pluggy plugin manager.
        failures: Entry points that failed to load and registration hooks that
            failed; each is reported, none is fatal to the others.
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
    _stores: dict[str, StoreEntry] | None = attrs.field(default=None, init=False)
    # Whether some plugin that implements a lifecycle hook always listens,
    # and those that say whether they are active (ReportsState).
    _listeners: tuple[bool, tuple[ReportsState, ...]] | None = attrs.field(default=None, init=False)
    # The relays without the hooks of some idle plugins, by their ids.
    _without: dict[frozenset[int], Observer] = attrs.field(factory=dict, init=False)
    # The failures each collection recorded, replaced when it runs again.
    _collection_failures: dict[str, list[PluginFailure]] = attrs.field(factory=dict, init=False)
    _lock: threading.RLock = attrs.field(factory=threading.RLock, init=False)

    @classmethod
    def from_environment(cls) -> Registry:
        """Load the installed plugins as the environment asks.

        Entry points of the group ``pocketcore`` are loaded (and those of
        ``pocketcore.nodes`` noted, to be loaded on first use) unless
        ``POCKETCORE_DISABLE_PLUGIN_AUTOLOAD`` is set (to anything but ``0``).
        ``POCKETCORE_PLUGINS=a,b`` loads only the entry points (or
        distributions) with those names, also when autoload is disabled; a
        name that matches nothing is recorded as a failure. An entry-point
        name declared by two distributions is never resolved by load order:
        both are loaded, as ``"NAME (DISTRIBUTION)"``.

        Warns:
            PluginWarning: Once for each plugin that failed to load (also
                recorded in :attr:`failures`); the other plugins still load.
        """
        pm = make_plugin_manager()
        register_builtin_stores(pm)
        loaded = load_entry_points(pm)
        return cls(pm, loaded.failures, loaded.distributions, loaded.node_entry_points)

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
        self._executors = self._nodes = self._stores = None
        self._listeners = None
        self._without = {}

    # --- executors ----------------------------------------------------------

    @property
    def executors(self) -> Mapping[str, ExecutorEntry]:
        """Every registered executor by name, collected from the plugins once.

        A plugin whose ``pocketcore_register_executors`` raises or registers
        something that is not an executor contributes none; it is recorded in
        :attr:`failures` and warned about, and the others' executors are here.

        Raises:
            PluginError: Two plugins registered the same name; the message
                names both.

        Warns:
            PluginWarning: Once for each plugin whose hook failed.
        """
        found = self._executors
        return self._collected("_executors", self._collect_executors) if found is None else found

    def _collected(self, name: str, collect: Callable[[], _C]) -> _C:
        """Attribute ``name``, set to ``collect()`` by the first caller to find it unset.

        Asked again under the lock, so that threads asking at once collect once.
        """
        with self._lock:
            found: _C | None = getattr(self, name)
            if found is None:
                found = collect()
                setattr(self, name, found)
        return found

    def _collect_executors(self) -> dict[str, ExecutorEntry]:
        return self._collect_named(EXECUTORS_HOOK, check_executor, "executor", ExecutorEntry)

    def _collect_named(
        self, hook: str, check: Check, kind: str, entry: Callable[[str, Any, str], _E]
    ) -> dict[str, _E]:
        """What each plugin registered through ``hook``, by name: one ``entry`` per name.

        Raises:
            PluginError: Two plugins registered one name; the message names both.
        """
        made_by, failures = call_registration_hook(self.pm, hook, check, self.distributions)
        self._settle_failures(hook, failures)
        found: dict[str, _E] = {}
        plugin_of: dict[str, str] = {}
        for plugin, made in made_by:
            for name, value in made.items():
                if name in found:
                    raise PluginError(
                        f"{kind} {name!r} is registered twice: by plugin "
                        f"{plugin_of[name]!r} and by plugin {plugin!r}"
                    )
                found[name], plugin_of[name] = entry(name, value, plugin), plugin
        return found

    def get_executor(self, name: str, *, source: str) -> Executor:
        """Return the executor called ``name``.

        Args:
            name: The executor's name.
            source: Where the name came from, for the error message.

        Raises:
            ConfigError: No executor has that name; the message lists the
                installed ones and any plugin that failed, and says how to
                install an executor that is an extra of pocketcore.
        """
        entry = self.executors.get(name)
        if entry is None:
            hint = install_hint(name)
            raise ConfigError(
                f"unknown executor {name!r} (from {source}); "
                f"installed executors: {self.describe_choices()}"
                + ("" if hint is None else f"; {hint}")
            )
        return entry.executor

    def describe_choices(self) -> str:
        """The installed executor names, plus failures, for error messages."""
        return self._choices_text(sorted(self.executors))

    def _choices_text(self, names: list[str]) -> str:
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
        return PluginSelection.from_environment().note()

    # --- stores ---------------------------------------------------------------

    @property
    def stores(self) -> Mapping[str, StoreEntry]:
        """Every registered result-cache store by name, collected from the plugins once.

        The same rules as :attr:`executors`: a plugin whose
        ``pocketcore_register_stores`` raises or registers something invalid
        contributes none (recorded and warned about); two plugins registering
        one name raise :class:`~pocketcore.PluginError` naming both.
        """
        found = self._stores
        return self._collected("_stores", self._collect_stores) if found is None else found

    def _collect_stores(self) -> dict[str, StoreEntry]:
        return self._collect_named(STORES_HOOK, check_store, "store", StoreEntry)

    def get_store_opener(self, name: str, *, source: str) -> StoreOpener:
        """The opener of the store called ``name``.

        Raises:
            ConfigError: No store has that name; the message lists the
                registered ones.
        """
        entry = self.stores.get(name)
        if entry is None:
            raise ConfigError(
                f"unknown cache store {name!r} (from {source}); registered stores: "
                f"{self._choices_text(sorted(self.stores))} (a path without 'NAME:' "
                "is an SQLite file)"
            )
        return entry.opener

    # --- nodes ----------------------------------------------------------------

    @property
    def nodes(self) -> Mapping[str, NodeEntry]:
        """Every registered node class by name.

        Collected once, from the ``pocketcore.nodes`` entry points (loaded
        now) and from the plugins' ``pocketcore_register_nodes`` hooks. An
        entry point that fails to import or names something that is not a
        node class, and a hook that raises or registers something invalid,
        are recorded in :attr:`failures` and warned about; the others still
        register their nodes.

        Raises:
            PluginError: Two suppliers registered the same name; the message
                names both.

        Warns:
            PluginWarning: Once for each entry point or hook that failed.
        """
        found = self._nodes
        return self._collected("_nodes", self._collect_nodes) if found is None else found

    def _collect_nodes(self) -> dict[str, NodeEntry]:
        failures: list[PluginFailure] = []
        entries: list[NodeEntry] = []
        for ep in self.node_entry_points:
            dist = distribution_label(ep)
            try:
                cls = ep.load()
                if not is_node_class(cls):
                    raise TypeError(f"{ep.value} is not a subclass of pocketcore.BaseNode")
            except Exception as exc:  # one broken entry point must not hide the rest
                failures.append(PluginFailure(dist, ep.name, exception_line(exc), NODES_GROUP))
                continue
            entries.append(NodeEntry(ep.name, cls, f"entry point {ep.name!r} of {dist}", dist))
        made_by, hook_failures = call_registration_hook(
            self.pm, NODES_HOOK, check_node, self.distributions
        )
        self._settle_failures(NODES_HOOK, failures + hook_failures)
        for plugin, made in made_by:
            entries += [
                NodeEntry(name, cls, f"plugin {plugin!r}", self.distributions.get(plugin), plugin)
                for name, cls in made.items()
            ]
        found: dict[str, NodeEntry] = {}
        for entry in entries:
            if entry.name in found:
                raise PluginError(
                    f"node {entry.name!r} is registered twice: by {found[entry.name].supplier} "
                    f"and by {entry.supplier}"
                )
            found[entry.name] = entry
        return found

    def create_node(self, name: str, params: Mapping[str, Any] | None = None) -> NodeLike:
        """Create the node registered as ``name``, with ``params`` as its params.

        Raises:
            ConfigError: No node has that name; the message lists the
                registered ones.
        """
        entry = self.nodes.get(name)
        if entry is None:
            raise ConfigError(
                f"unknown node {name!r}; registered nodes: {self._choices_text(sorted(self.nodes))}"
            )
        node = entry.cls()
        if params:
            node.set_params(dict(params))
        return node

    # --- collecting from registration hooks ---------------------------------------

    def _settle_failures(self, collection: str, failures: list[PluginFailure]) -> None:
        """Record what a collection found broken, in place of its previous findings.

        Collections run again after :meth:`register` / :meth:`unregister`; a
        failure found again is not warned about again.
        """
        before = self._collection_failures.get(collection, [])
        self.failures[:] = [f for f in self.failures if not any(f is old for old in before)]
        self.failures.extend(failures)
        self._collection_failures[collection] = failures
        for failure in failures:
            if failure not in before:
                warn_failure(failure)

    # --- observers ------------------------------------------------------------

    @property
    def observer(self) -> Observer | None:
        """The lifecycle hooks to call (pluggy's hook relay), or ``None`` when no plugin listens.

        ``None`` is what keeps the lifecycle hooks free when unused: the kernel
        checks it once per flow pass and never calls into pluggy. A plugin
        that declares :class:`~pocketcore.ReportsState` listens only while it
        says it is active; it is asked each time (once per run). Events are
        reported from one module, ``pocketcore._runtime.observe``.
        """
        found = self._listeners
        if found is None:
            plugins = {
                id(impl.plugin): impl.plugin
                for name in hookspecs.LIFECYCLE_HOOKS
                for impl in getattr(self.pm.hook, name).get_hookimpls()
            }.values()
            conditional = tuple(p for p in plugins if isinstance(p, ReportsState))
            found = self._listeners = (len(conditional) < len(plugins), conditional)
        always, conditional = found
        if not conditional:
            return self.pm.hook if always else None
        # A plugin that says whether it is active is asked each time (once
        # per run): it may become active later in the process. While it is
        # not, its hooks are left out of the relay.
        idle = tuple(plugin for plugin in conditional if not plugin.plugin_state().active)
        if not idle:
            return self.pm.hook
        if not always and len(idle) == len(conditional):
            return None
        key = frozenset(map(id, idle))
        relay = self._without.get(key)
        if relay is None:
            relay = self._without[key] = pluggy.HookRelay()
            for name in hookspecs.LIFECYCLE_HOOKS:
                setattr(relay, name, self.pm.subset_hook_caller(name, idle))
        return relay


def register_builtin_stores(pm: pluggy.PluginManager) -> None:
    """Register the kernel's own stores (``sqlite``, ``memory``) in ``pm``."""
    from pocketcore import _stores

    pm.register(_stores, name=BUILTIN_STORES)


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
