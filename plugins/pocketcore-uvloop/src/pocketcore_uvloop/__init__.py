"""The ``uvloop`` executor: the ``asyncio`` executor, on uvloop's event loop.

Scheduling is not repeated here: :class:`UvloopExecutor` subclasses
:class:`pocketcore_asyncio.AsyncioExecutor` and changes only its ``name`` and
``run``. When pocketcore starts the loop (``pocketcore.run``, a sync flow's
parallel batch), ``run`` starts uvloop's; its ``backend`` is ``"asyncio"``,
so a batch awaited inside an asyncio loop that is already running (uvloop's
or the default one) is scheduled there exactly as by the ``asyncio`` executor.

uvloop is imported only inside ``run``, and :class:`UvloopExecutor` (built,
through the asyncio executor, on ``pocketcore.TaskExecutor``) only when it is
first asked for: loading the plugin, which every process that runs a flow
does, stays as cheap as loading the asyncio one, and imports neither uvloop
nor pocketcore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._executor import UvloopExecutor

__all__ = ["UvloopExecutor", "pocketcore_register_executors"]

hookimpl = pluggy.HookimplMarker("pocketcore")


def __getattr__(name: str) -> Any:
    if name == "UvloopExecutor":
        from ._executor import UvloopExecutor

        return UvloopExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``uvloop`` executor."""
    from ._executor import UvloopExecutor

    register(UvloopExecutor())
