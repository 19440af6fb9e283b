"""The ``chunked`` executor: items run in consecutive chunks, each in an anyio task group.

With ``limit=k`` the input is cut into chunks of ``k`` items. The items of one
chunk run concurrently in an anyio task group; the next chunk is pulled from
the input only once every item of the current chunk has finished. With
``limit=None`` the whole input is one chunk.

The executor is built on anyio alone, so it runs on asyncio and on trio
(``backend = None``); started on its own it uses asyncio.

It builds on ``pocketcore.BaseExecutor``, which fixes ``map``'s keywords and
declares what it does not do (no remote items, no gate, no reported results).
pocketcore finds it through the entry-point group ``pocketcore`` and calls the
hook below, which is marked with pluggy's marker for the ``"pocketcore"`` project.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import pluggy

from pocketcore import BaseExecutor, attach_failures

if TYPE_CHECKING:
    from pocketcore import Gate

__all__ = ["ChunkedExecutor", "pocketcore_register_executors"]

T = TypeVar("T")
R = TypeVar("R")

hookimpl = pluggy.HookimplMarker("pocketcore")
"""The same marker as ``pocketcore.hookimpl``, created without importing pocketcore."""


class ChunkedExecutor(BaseExecutor):
    """Runs items in consecutive chunks of ``limit`` items; each chunk is an anyio task group.

    At most ``limit`` calls are in flight, and at most ``limit`` items have been
    pulled from the input but not finished. A chunk is as slow as its slowest
    item, so a worker pool (the ``asyncio`` and ``trio`` executors) keeps the
    slots busier; in exchange the chunks are easy to reason about, as in a
    program that sends requests in rounds.

    The first failing item cancels the rest of its chunk; no later chunk
    starts. ``map`` raises that item's own exception once every task of the
    chunk has finished, with any other failure of the chunk attached as a note.
    """

    name = "chunked"
    backend: str | None = None

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new asyncio event loop started by anyio; return its result."""

        async def main() -> T:
            return await fn()

        return anyio.run(main, backend="asyncio")

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[R]:
        """Await ``fn(item)`` for every item, one chunk at a time; results in input order.

        It declares neither ``gates_items`` nor ``reports_results``, so the
        kernel hands it no ``gate`` (it paces the calls itself) and no
        ``on_result``.

        Raises:
            BaseException: The first exception an item raised, unwrapped;
                other items of its chunk that failed before the cancellation
                took effect are named in its notes.
        """
        results: list[Any] = []
        failures: list[BaseException] = []

        async def call(scope: anyio.CancelScope, index: int, item: Any) -> None:
            # A task may be scheduled before a sibling fails and get to run
            # after: the check keeps such an item from ever starting.
            if failures:
                return
            try:
                results[index] = await fn(item)
            except anyio.get_cancelled_exc_class():
                raise  # the task group's own cancellation: never swallowed
            except BaseException as exc:
                # Caught here rather than left to the task group, so the caller
                # gets the exception itself and not an ExceptionGroup.
                failures.append(exc)
                scope.cancel()

        source: Iterator[Any] = iter(items)
        while not failures:
            # Take only the next chunk: the input is never read ahead of the limit.
            chunk = list(source) if limit is None else list(islice(source, limit))
            if not chunk:
                break
            start = len(results)
            results.extend([None] * len(chunk))
            # The task group waits for every task, cancelled or not, so when it
            # exits nothing of this chunk is running any more. If the caller is
            # cancelled, the cancellation propagates out of it after the same wait.
            async with anyio.create_task_group() as tg:
                for index, item in enumerate(chunk, start):
                    tg.start_soon(call, tg.cancel_scope, index, item)

        if failures:
            # The kernel's helper names the other failures on the first, one note each.
            attach_failures(failures[0], failures[1:])
            raise failures[0]
        return results


@hookimpl
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Register the ``chunked`` executor with pocketcore."""
    register(ChunkedExecutor())
