"""The ``dask`` executor: each item of a parallel batch runs as a task on a dask cluster.

For batches whose per-item work is heavy (CPU-bound Python, or more than one
machine can do): ``prep`` and ``post`` stay in the calling process, each
item's ``exec`` (with its retries, waits and fallback) runs on a
``dask.distributed`` worker. The cluster comes from ``POCKETCORE_DASK_ADDRESS``
or ``[tool.pocketcore.dask] address``, else a ``LocalCluster`` of worker
processes is started for the run.

Neither pocketcore nor distributed is imported when the plugin is loaded
(which happens in every process that runs a flow): distributed when a run
first needs the cluster, pocketcore only to read the plugin's settings and
raise its ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from ._executor import DaskExecutor

__all__ = ["DaskExecutor", "pocketcore_register_executors"]

hookimpl = pluggy.HookimplMarker("pocketcore")


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``dask`` executor."""
    register(DaskExecutor())
