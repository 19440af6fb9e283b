"""Plugin loading and the registry of what plugins contribute."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import attrs
import pluggy

from . import hookspecs
from ._errors import ConfigError, PluginError, PluginWarning
from ._executor import Executor

__all__ = [
    "ExecutorEntry",
    "PluginFailure",
    "Registry",
    "get_registry",
    "make_plugin_manager",
]

AUTOLOAD_ENV = "POCKETCORE_DISABLE_PLUGIN_AUTOLOAD"
ONLY_ENV = "POCKETCORE_PLUGINS"


@attrs.frozen
class PluginFailure:
    """A plugin entry point that could not be loaded.

    Attributes:
        distribution: The distribution that declared the entry point, as
            ``"name version"`` (``"?"`` when it is not installed at all).
        entry_point: The entry point's name in the ``pocketcore`` group.
        error: A one-line description of what went wrong.
    """

    distribution: str
    entry_point: str
    error: str

    def __str__(self) -> str:
        return (
            f"plugin {self.entry_point!r} (distribution {self.distribution}) "
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


@attrs.define
class Registry:
    """The plugins of a process and what they contribute.

    Build one with :meth:`from_environment` (what :func:`get_registry` does
    once per process) or around an empty :func:`make_plugin_manager` in tests.

    Attributes:
        pm: The pluggy plugin manager.
        failures: Entry points that failed to load; each is reported, none is
            fatal to the others.
        distributions: Plugin name -> ``"distribution version"`` for plugins
            loaded from entry points.
    """

    pm: pluggy.PluginManager = attrs.field(factory=make_plugin_manager)
    failures: list[PluginFailure] = attrs.field(factory=list)
    distributions: dict[str, str] = attrs.field(factory=dict)
    _executors: dict[str, ExecutorEntry] | None = attrs.field(default=None, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    @classmethod
    def from_environment(cls) -> Registry:
        """Load the installed plugins as the environment asks.

        Entry points of the group ``pocketcore`` are loaded unless
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
            dist_name = ep.dist.name if ep.dist is not None else ""
            seen.update((ep.name, dist_name))
            if only is not None and ep.name not in only and dist_name not in only:
                continue
            if registry.pm.has_plugin(ep.name):
                continue  # the same distribution installed twice on sys.path
            try:
                registry.pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                failure = PluginFailure(_dist_label(ep), ep.name, f"{type(exc).__name__}: {exc}")
                registry.failures.append(failure)
                warnings.warn(str(failure), PluginWarning, stacklevel=2)
            else:
                registry.distributions[ep.name] = _dist_label(ep)
        for name in sorted((only or frozenset()) - seen):
            failure = PluginFailure("?", name, f"not installed (named in {ONLY_ENV})")
            registry.failures.append(failure)
            warnings.warn(str(failure), PluginWarning, stacklevel=2)
        return registry

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register ``plugin`` and return its name; contributions are re-collected.

        Raises:
            PluginError: The plugin, or another under the same name, is
                already registered.
        """
        try:
            registered = self.pm.register(plugin, name=name)
        except ValueError as exc:  # pluggy's "already registered"
            raise PluginError(str(exc)) from None
        if registered is None:  # pragma: no cover - pluggy returns None only when blocked
            raise PluginError(f"plugin {name!r} is blocked")
        self._executors = None
        return registered

    def unregister(self, plugin: object) -> None:
        """Remove ``plugin``; contributions are re-collected on next use."""
        self.pm.unregister(plugin)
        self._executors = None

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
        hook = self.pm.hook.pocketcore_register_executors
        # Each implementation gets its own register callback, so every
        # contribution is recorded with the plugin that made it.
        for impl in reversed(hook.get_hookimpls()):
            plugin_name = impl.plugin_name

            def register(executor: Any, plugin_name: str = plugin_name) -> None:
                _check_executor(executor, plugin_name)
                name = executor.name
                if name in found:
                    raise PluginError(
                        f"executor {name!r} is registered twice: by plugin "
                        f"{found[name].plugin!r} and by plugin {plugin_name!r}"
                    )
                found[name] = ExecutorEntry(name, executor, plugin_name)

            impl.function(register)
        return found

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
        names = ", ".join(sorted(self.executors)) or "none"
        if self.failures:
            names += "; " + "; ".join(str(f) for f in self.failures)
        autoload, only = _env_plugin_selection()
        if only is not None:
            names += f" (only the plugins named in {ONLY_ENV} were loaded)"
        elif not autoload:
            names += f" (plugin autoload is disabled by {AUTOLOAD_ENV})"
        return names


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
