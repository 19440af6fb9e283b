"""Configuration: every setting with the place it came from, read only when it is needed.

Most specific first: the node's or flow's own attribute (``executor``,
``max_concurrency``); the arguments of :func:`pocketcore.run`; the environment
(``POCKETCORE_EXECUTOR``, ``POCKETCORE_MAX_CONCURRENCY``); the nearest
configuration file, found from the working directory upward, else from the
program's folder upward (see :func:`find_config`); the default (the executor named after the running
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
import sysconfig
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
    "Search",
    "Setting",
    "check_cache_value",
    "find_config",
    "lookup_executor",
    "plugin_settings",
    "program_folder",
    "run_arguments",
    "set_program",
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

    Attributes:
        table: The file's pocketcore table.
        where: The file as errors name it (``pocketcore.toml``, or
            ``pyproject.toml [tool.pocketcore]``), with its folder when that
            is not the working directory.
        file: The file's path as errors name it, without the table.
        limiters: The limiters the file declares.
    """

    table: dict[str, Any]
    where: str
    file: str
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


def _read_table(path: str, file: str) -> _FileTable | None:
    data = _load_toml(path, file)
    if os.path.basename(path) == "pocketcore.toml":
        _known_keys(data, file)
        return _FileTable(data, file, file, _declared_limiters(data, file))
    tool = data.get("tool", {})
    table: object = tool.get("pocketcore") if isinstance(tool, dict) else None
    if table is None:
        return None
    where = f"{file} [tool.pocketcore]"
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.pocketcore] in {file} must be a table, got {table!r}")
    _known_keys(table, where)
    return _FileTable(table, where, file, _declared_limiters(table, file))


#: The files looked for in each folder, the first found winning.
CONFIG_FILES = ("pocketcore.toml", "pyproject.toml")
#: What marks a repository's top folder, where the search stops.
PROJECT_ROOT_MARKERS = (".git", ".hg")

# (path, mtime, size, name) -> what that file holds (None: no pocketcore table).
_file_cache: dict[tuple[str, int, int, str], _FileTable | None] = {}


@attrs.frozen
class Search:
    """Where the configuration was looked for, and what was found.

    Attributes:
        found: The table of the file found, or ``None`` when there is none.
        folders: The folders searched, nearest first (absolute paths), by
            this search and the one after it.
        stop: Why this search stopped where it did, for errors.
        then: The search from the program's folder, made when this one found
            nothing (see :func:`find_config`).
    """

    found: _FileTable | None
    folders: tuple[str, ...]
    stop: str
    then: Search | None = None

    def describe(self) -> str:
        """The files searched, in words, for an error about what the configuration lacks."""
        if self.found is not None:
            return f"the configuration file is {self.found.file}"
        text = (
            f"no configuration file found: searched pocketcore.toml and pyproject.toml in "
            f"{self._searched()}"
        )
        if self.then is not None:
            text += f", then from the program's folder in {self.then._searched()}"
        return text

    def _searched(self) -> str:
        own = self.folders if self.then is None else self.folders[: -len(self.then.folders)]
        return f"{', '.join(own)} ({self.stop})"


def _shown(folder: str, start: str) -> str:
    """``folder`` as file names in errors start: relative when at ``start``, above or below it."""
    try:
        rel = os.path.relpath(folder, start)
    except ValueError:  # different drives
        return folder
    parts = set(rel.split(os.sep))
    return rel if rel == "." or parts == {".."} or ".." not in parts else folder


#: The file ``pocketcore run`` was given (a program or a flow file), if any.
_program: list[str] = []


def set_program(path: str | None) -> None:
    """Name the file of the program being run (``pocketcore run``'s target), or forget it.

    Its folder is where the configuration is looked for when the working
    directory and the folders above it have none (see :func:`find_config`).
    """
    _program[:] = [] if path is None else [os.path.abspath(path)]


