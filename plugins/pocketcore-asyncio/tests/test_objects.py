"""What an unlimited batch keeps alive per item, against a raw ``asyncio.gather``.

Every object an item keeps alive counts towards the garbage collector's next
collection; at 10,000 items a wrapper or two per item is enough to bring on a
full (generation 2) collection, which costs more than the batch's own
scheduling. So the executor is held to what a raw ``gather`` of the same calls
keeps alive: counted, not timed, so the check is the same on a loaded machine
(``pocketcore.testing``'s ``check_objects_per_item`` and ``objects_per_item``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pocketcore.testing import check_objects_per_item, objects_per_item
from pocketcore_asyncio import AsyncioExecutor

N = 2000
Fn = Callable[[int], Awaitable[None]]


def test_an_item_keeps_no_more_alive_than_under_a_raw_gather() -> None:
    check_objects_per_item(AsyncioExecutor(), items=N)


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

    def again(self, exc: Exception, since: float | None) -> float | None:
        return None

    def passed(self) -> None:
        pass


def test_a_gated_item_keeps_no_more_alive_than_an_ungated_one() -> None:
    # The gate is entered by the item's own task: no wrapper coroutine per item,
    # which was what tipped a full collection when limiters wrapped each call.
    gate = Admits()

    async def executor_map(fn: Fn) -> None:
        await AsyncioExecutor().map(fn, range(N), limit=None)

    async def gated_map(fn: Fn) -> None:
        await AsyncioExecutor().map(fn, range(N), limit=None, gate=gate)

    plain = objects_per_item(executor_map, items=N)
    gated = objects_per_item(gated_map, items=N)
    assert gated <= plain + 0.01, f"{gated:.2f} objects alive per item; ungated: {plain:.2f}"
    assert gate.held == 0
