"""Kernel details of nodes behind PocketFlow's semantics.

The retry counter (per item, and on the node afterwards), an input that
fails midway through a parallel batch, and ``run()`` on an async node.
Node copies per flow step are in ``test_flows``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import pocketcore


def test_the_retry_counter_is_per_item_and_also_on_the_node() -> None:
    seen: list[tuple[int, int]] = []

    class Flaky(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> list[int]:
            return [0, 1, 2]

        async def exec_async(self, item: int) -> int:
            seen.append((item, self.cur_retry))
            if self.cur_retry < item:
                raise ValueError(item)
            return item

    node = Flaky(max_retries=3)
    pocketcore.run(node, executor="asyncio")
    assert sorted(seen) == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
    # Outside the items, the node shows the last attempt made, as PocketFlow's does.
    assert node.cur_retry in {0, 1, 2}


def test_cur_retry_before_any_run_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="cur_retry"):
        _ = pocketcore.Node().cur_retry


@pytest.mark.parametrize("executor", ["asyncio", "trio", "sequential"])
@pytest.mark.parametrize("limit", [None, 2])
def test_an_input_that_fails_midway_is_a_plain_failure(executor: str, limit: int | None) -> None:
    import anyio

    ran: list[int] = []

    class Midway(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            def items() -> Any:
                yield 1
                yield 2
                raise ValueError("the input broke")

            return items()

        async def exec_async(self, item: int) -> None:
            await anyio.sleep(0.02)
            ran.append(item)

    with pytest.raises(ValueError, match="the input broke"):
        pocketcore.run(Midway(), executor=executor, max_concurrency=limit)
    seen = list(ran)
    time.sleep(0.05)
    assert ran == seen, "an item ran on after the error reached the caller"


def test_run_on_an_async_node_raises_before_reading_any_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POCKETCORE_MAX_CONCURRENCY", "0")  # would be a ConfigError
    with pytest.raises(RuntimeError, match=r"^Use run_async\.$"):
        pocketcore.AsyncNode().run({})
