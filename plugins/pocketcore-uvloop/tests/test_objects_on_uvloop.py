"""On uvloop's loop too, a batch keeps no more objects alive per item than a raw ``gather``.

The uvloop executor's fan-out target (at most 0.75 x a raw ``gather`` on the
default loop) holds only while the batch does not bring on a full garbage
collection that the raw ``gather`` escapes; see the asyncio plugin's
``tests/test_objects.py``. Counted, not timed.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop

from pocketcore_uvloop import UvloopExecutor

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
    """Objects alive per item, on uvloop, once every item waits in its ``sleep(0)``."""
    counts: list[int] = []

    async def fn(item: int) -> None:
        if item == N - 1:  # the last to start: all the others wait in their sleep(0)
            counts.append(len(gc.get_objects()))
        await asyncio.sleep(0)

    async def main() -> None:
        counts.append(len(gc.get_objects()))
        await run(fn)

    uvloop.run(main())
    before, peak = counts
    return (peak - before) / N


async def raw_gather(fn: Fn) -> None:
    await asyncio.gather(*[fn(i) for i in range(N)])


async def executor_map(fn: Fn) -> None:
    await UvloopExecutor().map(fn, range(N), limit=None)


def test_an_item_keeps_no_more_alive_than_under_a_raw_gather() -> None:
    raw = alive_per_item(raw_gather)
    mine = alive_per_item(executor_map)
    assert mine <= raw + 0.01, f"{mine:.2f} objects alive per item; a raw gather: {raw:.2f}"