def program_folder() -> str | None:
    """The folder of the program being run, or ``None`` when there is no program file.

    The folder of the file given to ``pocketcore run``; else that of the
    script Python runs (``python path/to/flow.py``, ``python -m package``),
    unless it is an installed tool's (a console script, ``python -m pytest``)
    or there is none (an interactive session).
    """
    if _program:
        return os.path.dirname(_program[0])
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    if not isinstance(file, str) or not file:
        return None
    return _script_folder(os.path.abspath(file))


@functools.lru_cache(maxsize=8)
def _script_folder(file: str) -> str | None:
    folder = os.path.dirname(file)
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib", "scripts"):
        installed = paths.get(key)
        if installed and _is_within(folder, os.path.abspath(installed)):
            return None
    return folder


def _is_within(folder: str, parent: str) -> bool:
    try:
        return os.path.commonpath([folder, parent]) == parent
    except ValueError:  # different drives
        return False


def find_config(start: str | None = None) -> Search:
    """Find the configuration file of a run: from ``start``, or the working directory, upward.

    In the start folder, then in each folder above it: the first folder
    holding a ``pocketcore.toml``, or a ``pyproject.toml`` with a
    ``[tool.pocketcore]`` table, is the configuration (``pocketcore.toml``
    wins over ``pyproject.toml`` in the same folder). A ``pyproject.toml``
    without that table is passed over. The search stops at the top of the
    repository (a folder holding ``.git`` or ``.hg``, looked in last), else
    at the root of the file system. Without ``start``, when the working
    directory and its parents hold none, the search goes on from the
    program's folder (see :func:`program_folder`) the same way, so that
    ``python examples/rate_limits/flow.py`` finds the file beside the
    program. Files are parsed once and re-read only when they change.

    Raises:
        ConfigError: The file found cannot be read or holds an unknown key or
            a bad limiter; the message names the file.
    """
    if start is not None:
        origin = os.path.abspath(start)
        return _search(origin, origin, ())
    cwd = os.getcwd()
    first = _search(cwd, cwd, ())
    if first.found is not None:
        return first
    program = program_folder()
    if program is None or program in first.folders:
        return first
    then = _search(program, cwd, first.folders)
    return Search(then.found, first.folders + then.folders, first.stop, then)


def _search(origin: str, shown_from: str, searched: tuple[str, ...]) -> Search:
    """Search from ``origin`` upward (names shown from ``shown_from``), ``searched`` left out."""
    folder, folders = origin, list[str]()
    while True:
        if folder in searched:
            return Search(None, tuple(folders), "reached a folder searched already")
        folders.append(folder)
        shown = _shown(folder, shown_from)
        for name in CONFIG_FILES:
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            file = name if shown == "." else os.path.join(shown, name)
            key = (path, st.st_mtime_ns, st.st_size, file)
            try:
                found = _file_cache[key]
            except KeyError:
                found = _file_cache[key] = _read_table(path, file)
            if found is not None:
                return Search(found, tuple(folders), f"found {file}")
        marker = next(
            (m for m in PROJECT_ROOT_MARKERS if os.path.exists(os.path.join(folder, m))), None
        )
        if marker is not None:
            why = f"stopped at the top of the repository, which holds {marker}"
            return Search(None, tuple(folders), why)
        parent = os.path.dirname(folder)
        if parent == folder:
            return Search(None, tuple(folders), "stopped at the root of the file system")
        folder = parent


def _file_table(start: str | None) -> _FileTable | None:
    """The table of the configuration file found from ``start`` (see :func:`find_config`)."""
    return find_config(start).found


def plugin_settings(name: str, *, cwd: str | None = None) -> tuple[dict[str, Any], str | None]:
    """A plugin's own table from the configuration file of the working directory.

    Plugins keep their settings in a sub-table named after them:
    ``[tool.pocketcore.<name>]`` in ``pyproject.toml``, or ``[<name>]`` in
    ``pocketcore.toml`` (the same file and precedence as the run settings:
    the nearest one from the working directory upward, else from the
    program's folder, see :func:`find_config`).

    Args:
        name: The plugin's table name (``"dask"`` for ``[tool.pocketcore.dask]``).
        cwd: The directory the search starts in (and only it and those above
            it); by default the working directory, then the program's folder.

    Returns:
        ``(table, where)``: the table (empty when absent) and a description of
        where it was found, for error messages (``None`` when absent).

    Raises:
        ConfigError: The file cannot be read or is not valid TOML, or ``name``
            is not a table.
    """
    found = _file_table(cwd)
    if found is None or name not in found.table:
        return {}, None
    table = found.table[name]
    where = (
        f"[{name}] in {found.file}"
        if found.where == found.file
        else f"[tool.pocketcore.{name}] in {found.file}"
    )
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    return table, where


