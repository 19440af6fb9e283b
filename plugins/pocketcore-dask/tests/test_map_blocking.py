"""map_blocking (the items of ParallelBatchNode) called directly: the same contract as map."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dask_nodes import marked_square, marks

from pocketcore_dask import DaskExecutor

pytestmark = pytest.mark.usefixtures("address")


@pytest.mark.parametrize("limit", [None, 1, 3])
def test_results_in_order_with_lazy_pulls(tmp_path: Path, limit: int | None) -> None:
    unfinished_at_pull: list[int] = []

    def items() -> Iterator[tuple[str, int]]:
        for i in range(12):
            unfinished_at_pull.append(i - len(marks(tmp_path, "ended")))
            yield str(tmp_path), i

    executor = DaskExecutor()

    async def main() -> list[int]:
        return await executor.map_blocking(marked_square, items(), limit=limit)

    assert executor.run(main) == [i * i for i in range(12)]
    assert marks(tmp_path, "started") == set(range(12))
    if limit is not None:
        assert max(unfinished_at_pull) <= limit - 1  # room for the one being pulled


def test_an_empty_batch() -> None:
    executor = DaskExecutor()

    async def main() -> list[int]:
        return await executor.map_blocking(marked_square, [], limit=2)

    assert executor.run(main) == []
