"""Configuration resolution: which executor and which limit a run uses.

Most specific first: the node's or flow's own ``executor`` /
``max_concurrency``; the arguments of :func:`pocketcore.run`; the environment
(``POCKETCORE_EXECUTOR``, ``POCKETCORE_MAX_CONCURRENCY``); ``pocketcore.toml``
in the working directory, else ``[tool.pocketcore]`` in its
``pyproject.toml``; the default (the executor named after the running
backend). Run-level settings are resolved once per run; node attributes are
looked at when that node fans out.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._core.executor import Executor
from pocketcore._plugins.registry import Observer, Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "RunConfig",
    "Setting",
    "check_executor_value",
    "check_limit",
    "plugin_settings",
    "resolve_run",
]

EXECUTOR_ENV = "POCKETCORE_EXECUTOR"
LIMIT_ENV = "POCKETCORE_MAX_CONCURRENCY"
FILE_KEYS = ("executor", "max_concurrency")


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


def _env_settings() -> tuple[Setting | None, Setting | None]:
    executor = limit = None
    raw = os.environ.get(EXECUTOR_ENV, "").strip()
    if raw:
        executor = Setting(raw, f"environment variable {EXECUTOR_ENV}")
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if raw:
        source = f"environment variable {LIMIT_ENV}"
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(
                f"max_concurrency must be an integer >= 1, got {raw!r} from {source}"
            ) from None
        limit = Setting(check_limit(value, source), source)
    return executor, limit


def _load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _table_settings(table: dict[str, Any], where: str) -> tuple[Setting | None, Setting | None]:
    for key, value in table.items():
        # Sub-tables belong to plugins ([tool.pocketcore.<plugin>]).
        if key not in FILE_KEYS and not isinstance(value, dict):
            raise ConfigError(f"unknown key {key!r} in {where}; known keys: {', '.join(FILE_KEYS)}")
    executor = limit = None
    if "executor" in table:
        source = f"key 'executor' in {where}"
        value = table["executor"]
        if not isinstance(value, str) or not value:
            raise ConfigError(f"executor must be a non-empty string, got {value!r} from {source}")
        executor = Setting(value, source)
    if "max_concurrency" in table:
        source = f"key 'max_concurrency' in {where}"
        limit = Setting(check_limit(table["max_concurrency"], source), source)
    return executor, limit


@attrs.frozen
class _FileTable:
    """The pocketcore table of one configuration file, and the run settings in it."""

    table: dict[str, Any]
    where: str
    executor: Setting | None
    limit: Setting | None


# (path, mtime, size) -> what that file holds (None: no pocketcore table).
_file_cache: dict[tuple[str, int, int], _FileTable | None] = {}


def _read_table(path: str, name: str) -> _FileTable | None:
    data = _load_toml(path)
    if name == "pocketcore.toml":
        return _FileTable(data, "pocketcore.toml", *_table_settings(data, "pocketcore.toml"))
    tool = data.get("tool", {})
    table: object = tool.get("pocketcore") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.pocketcore] in pyproject.toml must be a table, got {table!r}")
    where = "pyproject.toml [tool.pocketcore]"
    return _FileTable(table, where, *_table_settings(table, where))


def _file_table(cwd: str) -> _FileTable | None:
    """The table of ``pocketcore.toml``, else of ``pyproject.toml``, in ``cwd``.

    Files are parsed once and re-read only when they change (a ``stat`` per
    run is all a run pays).
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


def _file_settings(cwd: str) -> tuple[Setting | None, Setting | None]:
    found = _file_table(cwd)
    return (None, None) if found is None else (found.executor, found.limit)


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
        ConfigError: The file is not valid TOML, or ``name`` is not a table.
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


