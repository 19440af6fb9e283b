"""The ``sequential`` executor: one item at a time, in input order.

Useful for debugging (deterministic order, plain tracebacks) and as the
baseline parallel executors are measured against. It runs on any backend;
started on its own it uses asyncio. This module does not import pocketcore:
it only needs pluggy's marker for the ``pocketcore`` project.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pluggy

if TYPE_CHECKING:
    from pocketcore import Gate

__all__ = ["SequentialExecutor", "pocketcore_register_executors"]

T = TypeVar("T")
R = TypeVar("R")

hookimpl = pluggy.HookimplMarker("pocketcore")


class SequentialExecutor:
    """Awaits each item's call before pulling the next item.

    ``limit`` is accepted and has no effect: at most one call is ever in flight.
    A failure stops the batch at once; later items are never pulled.
    """

    name = "sequential"
    backend: str | None = None
    #: ``map`` takes ``gate`` (``pocketcore.GatingExecutor``).
    gates_items: Literal[True] = True

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new asyncio event loop and return its result."""

        async def main() -> T:
            return await fn()

        return asyncio.run(main())

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
    ) -> list[R]:
        """Return ``[await fn(item) for item in items]``.

        With a ``gate`` (``pocketcore.Gate``), each item, once pulled,
        enters it before its call and leaves it when the call has ended.
        """
        if gate is None:
            return [await fn(item) for item in items]
        results = []
        for item in items:
            if not gate.try_enter():
                await gate.enter()
            try:
                results.append(await fn(item))
            finally:
                gate.leave()
        return results

    def __repr__(self) -> str:
        return "SequentialExecutor()"


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``sequential`` executor."""
    register(SequentialExecutor())
