"""The ``asyncio`` executor: items as asyncio tasks, gathered with ``asyncio.gather``.

Unlike a bare ``gather``, a failing item cancels its siblings and ``map`` waits
for them before raising, and ``limit`` bounds the tasks in flight with a pool
of workers that pull items lazily. This module does not import pocketcore.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import pluggy

__all__ = ["AsyncioExecutor", "pocketcore_register_executors"]

T = TypeVar("T")
R = TypeVar("R")

hookimpl = pluggy.HookimplMarker("pocketcore")
_END = object()


def _attach(first: BaseException, others: Iterable[BaseException]) -> None:
    """Record the other failures on the one that is raised, as notes."""
    for exc in others:
        if exc is first or isinstance(exc, asyncio.CancelledError):
            continue
        note = f"another item failed before the batch was cancelled: {type(exc).__name__}: {exc}"
        if hasattr(first, "add_note"):
            first.add_note(note)
        else:  # Python 3.10: same attribute that 3.11's add_note fills
            notes = getattr(first, "__notes__", None)
            if notes is None:
                notes = []
                first.__notes__ = notes  # type: ignore[attr-defined]
            notes.append(note)


async def _gather_or_cancel(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    """Gather ``tasks``; on any failure or cancellation cancel and await them all."""
    try:
        return await asyncio.gather(*tasks)
    except BaseException as first:
        for task in tasks:
            task.cancel()
        # A cancelled gather still waits for every child to finish, so once
        # this returns nothing of the batch is running any more.
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        _attach(first, (o for o in outcomes if isinstance(o, BaseException)))
        raise


class AsyncioExecutor:
    """Runs items concurrently as asyncio tasks.

    With ``limit=None`` every item becomes a task at once (``asyncio.gather``).
    With ``limit=k``, ``k`` worker tasks pull items from the input one at a
    time, so at most ``k`` calls are in flight and at most ``k`` items have
    been pulled but not finished.
    """

    name = "asyncio"
    backend: str | None = "asyncio"

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new asyncio event loop (``asyncio.run``)."""

        async def main() -> T:
            return await fn()

        return asyncio.run(main())

    async def map(
        self, fn: Callable[[Any], Awaitable[R]], items: Iterable[Any], *, limit: int | None
    ) -> list[R]:
        """Await ``fn(item)`` for all items concurrently; results in input order."""
        loop = asyncio.get_running_loop()
        # Set by the first call that raises (or is cancelled): from then on no
        # further item starts, even one whose task is already scheduled.
        stop = False

        async def call(item: Any) -> Any:
            nonlocal stop
            if stop:
                return None
            try:
                return await fn(item)
            except BaseException:
                stop = True
                raise

        if limit is None:
            tasks: list[asyncio.Task[Any]] = []
            try:
                # extend() keeps the tasks made before the input raised, so
                # they can be cancelled and awaited rather than left running.
                tasks.extend(loop.create_task(call(item)) for item in items)
            except BaseException:
                stop = True
                await _gather_or_cancel(tasks)
                raise
            return await _gather_or_cancel(tasks)

        results: list[Any] = []
        source: Iterator[Any] = iter(items)

        async def worker() -> None:
            nonlocal stop
            # Check before pulling: once a call has failed, no item is taken.
            while not stop:
                item = next(source, _END)
                if item is _END:
                    return
                index = len(results)
                results.append(None)
                try:
                    results[index] = await fn(item)
                except BaseException:
                    stop = True
                    raise

        try:
            workers = min(limit, len(items))  # type: ignore[arg-type]
        except TypeError:  # not sized: each surplus worker stops at the end
            workers = limit
        await _gather_or_cancel([loop.create_task(worker()) for _ in range(workers)])
        return results

    def __repr__(self) -> str:
        return "AsyncioExecutor()"


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``asyncio`` executor."""
    register(AsyncioExecutor())
