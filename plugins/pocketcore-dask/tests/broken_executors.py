"""Dask executors that each break one clause of the contract, the way a first attempt would.

The remote conformance suite must reject every one of them (see
``test_the_suite_has_teeth.py``). Their task functions live here, in a module
the workers can import.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pocketcore_dask import DaskExecutor
from pocketcore_dask._executor import connect


def plain(fn: Callable[[Any], Awaitable[Any]], item: Any) -> Any:
    """The item, with no stop flag to check."""
    return asyncio.run(fn(item))  # type: ignore[arg-type]


class NeverStops(DaskExecutor):
    """Submits items lazily within the limit, but goes on after a failure until the input ends.

    It waits for everything and reports every failure: only "no item starts
    after the first failure" is broken.
    """

    async def map(
        self, fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any], *, limit: int | None
    ) -> list[Any]:
        async with connect(self.settings()) as client:
            slots = asyncio.Semaphore(limit or 10**6)
            source = iter(items)
            tasks: list[asyncio.Task[Any]] = []

            async def one(item: Any) -> Any:
                try:
                    return await client.submit(plain, fn, item, pure=False)
                finally:
                    slots.release()

            while True:
                await slots.acquire()
                item = next(source, None)  # the suite's items are ints
                if item is None:
                    break
                tasks.append(asyncio.ensure_future(one(item)))
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if errors:
                for other in errors[1:]:
                    errors[0].add_note(f"another item failed: {type(other).__name__}: {other}")
                raise errors[0]
            return outcomes


class DoesNotWait(DaskExecutor):
    """Cancels the futures on the first failure and raises at once: running tasks go on."""

    async def map(
        self, fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any], *, limit: int | None
    ) -> list[Any]:
        async with connect(self.settings()) as client:
            futures = [client.submit(plain, fn, item, pure=False) for item in items]
            try:
                return [await future for future in futures]
            except BaseException:
                await client.cancel(futures)
                raise