@attrs.define
class RunSettings:
    """The run-level settings of one run, each resolved on first use and then kept.

    A setting comes from the run's arguments, else the environment, else the
    configuration file found from the working directory upward, else from
    the program's folder (see :func:`find_config`). The environment and the
    file are only consulted for a setting that something asks for.

    Args:
        arguments: The settings given to :func:`pocketcore.run` (already checked).
        cwd: The folder the search for the configuration file starts in
            (``None``: the working directory when asked, then the program's folder).
    """

    arguments: dict[str, Setting] = attrs.field(factory=dict)
    cwd: str | None = None
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
        own_loop: The program started the event loop itself
            (``asyncio.run(flow.run_async(shared))``) rather than through
            :func:`pocketcore.run`: its backend is the program's choice.
    """

    backend: str | None
    settings: RunSettings
    registry: Registry
    observer: Observer | None = None
    scope: dict[str, Setting] = attrs.field(factory=dict)
    own_loop: bool = False
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

    @functools.cached_property
    def step_timeout(self) -> float | None:
        """The seconds each attempt of an async ``exec`` may take here, for nodes without their own.

        Resolved once per configuration, as :attr:`cache_setting` is.
        """
        found = self.setting("timeout")
        return None if found is None else found.value

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
                    value, source, self.backend, self.registry, own_loop=self.own_loop
                )
            return cached
        return lookup_executor(value, source, self.backend, self.registry, own_loop=self.own_loop)

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
            search = find_config(self.settings.cwd)
            declared = {} if search.found is None else search.found.limiters
            if value not in declared:
                names = ", ".join(sorted(declared)) or "none"
                raise ConfigError(
                    f"unknown limiter {value!r} (from {source}); declared limiters: {names} "
                    "(declare one under [tool.pocketcore.limiters.NAME] in pyproject.toml, "
                    f"or [limiters.NAME] in pocketcore.toml); {search.describe()}"
                )
            spec = declared[value]
            # A fresh object per run: its budget is this run's.
            found = self.limiters[value] = spec.fresh()
        return found


def lookup_executor(
    value: str | Executor,
    source: str,
    backend: str | None,
    registry: Registry,
    *,
    own_loop: bool = False,
) -> Executor:
    """Resolve an executor name (or object) and check that it can run on ``backend``."""
    if isinstance(value, type):
        raise ConfigError(
            f"executor {value.__name__} (from {source}) is a class; pass an instance of it"
        )
    executor = registry.get_executor(value, source=source) if isinstance(value, str) else value
    check_backend(executor, backend, source, own_loop=own_loop)
    return executor


def check_backend(
    executor: Executor, backend: str | None, source: str, *, own_loop: bool = False
) -> None:
    """Raise :class:`ConfigError` if ``executor`` cannot run on ``backend``.

    ``own_loop``: the program started the loop itself, and the message says
    how to let pocketcore start the one the executor needs instead.
    """
    needs = executor.backend
    if needs is not None and backend is not None and needs != backend:
        message = (
            f"executor {executor.name!r} (from {source}) needs the {needs} backend, "
            f"but this run is on {backend}"
        )
        if own_loop:
            message += (
                f": the program started the {backend} loop itself (as with "
                f"asyncio.run(flow.run_async(shared))), and pocketcore cannot change it. "
                f"Start the flow with pocketcore.run(flow, shared), or the 'pocketcore run' "
                f"command, which start the loop the executor needs; or choose an executor "
                f"that runs on {backend}"
            )
        raise ConfigError(message)
