"""The trio executor with a limit: tasks follow the items pulled (the suite checks len())."""

from __future__ import annotations

import sys

import pytest
import trio

from pocketcore.testing import stopped_after
from pocketcore_trio import TrioExecutor


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGALRM")
@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("limit", [None, 1, 2, 10**12])
def test_no_more_tasks_than_items(count: int, limit: int | None) -> None:
    """A huge limit over a small generator starts a task per item, as no limit does."""
    alive: list[int] = []

    async def fn(item: int) -> int:
        # The tasks of the executor's nursery, this item's among them.
        nursery = trio.lowlevel.current_task().parent_nursery
        assert nursery is not None
        alive.append(len(nursery.child_tasks))
        await trio.lowlevel.checkpoint()
        return item

    async def main() -> list[int]:
        return await TrioExecutor().map(fn, (i for i in range(count)), limit=limit)

    with stopped_after(5):
        assert trio.run(main) == list(range(count))
    assert max(alive, default=0) <= min(count, limit or count)
