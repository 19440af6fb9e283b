"""Where the ``dask`` executor finds its cluster: arguments, environment, configuration file.

Most specific first: the arguments of :class:`~pocketcore_dask.DaskExecutor`;
the environment, ``POCKETCORE_DASK_<KEY>`` (``POCKETCORE_DASK_ADDRESS``,
``POCKETCORE_DASK_N_WORKERS=4``); the plugin's table in the configuration
file (``[tool.pocketcore.dask]`` in ``pyproject.toml``, ``[dask]`` in
``pocketcore.toml``). The keys are declared once, in :data:`SETTINGS`, and
resolved with the kernel's :class:`pocketcore.PluginSettings`, so that the
file, the precedence and the errors are those of every setting. With no
address anywhere, runs use a ``LocalCluster`` of this process, started at
first use.

This module does not import distributed: the plugin is loaded in every
process that runs a flow, and most runs never use it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from pocketcore import PluginKey, PluginSettings

__all__ = [
    "NO_WORKERS_WARNING",
    "SETTINGS",
    "Settings",
    "check_arguments",
    "default_workers",
]

#: Seconds a batch waits for a worker, at a scheduler that has none, before saying so.
NO_WORKERS_WARNING = 10.0


def default_workers() -> int:
    """One worker process per CPU this process may use (its affinity, when known)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one run connects to, each value with where it came from (``SETTINGS.build(Settings)``).

    Attributes:
        address: The scheduler to connect to, or ``None`` to use the
            process's ``LocalCluster`` (started at first use).
        n_workers: Workers of the ``LocalCluster`` (default: one per CPU it
            may use; unused with an address).
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
        sources: Where each value that was set came from, by key (for
            error messages: ``sources["address"]``).
    """

    address: str | None = None
    n_workers: int = dataclasses.field(default_factory=default_workers)
    threads_per_worker: int = 1
    processes: bool = True
    connect_timeout: float | None = None
    no_workers_warning: float = NO_WORKERS_WARNING
    log_failures: bool = False
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)


#: The plugin's keys: each also read from ``POCKETCORE_DASK_<KEY>``.
SETTINGS = PluginSettings(
    "dask",
    [
        PluginKey.text("address", "'tcp://10.0.0.5:8786'"),
        PluginKey.count("n_workers"),
        PluginKey.count("threads_per_worker"),
        PluginKey.flag("processes"),
        PluginKey.seconds("connect_timeout"),
        PluginKey.seconds("no_workers_warning"),
        PluginKey.flag("log_failures"),
    ],
    owner="DaskExecutor()",
)
check_arguments = SETTINGS.check_arguments
