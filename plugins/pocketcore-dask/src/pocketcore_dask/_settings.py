"""Where the ``dask`` executor finds its cluster: arguments, environment, configuration file.

Most specific first: the arguments of :class:`~pocketcore_dask.DaskExecutor`;
the environment variable ``POCKETCORE_DASK_ADDRESS``; the plugin's table in
the configuration file (``[tool.pocketcore.dask]`` in ``pyproject.toml``,
``[dask]`` in ``pocketcore.toml``), read through
:func:`pocketcore.plugin_settings` so that the file and its precedence are
the kernel's. Every key can also be set by an environment variable, ``POCKETCORE_DASK_<KEY>``
(``POCKETCORE_DASK_N_WORKERS=4``), which beats the file. With no address
anywhere, runs use a ``LocalCluster`` of this process, started at first use.

This module imports neither pocketcore nor distributed at import time: the
plugin is loaded in every process that runs a flow, and most runs never use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = [
    "ADDRESS_ENV",
    "KEYS",
    "NO_WORKERS_WARNING",
    "Settings",
    "check_arguments",
    "check_count",
    "check_flag",
    "check_seconds",
    "default_workers",
    "resolve",
]

ADDRESS_ENV = "POCKETCORE_DASK_ADDRESS"
#: The keys of the plugin's table; each is also read from ``POCKETCORE_DASK_<KEY>``.
KEYS = (
    "address",
    "n_workers",
    "threads_per_worker",
    "processes",
    "connect_timeout",
    "no_workers_warning",
    "log_failures",
)
#: Seconds a batch waits for a worker, at a scheduler that has none, before saying so.
NO_WORKERS_WARNING = 10.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one run connects to.

    Attributes:
        address: The scheduler to connect to, or ``None`` to use the
            process's ``LocalCluster`` (started at first use).
        source: Where ``address`` came from, for error messages.
        n_workers: Workers of the ``LocalCluster`` (unused with an address).
        threads_per_worker: Threads of each of its workers (unused with an address).
        processes: Whether its workers are processes (the default) or
            threads of this process (unused with an address).
        connect_timeout: Seconds to wait for the scheduler to answer, or
            ``None`` for the default (5, or dask's
            ``distributed.comm.timeouts.connect`` when shorter).
        no_workers_warning: Seconds without a worker at the scheduler, while a
            batch waits, before it says so on stderr.
        log_failures: Keep dask's "Compute Failed" log, with the worker's
            traceback, of a failing item, in the ``LocalCluster``'s workers.
    """

    address: str | None
    source: str
    n_workers: int
    threads_per_worker: int
    processes: bool = True
    connect_timeout: float | None = None
    no_workers_warning: float = NO_WORKERS_WARNING
    log_failures: bool = False


def _fail(message: str) -> NoReturn:
    from pocketcore import ConfigError  # the kernel is installed wherever its plugin runs

    raise ConfigError(message)


def check_count(value: object, name: str, source: str) -> int:
    """Return ``value`` if it is an int >= 1 (not a bool), else raise ``ConfigError``.

    The kernel has the same rule, worded the same (its ``max_concurrency``
    check), but keeps it private: a plugin may use only pocketcore's public
    API, and a validator is not worth a public name of the kernel for this
    one rule of the plugin's own keys. This module also imports nothing of
    pocketcore until a value is wrong. If the kernel ever exposes its checks
    for plugins, use them here.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(
            f"{name} must be an integer >= 1, got {value!r} ({type(value).__name__}) from {source}"
        )
    if value < 1:
        _fail(f"{name} must be >= 1, got {value} from {source}")
    return value


def check_seconds(value: object, name: str, source: str) -> float:
    """Return ``value`` as a float if it is a number > 0 (not a bool), else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = type(value).__name__
        _fail(f"{name} must be a number of seconds > 0, got {value!r} ({kind}) from {source}")
    if not value > 0:  # NaN too
        _fail(f"{name} must be > 0, got {value} from {source}")
    return float(value)


