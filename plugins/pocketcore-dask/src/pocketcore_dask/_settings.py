"""Where the ``dask`` executor finds its cluster: arguments, environment, configuration file.

Most specific first: the arguments of :class:`~pocketcore_dask.DaskExecutor`;
the environment variable ``POCKETCORE_DASK_ADDRESS``; the plugin's table in
the configuration file (``[tool.pocketcore.dask]`` in ``pyproject.toml``,
``[dask]`` in ``pocketcore.toml``), read through
:func:`pocketcore.plugin_settings` so that the file and its precedence are
the kernel's. With no address anywhere, the run starts a ``LocalCluster``.

This module imports neither pocketcore nor distributed at import time: the
plugin is loaded in every process that runs a flow, and most runs never use it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, NoReturn

__all__ = [
    "ADDRESS_ENV",
    "KEYS",
    "NO_WORKERS_WARNING",
    "Settings",
    "check_count",
    "check_seconds",
    "default_workers",
    "resolve",
]

ADDRESS_ENV = "POCKETCORE_DASK_ADDRESS"
KEYS = ("address", "n_workers", "threads_per_worker", "no_workers_warning")
#: Seconds a batch waits for a worker, at a scheduler that has none, before saying so.
NO_WORKERS_WARNING = 10.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one run connects to.

    Attributes:
        address: The scheduler to connect to, or ``None`` to start a
            ``LocalCluster`` for the run.
        source: Where ``address`` came from, for error messages.
        n_workers: Worker processes of the ``LocalCluster`` (unused with an address).
        threads_per_worker: Threads of each of its workers (unused with an address).
        no_workers_warning: Seconds without a worker at the scheduler, while a
            batch waits, before it says so on stderr.
    """

    address: str | None
    source: str
    n_workers: int
    threads_per_worker: int
    no_workers_warning: float = NO_WORKERS_WARNING


def _fail(message: str) -> NoReturn:
    from pocketcore import ConfigError  # the kernel is installed wherever its plugin runs

    raise ConfigError(message)


def check_count(value: object, name: str, source: str) -> int:
    """Return ``value`` if it is an int >= 1 (not a bool), else raise ``ConfigError``."""
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


def resolve(
    address: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    no_workers_warning: float | None = None,
) -> Settings:
    """Resolve the settings of one run; arguments (already checked) win.

    Every key of the file's table is checked, even one that a more specific
    source overrides: a wrong value there is a mistake either way.

    Raises:
        ConfigError: A value is of the wrong type or out of range, or the
            table has an unknown key; the message names the variable or the
            file and key.
    """
    from pocketcore import plugin_settings

    table, where = plugin_settings("dask")
    for key in table:
        if key not in KEYS:
            _fail(f"unknown key {key!r} in {where}; known keys: {', '.join(KEYS)}")
    file: dict[str, Any] = {}
    if "address" in table:
        file["address"] = check_address(table["address"], f"key 'address' in {where}")
    for key in ("n_workers", "threads_per_worker"):
        if key in table:
            file[key] = check_count(table[key], key, f"key {key!r} in {where}")
    if "no_workers_warning" in table:
        file["no_workers_warning"] = check_seconds(
            table["no_workers_warning"],
            "no_workers_warning",
            f"key 'no_workers_warning' in {where}",
        )

    source = "argument address= of DaskExecutor()"
    if address is None:
        raw = os.environ.get(ADDRESS_ENV, "").strip()
        if raw:
            address, source = raw, f"environment variable {ADDRESS_ENV}"
        elif "address" in file:
            address, source = file["address"], f"key 'address' in {where}"
        else:
            source = "no address configured: a LocalCluster for the run"
    return Settings(
        address=address,
        source=source,
        n_workers=n_workers or file.get("n_workers") or default_workers(),
        threads_per_worker=threads_per_worker or file.get("threads_per_worker") or 1,
        no_workers_warning=no_workers_warning
        or file.get("no_workers_warning")
        or NO_WORKERS_WARNING,
    )
