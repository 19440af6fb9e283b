"""What an unlimited batch keeps alive per item, against a raw ``asyncio.gather``.

Every object an item keeps alive counts towards the garbage collector's next
collection; at 10,000 items a wrapper or two per item is enough to bring on a
full (generation 2) collection, which costs more than the batch's own
scheduling. So the executor is held to what a raw ``gather`` of the same calls
keeps alive: counted, not timed, so the check is the same on a loaded machine.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from pocketcore_asyncio import AsyncioExecutor

N = 2000
Fn = Callable[[int], Awaitable[None]]


@pytest.fixture(autouse=True)
def no_collections() -> Iterator[None]:
    """Counts of live objects are exact only while no collection runs."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive_per_item(run: Callable[[Fn], Awaitable[Any]]) -> float:
    """Objects alive per item once every item has started and waits in its ``sleep(0)``."""
    counts: list[int] = []

    async def fn(item: int) -> None:
        if item == N - 1:  # the last to start: all the others wait in their sleep(0)
            counts.append(len(gc.get_objects()))
        await asyncio.sleep(0)

    async def main() -> None:
        counts.append(len(gc.get_objects()))
        await run(fn)

    asyncio.run(main())
    before, peak = counts
    return (peak - before) / N


async def raw_gather(fn: Fn) -> None:
    await asyncio.gather(*[fn(i) for i in range(N)])


async def executor_map(fn: Fn) -> None:
    await AsyncioExecutor().map(fn, range(N), limit=None)


def test_an_item_keeps_no_more_alive_than_under_a_raw_gather() -> None:
    raw = alive_per_item(raw_gather)
    mine = alive_per_item(executor_map)
    assert mine <= raw + 0.01, f"{mine:.2f} objects alive per item; a raw gather: {raw:.2f}"


class Admits:
    """A gate that admits every item at once (as a limiter that never limits does)."""

    def __init__(self) -> None:
        self.held = 0

    def try_enter(self) -> bool:
        self.held += 1
        return True

    async def enter(self) -> None:  # never needed: try_enter always admits
        raise AssertionError("try_enter admitted every item")

    def leave(self) -> None:
        self.held -= 1


def test_a_gated_item_keeps_no_more_alive_than_an_ungated_one() -> None:
    # The gate is entered by the item's own task: no wrapper coroutine per item,
    # which was what tipped a full collection when limiters wrapped each call.
    gate = Admits()

    async def gated_map(fn: Fn) -> None:
        await AsyncioExecutor().map(fn, range(N), limit=None, gate=gate)

    plain = alive_per_item(executor_map)
    gated = alive_per_item(gated_map)
    assert gated <= plain + 0.01, f"{gated:.2f} objects alive per item; ungated: {plain:.2f}"
    assert gate.held == 0