def check_flag(value: object, name: str, source: str) -> bool:
    """Return ``value`` if it is a bool, else raise ``ConfigError``."""
    if not isinstance(value, bool):
        _fail(f"{name} must be true or false, got {value!r} ({type(value).__name__}) from {source}")
    return value


def check_address(value: object, source: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise ``ConfigError``."""
    if not isinstance(value, str) or not value.strip():
        _fail(
            "address must be a non-empty string such as 'tcp://10.0.0.5:8786', "
            f"got {value!r} ({type(value).__name__}) from {source}"
        )
    return value.strip()


def default_workers() -> int:
    """One worker process per CPU this process may use (its affinity, when known)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


_CHECKS: dict[str, Any] = {
    "address": lambda value, key, source: check_address(value, source),
    "n_workers": check_count,
    "threads_per_worker": check_count,
    "processes": check_flag,
    "connect_timeout": check_seconds,
    "no_workers_warning": check_seconds,
    "log_failures": check_flag,
}
_ARGUMENT = "argument {}= of DaskExecutor()"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _from_environment(key: str) -> tuple[Any, str] | None:
    """``POCKETCORE_DASK_<KEY>``, converted and checked, with its source; ``None`` when unset."""
    variable = f"POCKETCORE_DASK_{key.upper()}"
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    source = f"environment variable {variable}"
    value: Any = raw
    if key in ("n_workers", "threads_per_worker"):
        with contextlib.suppress(ValueError):
            value = int(raw)
    elif key in ("connect_timeout", "no_workers_warning"):
        with contextlib.suppress(ValueError):
            value = float(raw)
    elif key in ("processes", "log_failures") and raw.lower() in _TRUE + _FALSE:
        value = raw.lower() in _TRUE
    return _CHECKS[key](value, key, source), source


def _from_file() -> dict[str, tuple[Any, str]]:
    """The plugin's table of the configuration file, every key checked, with its source."""
    from pocketcore import plugin_settings

    table, where = plugin_settings("dask")
    found: dict[str, tuple[Any, str]] = {}
    for key, value in table.items():
        if key not in KEYS:
            _fail(f"unknown key {key!r} in {where}; known keys: {', '.join(KEYS)}")
        source = f"key {key!r} in {where}"
        found[key] = _CHECKS[key](value, key, source), source
    return found


def check_arguments(**given: Any) -> dict[str, Any]:
    """The arguments given to ``DaskExecutor()`` (``None``: not given), each checked as its key is.

    Raises:
        ConfigError: A value is of the wrong type or out of range; the
            message names the argument.
    """
    return {
        key: _CHECKS[key](value, key, _ARGUMENT.format(key))
        for key, value in given.items()
        if value is not None
    }


def resolve(arguments: Mapping[str, Any]) -> Settings:
    """Resolve the settings of one run; arguments (already checked) win, then the environment.

    Every key of the file's table and every ``POCKETCORE_DASK_*`` variable
    that is set is checked, even one that a more specific source overrides:
    a wrong value there is a mistake either way.

    Raises:
        ConfigError: A value is of the wrong type or out of range, or the
            table has an unknown key; the message names the variable or the
            file and key.
    """
    file = _from_file()
    chosen: dict[str, tuple[Any, str]] = {}
    for key in KEYS:
        from_env = _from_environment(key)
        if key in arguments:
            chosen[key] = arguments[key], _ARGUMENT.format(key)
        elif from_env is not None:
            chosen[key] = from_env
        elif key in file:
            chosen[key] = file[key]

    def value(key: str, default: Any) -> Any:
        return chosen[key][0] if key in chosen else default

    return Settings(
        address=value("address", None),
        source=chosen["address"][1]
        if "address" in chosen
        else "no address configured: the process's LocalCluster",
        n_workers=value("n_workers", None) or default_workers(),
        threads_per_worker=value("threads_per_worker", 1),
        processes=value("processes", True),
        connect_timeout=value("connect_timeout", None),
        no_workers_warning=value("no_workers_warning", NO_WORKERS_WARNING),
        log_failures=value("log_failures", False),
    )
