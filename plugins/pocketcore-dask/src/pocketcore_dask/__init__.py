"""The ``dask`` executor: each item of a parallel batch runs as a task on a dask cluster.

For batches whose per-item work is heavy (CPU-bound Python, or more than one
machine can do): ``prep`` and ``post`` stay in the calling process, each
item's ``exec`` (with its retries, waits and fallback) runs on a
``dask.distributed`` worker. The cluster comes from ``POCKETCORE_DASK_ADDRESS``
or ``[tool.pocketcore.dask] address``, else from a ``LocalCluster`` of worker
processes that the process starts at first use and reuses (:func:`shutdown`).

Neither pocketcore nor distributed is imported when the plugin is loaded
(which happens in every process that runs a flow): distributed when a run
first needs the cluster, pocketcore when :class:`DaskExecutor` (built on
``pocketcore.BaseExecutor``) is first asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._batch import SchedulerLost
    from ._executor import DaskExecutor

__all__ = ["DaskExecutor", "SchedulerLost", "pocketcore_register_executors", "shutdown"]

hookimpl = pluggy.HookimplMarker("pocketcore")


def shutdown() -> None:
    """Close this process's ``LocalCluster``, if one runs; the next run starts a new one.

    Runs without an address share one ``LocalCluster`` per process, started by
    the first batch that needs it and closed at interpreter exit. Call this to
    give its worker processes back earlier. Not while a batch runs on it.
    """
    from . import _cluster

    _cluster.shutdown()


def __getattr__(name: str) -> Any:
    # SchedulerLost lives with the batch code, which imports distributed, and
    # DaskExecutor builds on pocketcore.BaseExecutor: each is loaded only
    # when asked for, so that loading the plugin stays cheap.
    if name == "SchedulerLost":
        from ._batch import SchedulerLost

        return SchedulerLost
    if name == "DaskExecutor":
        from ._executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``dask`` executor."""
    from ._executor import DaskExecutor

    register(DaskExecutor())
