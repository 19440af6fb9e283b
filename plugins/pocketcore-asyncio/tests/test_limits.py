"""The asyncio executor with a limit: tasks follow the items pulled (the suite checks len())."""

from __future__ import annotations

import asyncio
import sys

import pytest

from pocketcore.testing import stopped_after
from pocketcore_asyncio import AsyncioExecutor


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGALRM")
@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("limit", [None, 1, 2, 10**12])
def test_no_more_tasks_than_items(count: int, limit: int | None) -> None:
    """A huge limit over a small generator starts a task per item, as no limit does."""
    alive: list[int] = []

    async def main() -> list[int]:
        baseline = len(asyncio.all_tasks())

        async def fn(item: int) -> int:
            alive.append(len(asyncio.all_tasks()) - baseline)
            await asyncio.sleep(0)
            return item

        return await AsyncioExecutor().map(fn, (i for i in range(count)), limit=limit)

    with stopped_after(5):
        assert asyncio.run(main()) == list(range(count))
    assert max(alive, default=0) <= min(count, limit or count)