@attrs.frozen
class RunConfig:
    """What one run resolved: its backend, its executor and its limit.

    A flow with settings of its own runs its nodes under a :meth:`scoped`
    copy, so its ``executor`` / ``max_concurrency`` apply to everything inside
    it that does not say otherwise.

    Attributes:
        backend: The async library the run is on (``"asyncio"``, ``"trio"``)
            or ``None`` for a run with no event loop (a sync flow).
        executor_value: The executor for parallel nodes without their own: a
            name or an executor object.
        executor_source: Where that choice came from.
        limit: The concurrency limit (``None``: unlimited).
        limit_source: Where the limit came from.
        registry: The registry executor names are looked up in.
        observer: Where lifecycle events go, or ``None`` when no plugin listens.
    """

    backend: str | None
    executor_value: str | Executor
    executor_source: str
    limit: int | None
    limit_source: str
    registry: Registry
    observer: Observer | None = None
    # Shared by scoped copies: a name is looked up (and checked) once per run.
    by_name: dict[str, Executor] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def executor(self) -> Executor:
        """The executor object for ``executor_value``.

        Raises:
            ConfigError: The name is unknown or the executor cannot run on
                this run's backend. An unusable *default* is only reported
                here, when a parallel node needs it, so flows without
                parallel nodes run even with no executor plugin loaded.
        """
        return self.lookup(self.executor_value, self.executor_source)

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

    def scoped(self, executor: str | Executor | None, limit: int | None, source: str) -> RunConfig:
        """This configuration with a flow's own executor and/or limit in force.

        Args:
            executor: The flow's executor, or ``None`` to keep this one's.
            limit: The flow's limit, or ``None`` to keep this one's.
            source: Describes the flow, for error messages.

        Raises:
            ConfigError: The flow's executor is unusable in this run.
        """
        cfg = self
        if executor is not None:
            exe_source = f"attribute executor of {source}"
            self.lookup(executor, exe_source)  # fail early, not at the first fan-out
            cfg = attrs.evolve(cfg, executor_value=executor, executor_source=exe_source)
        if limit is not None:
            lim_source = f"attribute max_concurrency of {source}"
            cfg = attrs.evolve(cfg, limit=check_limit(limit, lim_source), limit_source=lim_source)
        return cfg


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


def run_level_settings(
    executor: object = None, max_concurrency: object = None, *, cwd: str | None = None
) -> tuple[Setting | None, Setting | None]:
    """The run-level executor and limit, from arguments, environment and file.

    Returns ``(executor, limit)`` settings, each ``None`` when nothing set it.
    """
    exe = lim = None
    if executor is not None:
        source = "argument executor= of pocketcore.run()"
        exe = Setting(check_executor_value(executor, source), source)
    if max_concurrency is not None:
        source = "argument max_concurrency= of pocketcore.run()"
        lim = Setting(check_limit(max_concurrency, source), source)
    if exe is None or lim is None:
        env_exe, env_lim = _env_settings()
        exe, lim = exe or env_exe, lim or env_lim
    if exe is None or lim is None:
        file_exe, file_lim = _file_settings(os.getcwd() if cwd is None else cwd)
        exe, lim = exe or file_exe, lim or file_lim
    return exe, lim


def resolve_run(
    backend: str | None,
    executor: Setting | None,
    limit: Setting | None,
    registry: Registry,
) -> RunConfig:
    """Build the :class:`RunConfig` of a run on ``backend``.

    A configured executor name must exist; whether the executor can run on
    ``backend`` is checked when a node first uses it. With none configured,
    the default is the executor named after the backend (``asyncio`` on
    asyncio, ``trio`` on trio), looked up only when a parallel node needs it.

    Raises:
        ConfigError: The configured executor name is unknown.
    """
    if executor is None:
        name = backend or "asyncio"
        executor = Setting(name, f"the default for the {name} backend")
        explicit = False
    else:
        explicit = True
    cfg = RunConfig(
        backend=backend,
        executor_value=executor.value,
        executor_source=executor.source,
        limit=None if limit is None else limit.value,
        limit_source="no limit configured" if limit is None else limit.source,
        registry=registry,
        observer=registry.observer,
    )
    if explicit and isinstance(executor.value, str):
        # An unknown name is reported now. Whether the executor suits the
        # backend is checked when a node uses it: a flow with an executor of
        # its own may never fall back to the run's.
        registry.get_executor(executor.value, source=executor.source)
    return cfg
