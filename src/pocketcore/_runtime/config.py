"""Configuration: every setting with the place it came from, read only when it is needed.

Most specific first: the node's or flow's own attribute (``executor``,
``max_concurrency``); the arguments of :func:`pocketcore.run`; the environment
(``POCKETCORE_EXECUTOR``, ``POCKETCORE_MAX_CONCURRENCY``); ``pocketcore.toml``
in the working directory, else ``[tool.pocketcore]`` in its
``pyproject.toml``; the default (the executor named after the running
backend).

A run resolves each run-level setting once, and only when something asks for
it: a flow with no parallel node never reads the environment or the files,
so, as with PocketFlow, whatever they hold cannot stop it.

Which settings there are, their variables and their checks, is the table of
:mod:`pocketcore._runtime.settings`; this module only reads it.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._core.executor import Executor
from pocketcore._plugins.registry import Observer, Registry
from pocketcore._runtime.limits import Limiter, as_limiter_table
from pocketcore._runtime.settings import SETTINGS, check_cache_value, refuse_cache_true

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "RunConfig",
    "RunSettings",
    "Setting",
    "check_cache_value",
    "lookup_executor",
    "plugin_settings",
    "run_arguments",
]


@attrs.frozen
class Setting:
    """A configured value and a human-readable description of where it came from."""

    value: Any
    source: str


def _env_setting(key: str) -> Setting | None:
    spec = SETTINGS[key]
    raw = os.environ.get(spec.env, "").strip()
    if not raw:
        return None
    source = f"environment variable {spec.env}"
    return Setting(spec.parse(raw, source), source)


def _load_toml(path: str, name: str) -> dict[str, Any]:
    # Whatever makes the file unreadable (a directory, bytes that are not
    # UTF-8, nesting deeper than the parser's recursion, bad syntax) is the
    # file's fault, and the error says which file.
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name} is not valid TOML: {exc} ({path})") from None
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise ConfigError(f"cannot read {name}: {reason} ({path})") from None
    return data


@attrs.frozen
class _FileTable:
    """The pocketcore table of one configuration file.

    Its keys are checked to be known when the file is read; each value is
    checked when its setting is first asked for, so a bad value of a
    setting a run never uses does not stop it.
    """

    table: dict[str, Any]
    where: str
    limiters: dict[str, Limiter]
    _checked: dict[str, Setting] = attrs.field(factory=dict, eq=False)

    def setting(self, key: str) -> Setting | None:
        """The file's value of ``key``, checked, or ``None`` when the file does not set it.

        Raises:
            ConfigError: The value is unusable; the message names the file.
        """
        found = self._checked.get(key)
        if found is None and key in self.table:
            source = f"key {key!r} in {self.where}"
            found = self._checked[key] = Setting(
                SETTINGS[key].plain(self.table[key], source), source
            )
        return found


def _known_keys(table: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        if isinstance(value, dict):  # sub-tables belong to plugins ([tool.pocketcore.<plugin>])
            continue
        if key not in SETTINGS:
            raise ConfigError(f"unknown key {key!r} in {where}; known keys: {', '.join(SETTINGS)}")


def _declared_limiters(table: dict[str, Any], where: str) -> dict[str, Limiter]:
    declared = table.get("limiters", {})
    if not isinstance(declared, dict):
        raise ConfigError(f"limiters in {where} must be a table of tables, got {declared!r}")
    return {name: as_limiter_table(spec, where, name) for name, spec in declared.items()}


def _read_table(path: str, name: str) -> _FileTable | None:
    data = _load_toml(path, name)
    if name == "pocketcore.toml":
        _known_keys(data, name)
        return _FileTable(data, name, _declared_limiters(data, name))
    tool = data.get("tool", {})
    table: object = tool.get("pocketcore") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.pocketcore] in pyproject.toml must be a table, got {table!r}")
    where = "pyproject.toml [tool.pocketcore]"
    _known_keys(table, where)
    return _FileTable(table, where, _declared_limiters(table, "pyproject.toml"))


# (path, mtime, size) -> what that file holds (None: no pocketcore table).
_file_cache: dict[tuple[str, int, int], _FileTable | None] = {}


def _file_table(cwd: str) -> _FileTable | None:
    """The table of ``pocketcore.toml``, else of ``pyproject.toml``, in ``cwd``.

    Files are parsed once and re-read only when they change.

    Raises:
        ConfigError: The file cannot be read or holds a bad value; the
            message names the file.
    """
    for name in ("pocketcore.toml", "pyproject.toml"):
        path = os.path.join(cwd, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        key = (path, st.st_mtime_ns, st.st_size)
        try:
            found = _file_cache[key]
        except KeyError:
            found = _file_cache[key] = _read_table(path, name)
        if found is not None:
            return found
    return None


def plugin_settings(name: str, *, cwd: str | None = None) -> tuple[dict[str, Any], str | None]:
    """A plugin's own table from the configuration file of the working directory.

    Plugins keep their settings in a sub-table named after them:
    ``[tool.pocketcore.<name>]`` in ``pyproject.toml``, or ``[<name>]`` in
    ``pocketcore.toml`` (the same file and precedence as the run settings).

    Args:
        name: The plugin's table name (``"dask"`` for ``[tool.pocketcore.dask]``).
        cwd: The directory to look in; the working directory by default.

    Returns:
        ``(table, where)``: the table (empty when absent) and a description of
        where it was found, for error messages (``None`` when absent).

    Raises:
        ConfigError: The file cannot be read or is not valid TOML, or ``name``
            is not a table.
    """
    found = _file_table(os.getcwd() if cwd is None else cwd)
    if found is None or name not in found.table:
        return {}, None
    table = found.table[name]
    where = (
        f"[{name}] in pocketcore.toml"
        if found.where == "pocketcore.toml"
        else (f"[tool.pocketcore.{name}] in pyproject.toml")
    )
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    return table, where


@attrs.define
class RunSettings:
    """The run-level settings of one run, each resolved on first use and then kept.

    A setting comes from the run's arguments, else the environment, else the
    configuration file of the working directory. The environment and the
    file are only consulted for a setting that something asks for.

    Args:
        arguments: The settings given to :func:`pocketcore.run` (already checked).
        cwd: Where the configuration file is looked for.
    """

    arguments: dict[str, Setting] = attrs.field(factory=dict)
    cwd: str = attrs.field(factory=os.getcwd)
    _resolved: dict[str, Setting | None] = attrs.field(factory=dict, init=False)

    def get(self, key: str) -> Setting | None:
        """The setting ``key`` (a key of the settings table), or ``None`` when nothing sets it.

        Raises:
            ConfigError: The environment or the file holds an unusable value,
                or the file cannot be read; the message names which.
        """
        try:
            return self._resolved[key]
        except KeyError:
            pass
        found = self.arguments.get(key) or _env_setting(key)
        if found is None:
            table = _file_table(self.cwd)
            found = None if table is None else table.setting(key)
        self._resolved[key] = found
        return found


def run_arguments(given: Mapping[str, object]) -> dict[str, Setting]:
    """Check the settings given to :func:`pocketcore.run`; return those that were given.

    Raises:
        TypeError: A keyword is not a setting, as for any unknown keyword.
        ConfigError: A value has the wrong type or is out of range.
    """
    found = {}
    for key, value in given.items():
        spec = SETTINGS.get(key)
        if spec is None:
            raise TypeError(f"run() got an unexpected keyword argument {key!r}")
        if value is not None:
            source = f"argument {key}= of pocketcore.run()"
            found[key] = Setting(spec.check(value, source), source)
    return found


@attrs.frozen(slots=False)  # not slots: cache_setting is a cached_property
class RunConfig:
    """What one run uses: its backend, its settings and its plugins.

    A flow with settings of its own runs its nodes under a :meth:`scoped`
    copy, so its ``executor`` / ``max_concurrency`` apply to everything inside
    it that does not say otherwise.

    Attributes:
        backend: The async library the run is on (``"asyncio"``, ``"trio"``)
            or ``None`` for a run with no event loop (a sync flow).
        settings: The run-level settings, read on first use.
        registry: The registry executor names are looked up in.
        observer: Where lifecycle events go, or ``None`` when no plugin listens.
        scope: Settings a flow put in force for the nodes inside it; they
            win over :attr:`settings`.
    """

    backend: str | None
    settings: RunSettings
    registry: Registry
    observer: Observer | None = None
    scope: dict[str, Setting] = attrs.field(factory=dict)
    # Shared by scoped copies: a name is looked up (and checked) once per run,
    # and a declared limiter is one object, one budget, for the whole run.
    by_name: dict[str, Executor] = attrs.field(factory=dict, eq=False, repr=False)
    limiters: dict[str, Limiter] = attrs.field(factory=dict, eq=False, repr=False)
    #: What the result cache has warned about in this run: (id(node), kind).
    cache_warned: set[tuple[int, str]] = attrs.field(factory=set, eq=False, repr=False)

    def setting(self, key: str) -> Setting | None:
        """The setting ``key`` in force here: a flow's, else the run's."""
        found = self.scope.get(key)
        return self.settings.get(key) if found is None else found

    @functools.cached_property
    def cache_setting(self) -> Setting | None:
        """The result cache in force here for nodes without their own; ``None`` when off.

        Read on every node step, so it is resolved once per configuration
        (a flow with settings of its own runs its nodes under a copy).
        """
        found = self.setting("cache")
        if found is not None and found.value is True:
            raise refuse_cache_true(found.source)
        return None if found is None or found.value is False else found

    @property
    def executor(self) -> Executor:
        """The executor for parallel nodes without one of their own.

        With none configured, the default is the executor named after the
        backend (``asyncio`` on asyncio, ``trio`` on trio).

        Raises:
            ConfigError: The name is unknown or the executor cannot run on
                this run's backend. An unusable *default* is only reported
                here, when a parallel node needs it, so flows without
                parallel nodes run even with no executor plugin loaded.
        """
        chosen = self.setting("executor")
        if chosen is None:
            name = self.backend or "asyncio"
            chosen = Setting(name, f"the default for the {name} backend")
        return self.lookup(chosen.value, chosen.source)

    @property
    def limit(self) -> int | None:
        """The concurrency limit for parallel nodes without one of their own (``None``: none)."""
        chosen = self.setting("max_concurrency")
        return None if chosen is None else chosen.value

    def lookup(self, value: str | Executor, source: str) -> Executor:
        """Resolve an executor name or object and check it fits this run's backend."""
        if isinstance(value, str):
            cached = self.by_name.get(value)
            if cached is None:
                cached = self.by_name[value] = lookup_executor(
                    value, source, self.backend, self.registry
                )
            return cached
        return lookup_executor(value, source, self.backend, self.registry)

    def scoped(self, own: dict[str, Setting]) -> RunConfig:
        """This configuration with a flow's own settings in force for the nodes inside it.

        Raises:
            ConfigError: The flow's executor is unusable in this run.
        """
        executor = own.get("executor")
        if executor is not None:  # fail early, not at the first fan-out
            self.lookup(executor.value, executor.source)
        return attrs.evolve(self, scope={**self.scope, **own})

    def limiter(self, value: str | Limiter, source: str) -> Limiter:
        """The limiter ``value`` names (one object per name for the whole run), or ``value``.

        Raises:
            ConfigError: No limiter of that name is declared in the
                configuration file; the message lists the declared ones.
        """
        if isinstance(value, Limiter):
            return value
        found = self.limiters.get(value)
        if found is None:
            table = _file_table(self.settings.cwd)
            declared = {} if table is None else table.limiters
            if value not in declared:
                names = ", ".join(sorted(declared)) or "none"
                raise ConfigError(
                    f"unknown limiter {value!r} (from {source}); declared limiters: {names} "
                    "(declare one under [tool.pocketcore.limiters.NAME] in pyproject.toml, "
                    "or [limiters.NAME] in pocketcore.toml)"
                )
            spec = declared[value]
            # A fresh object per run: its budget is this run's.
            found = self.limiters[value] = Limiter(
                spec.max_concurrency, spec.max_per_second, name=value
            )
        return found


def lookup_executor(
    value: str | Executor, source: str, backend: str | None, registry: Registry
) -> Executor:
    """Resolve an executor name (or object) and check that it can run on ``backend``."""
    if isinstance(value, type):
        raise ConfigError(
            f"executor {value.__name__} (from {source}) is a class; pass an instance of it"
        )
    executor = registry.get_executor(value, source=source) if isinstance(value, str) else value
    check_backend(executor, backend, source)
    return executor


def check_backend(executor: Executor, backend: str | None, source: str) -> None:
    """Raise :class:`ConfigError` if ``executor`` cannot run on ``backend``."""
    needs = executor.backend
    if needs is not None and backend is not None and needs != backend:
        raise ConfigError(
            f"executor {executor.name!r} (from {source}) needs the {needs} backend, "
            f"but this run is on {backend}"
        )
