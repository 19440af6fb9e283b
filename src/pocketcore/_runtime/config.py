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
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._core.executor import Executor
from pocketcore._core.store import Store
from pocketcore._plugins.registry import Observer, Registry
from pocketcore._runtime.limits import Limiter, as_limiter_table, check_rate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "RunConfig",
    "RunSettings",
    "Setting",
    "check_executor_value",
    "check_limit",
    "lookup_executor",
    "plugin_settings",
]


@attrs.frozen
class Setting:
    """A configured value and a human-readable description of where it came from."""

    value: Any
    source: str


def check_limit(value: object, source: str) -> int | None:
    """Return ``value`` as a concurrency limit, or raise :class:`ConfigError`.

    ``None`` means no limit; anything else must be an ``int`` >= 1 (``bool``
    is rejected even though it is an ``int``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"max_concurrency must be an integer >= 1, got {value!r} "
            f"({type(value).__name__}) from {source}"
        )
    if value < 1:
        raise ConfigError(f"max_concurrency must be >= 1, got {value} from {source}")
    return value


def check_executor_value(value: object, source: str) -> str | Executor | None:
    """Check that ``value`` can name an executor: ``None``, a name, or an executor object."""
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, type):
        raise ConfigError(
            f"executor {value.__name__} (from {source}) is a class; pass an instance of it"
        )
    if isinstance(value, Executor):
        return value
    raise ConfigError(
        f"executor must be an executor name (str) or an executor object, got "
        f"{value!r} ({type(value).__name__}) from {source}"
    )


def _check_executor_name(value: object, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"executor must be a non-empty string, got {value!r} from {source}")
    return value


def _parse_int(text: str, source: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"max_concurrency must be an integer >= 1, got {text!r} from {source}"
        ) from None
    return check_limit(value, source)


@attrs.frozen
class _Spec:
    """How one run-level setting is read: its variable, and its checks for text and values."""

    env: str
    from_text: Callable[[str, str], Any]
    from_value: Callable[[object, str], Any]


# The run-level settings. A new one is a line here, plus where it is used.
def check_on_error(value: object, source: str) -> str | None:
    """Return ``value`` as an error policy, ``"raise"`` or ``"collect"``, or raise ConfigError."""
    if value is None or value in ON_ERROR:
        return value
    raise ConfigError(
        f"on_error must be one of {', '.join(map(repr, ON_ERROR))}, got {value!r} from {source}"
    )


ON_ERROR = ("raise", "collect")


def check_limiter_value(value: object, source: str) -> str | Limiter | None:
    """Check that ``value`` can name a limiter: ``None``, a declared name, or a ``Limiter``."""
    if value is None or isinstance(value, Limiter) or (isinstance(value, str) and value):
        return value
    raise ConfigError(
        f"limiter must be a limiter name (str) or a pocketcore.Limiter, got {value!r} "
        f"({type(value).__name__}) from {source}"
    )


def _parse_rate(text: str, source: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"max_per_second must be a number, got {text!r} from {source}") from None
    return check_rate(value, source)


def _check_timeout(value: object, source: str) -> float | None:
    return check_rate(value, source, "timeout")


def _parse_timeout(text: str, source: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"timeout must be a number of seconds, got {text!r} from {source}"
        ) from None
    return _check_timeout(value, source)


def _check_limiter_name(value: object, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"limiter must be a limiter name, got {value!r} from {source}")
    return value


#: The strings that turn the cache off (in the environment, a file, the CLI, code).
CACHE_OFF = ("off", "false")


def check_cache_value(value: object, source: str) -> str | Store | bool | None:
    """Check a cache setting: a store specification, a :class:`~pocketcore.Store`, or ``False``.

    ``None`` leaves it unset; ``False`` (or the string ``"off"``) turns the
    cache off; a path (``str`` or ``os.PathLike``) or ``"NAME:..."`` names a
    store. The store itself is opened when a node first needs it.
    """
    if value is None or value is False:
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value.strip():
        return False if value.strip().lower() in CACHE_OFF else value
    if isinstance(value, bytes):
        raise ConfigError(
            f"cache must be a str path or store specification, got bytes from {source}"
        )
    if value is True:
        raise ConfigError(
            f"cache=True (from {source}) does not say where to keep results: name a store "
            "('memory', a file path such as 'cache.db', 'sqlite:///cache.db'), or False for none"
        )
    if isinstance(value, Store):
        return value
    raise ConfigError(
        f"cache must be a store specification (a path, 'memory', 'NAME:...'), a "
        f"pocketcore.Store, or False; got {value!r} ({type(value).__name__}) from {source}"
    )


def _check_cache_text(value: object, source: str) -> str | bool | None:
    if value is False or (isinstance(value, str) and value.strip()):
        return check_cache_value(value, source)  # type: ignore[return-value]
    raise ConfigError(
        f"cache must be a store specification (a path, 'memory', 'NAME:...') or false, "
        f"got {value!r} from {source}"
    )


SPECS: dict[str, _Spec] = {
    "executor": _Spec("POCKETCORE_EXECUTOR", _check_executor_name, _check_executor_name),
    "max_concurrency": _Spec("POCKETCORE_MAX_CONCURRENCY", _parse_int, check_limit),
    "max_per_second": _Spec("POCKETCORE_MAX_PER_SECOND", _parse_rate, check_rate),
    "limiter": _Spec("POCKETCORE_LIMITER", _check_limiter_name, _check_limiter_name),
    "on_error": _Spec("POCKETCORE_ON_ERROR", check_on_error, check_on_error),
    "timeout": _Spec("POCKETCORE_TIMEOUT", _parse_timeout, _check_timeout),
    "cache": _Spec("POCKETCORE_CACHE", _check_cache_text, _check_cache_text),
}


def _env_setting(key: str) -> Setting | None:
    spec = SPECS[key]
    raw = os.environ.get(spec.env, "").strip()
    if not raw:
        return None
    source = f"environment variable {spec.env}"
    return Setting(spec.from_text(raw, source), source)


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
                SPECS[key].from_value(self.table[key], source), source
            )
        return found


def _known_keys(table: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        if isinstance(value, dict):  # sub-tables belong to plugins ([tool.pocketcore.<plugin>])
            continue
        if key not in SPECS:
            raise ConfigError(f"unknown key {key!r} in {where}; known keys: {', '.join(SPECS)}")


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
        """The setting ``key`` (a key of :data:`SPECS`), or ``None`` when nothing sets it.

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


# How a value given in code (an argument of pocketcore.run, a node's or flow's
# attribute or keyword) is checked, per setting.
CODE_CHECKS: dict[str, Callable[[object, str], Any]] = {
    "executor": check_executor_value,
    "max_concurrency": check_limit,
    "max_per_second": check_rate,
    "limiter": check_limiter_value,
    "on_error": check_on_error,
    "timeout": _check_timeout,
    "cache": check_cache_value,
}


def run_arguments(**given: object) -> dict[str, Setting]:
    """Check the settings given to :func:`pocketcore.run`; return those that were given.

    Raises:
        ConfigError: A value has the wrong type or is out of range.
    """
    found = {}
    for key, value in given.items():
        if value is not None:
            source = f"argument {key}= of pocketcore.run()"
            found[key] = Setting(CODE_CHECKS[key](value, source), source)
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
