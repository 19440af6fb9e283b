"""The ``asyncio`` executor: items as asyncio tasks, with fail-fast and a limit.

Unlike a bare ``gather``, a failing item cancels its siblings and ``map`` waits
for them before raising the item's own exception, and ``limit`` bounds the
tasks in flight: each task takes the next item from the input once its own
is done.

Each item is one task running ``pocketcore.TaskExecutor.pull`` (the items'
loop every task-based executor shares) around the item's call: it catches the
item's exception (so the failing task cancels its siblings itself, before any
of them starts), stores the result in its slot and counts the batch down; the
last one to end wakes ``map``.
``asyncio.gather`` is not used: on top of that coroutine it would add, per
item, a copy of the context and a handle for its done-callback. At 10,000
items those extra objects brought on a full (generation 2) garbage
collection that a raw ``gather`` of the same calls escapes, and which cost
more than scheduling the whole batch. As it is, a batch keeps no more
objects alive per item than a raw ``gather`` does.

For the same reason the batch's limiters (``max_per_second``, a shared
limiter) reach it as a gate (``pocketcore.GatingExecutor``) rather than as
a wrapper coroutine around each call: the item's task enters the gate right
before its call and leaves it when the call has ended.

:class:`AsyncioExecutor` builds on ``pocketcore.TaskExecutor``, so it lives
in a module of its own that imports pocketcore, loaded the first time the
class is asked for (by the hook below, or an import of the name): loading
the plugin, which every process that runs a flow does, does not import pocketcore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._executor import AsyncioExecutor

__all__ = ["AsyncioExecutor", "pocketcore_register_executors"]

hookimpl = pluggy.HookimplMarker("pocketcore")


def __getattr__(name: str) -> Any:
    if name == "AsyncioExecutor":
        from ._executor import AsyncioExecutor

        return AsyncioExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``asyncio`` executor."""
    from ._executor import AsyncioExecutor

    register(AsyncioExecutor())
