"""The process's own ``LocalCluster``: started at first use, reused, closed at exit.

Starting a cluster of worker processes takes seconds; connecting to one that
runs takes milliseconds. So runs without a scheduler address share one
``LocalCluster`` per process, started by the first batch that needs it and
kept for the runs after it, until :func:`shutdown` or the end of the
interpreter. Each run has an event loop of its own, and an asynchronous
cluster is bound to the loop that started it: this one is a synchronous
cluster, whose scheduler and nannies live on distributed's loop thread, and
each run connects its own client to it by address.

A run asking for another shape (``n_workers``, ``threads_per_worker``,
``processes``, ``log_failures``) replaces the cluster for the runs after it.
A run still connected to the one replaced keeps it until it ends: each run
leases the cluster it connects to (:func:`get`, :func:`release`), and a
replaced cluster is closed when its last lease is given back, so a batch
finishes on the cluster it started on.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._settings import Settings

if TYPE_CHECKING:
    from distributed import LocalCluster

__all__ = ["close", "get", "kill", "release", "shutdown"]

_lock = threading.Lock()
_cluster: LocalCluster | None = None
_shape: tuple[int, int, bool, bool] | None = None
_atexit_registered = False
#: Runs connected to each cluster (by id): a replaced one is closed at its last release.
_leases: dict[int, int] = {}
#: Clusters replaced while runs still used them.
_replaced: list[LocalCluster] = []


def get(settings: Settings) -> LocalCluster:
    """The process's cluster of the shape ``settings`` asks for, started if need be; leased.

    Give the lease back with :func:`release` when the run is done with it.
    Blocking (seconds, when it starts one): call it from a worker thread.
    """
    global _cluster, _shape, _atexit_registered
    from distributed import LocalCluster

    from ._worker import quiet_failures

    shape = (
        settings.n_workers,
        settings.threads_per_worker,
        settings.processes,
        settings.log_failures,
    )
    with _lock:
        if _cluster is not None and (_shape != shape or _cluster.status.name != "running"):
            if _leases.get(id(_cluster)) and _cluster.status.name == "running":
                _replaced.append(_cluster)  # its runs finish on it; closed by the last
            else:
                _close(_cluster)
            _cluster = None
        if _cluster is None:
            _cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=settings.n_workers,
                threads_per_worker=settings.threads_per_worker,
                processes=settings.processes,
                # Any free local port: programs side by side on one machine
                # must not collide (None would still try 8787). Point the
                # executor at a cluster of your own to watch its dashboard.
                dashboard_address="127.0.0.1:0",
                **_process_options(settings) if settings.processes else {},
            )
            if not settings.processes:  # its workers log in this process
                quiet_failures(not settings.log_failures)
            _shape = shape
            if not _atexit_registered:
                # Registered after distributed's own exit handlers, so run before them.
                atexit.register(shutdown)
                _atexit_registered = True
        _leases[id(_cluster)] = _leases.get(id(_cluster), 0) + 1
        return _cluster


def release(cluster: LocalCluster) -> None:
    """A run is done with ``cluster`` (from :func:`get`); closed if it was replaced meanwhile.

    Blocking (seconds, when it closes one): call it from a worker thread.
    """
    with _lock:
        left = _leases.pop(id(cluster), 0) - 1
        if left > 0:
            _leases[id(cluster)] = left
        closing = cluster in _replaced and left <= 0
        if closing:
            _replaced.remove(cluster)
    if closing:
        _close(cluster)


def _process_options(settings: Settings) -> dict[str, Any]:
    """What the nannies of worker processes are given (worker threads take neither)."""
    from ._worker import LOG_FAILURES_ENV

    return {
        # Worker processes ignore Ctrl-C: the run stops them (see _worker).
        "preload": ["pocketcore_dask._worker"],
        # Read by that preload: keep "Compute Failed" logs, or not.
        "env": {LOG_FAILURES_ENV: "1" if settings.log_failures else "0"},
    }


def _close(cluster: LocalCluster) -> None:
    with contextlib.suppress(Exception):  # a cluster already half gone closes as it can
        cluster.close()


def shutdown() -> None:
    """Close the process's ``LocalCluster``, if one runs; the next run starts a new one.

    Called at interpreter exit too. Safe to call at any time, from any
    thread, but not while a batch of this process runs on the cluster.
    """
    global _cluster
    with _lock:
        cluster, _cluster = _cluster, None
        closing = [*_replaced, *([cluster] if cluster is not None else [])]
        _replaced.clear()
        _leases.clear()
        for each in closing:
            _close(each)


def kill(cluster: LocalCluster) -> None:
    """Kill the worker processes of ``cluster`` at once (Ctrl-C); it is no longer reused.

    Told first, the nannies do not start new worker processes in place of
    the ones killed (nor log that they do). Close the clients of the cluster,
    then the cluster itself (:func:`close`).

    Until it is closed, dask's own logs are held back: the connections to the
    killed workers break, and dask reports each with a traceback, while the
    user asked for the run to stop and gets one line saying so.
    """
    global _cluster, _restore_logs
    from distributed import Nanny

    if _restore_logs is None:
        _restore_logs = _quiet("distributed")

    for nanny in list(cluster.workers.values()):
        if not isinstance(nanny, Nanny):  # a worker thread of this process: closing stops it
            continue
        nanny.close_gracefully(reason="pocketcore-run-cancelled")
        if nanny.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(nanny.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    with _lock:
        if _cluster is cluster:
            _cluster = None


def close(cluster: LocalCluster) -> None:
    """Close ``cluster`` (once killed). Blocking: call from a thread."""
    global _restore_logs
    _close(cluster)
    restore, _restore_logs = _restore_logs, None
    if restore is not None:
        restore()


# Set while a killed cluster is being closed: how to put dask's logging back.
_restore_logs: Callable[[], None] | None = None


def _quiet(name: str) -> Callable[[], None]:
    """Hold back the records of logger ``name`` (and below); return how to undo it."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    return lambda: logger.setLevel(level)
