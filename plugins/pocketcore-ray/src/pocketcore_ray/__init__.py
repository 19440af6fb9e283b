"""The ``ray`` executor: each item of a parallel batch runs as a task on a Ray cluster.

For batches whose per-item work is heavy (CPU-bound Python, or more than one
machine can do): ``prep`` and ``post`` stay in the calling process, each
item's ``exec`` (with its retries, waits, timeout and fallback) runs in a Ray
worker. The cluster is the program's own Ray (when it called ``ray.init``),
else the one at ``POCKETCORE_RAY_ADDRESS`` or ``[tool.pocketcore.ray]
address``, else a local instance that the process starts at first use and
reuses (:func:`shutdown`).

Neither pocketcore nor ray is imported when the plugin is loaded (which
happens in every process that runs a flow): ray when a batch first needs it,
pocketcore when :class:`RayExecutor` is first asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._batch import WorkerDied
    from ._executor import RayExecutor

__all__ = ["RayExecutor", "WorkerDied", "pocketcore_register_executors", "shutdown"]

hookimpl = pluggy.HookimplMarker("pocketcore")


def shutdown() -> None:
    """Shut down the Ray instance pocketcore started (or attached to); the next run starts anew.

    Runs without a Ray of the program's own share one instance per process,
    started by the first batch that needs it and shut down at interpreter
    exit. Call this to give its processes back earlier; not while a batch
    runs on it. A Ray the program initialised itself is left alone.
    """
    from . import _cluster

    _cluster.shutdown()


def __getattr__(name: str) -> Any:
    # Each is loaded only when asked for, so that loading the plugin stays cheap.
    if name == "RayExecutor":
        from ._executor import RayExecutor

        return RayExecutor
    if name == "WorkerDied":
        from ._batch import WorkerDied

        return WorkerDied
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``ray`` executor."""
    from ._executor import RayExecutor

    register(RayExecutor())
