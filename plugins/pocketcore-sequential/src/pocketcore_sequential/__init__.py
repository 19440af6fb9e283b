"""The ``sequential`` executor: one item at a time, in input order.

Useful for debugging (deterministic order, plain tracebacks) and as the
baseline parallel executors are measured against. It runs on any backend;
started on its own it uses asyncio (``pocketcore.BaseExecutor``'s ``run``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from pocketcore import BaseExecutor

if TYPE_CHECKING:
    from pocketcore import Gate

__all__ = ["SequentialExecutor", "pocketcore_register_executors"]

R = TypeVar("R")

hookimpl = pluggy.HookimplMarker("pocketcore")


class SequentialExecutor(BaseExecutor):
    """Awaits each item's call before pulling the next item.

    ``limit`` is accepted and has no effect: at most one call is ever in flight.
    A failure stops the batch at once; later items are never pulled.
    """

    name = "sequential"
    #: ``map`` takes ``gate`` (``pocketcore.GatingExecutor``), and calls
    #: again when it says so (``BaseExecutor.gated``).
    gates_items = True
    gates_attempts = True

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[R]:
        """Return ``[await fn(item) for item in items]``.

        With a ``gate`` (``pocketcore.Gate``), each item, once pulled,
        enters it before its call and leaves it when the call has ended; a
        call the gate says to make again enters again (``BaseExecutor.gated``).
        """
        if gate is None:
            return [await fn(item) for item in items]
        return [await self.gated(gate, fn, item) for item in items]


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``sequential`` executor."""
    register(SequentialExecutor())
