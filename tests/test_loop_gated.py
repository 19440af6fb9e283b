"""When the executor's own loop gates each attempt (``Plan.loop_gated``), and what that saves.

An executor that declares ``gates_attempts`` is handed the gate of a batch's
limiters, in place of a layer around each item, only where nothing between
the gate and ``exec_async`` may hold a slot or hide a refusal. These tests
watch what the executor's ``map`` is handed, for every combination of what
decides it, and count what an idle limiter costs an item.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import pocketcore
from pocketcore import Gate, Limiter
from pocketcore.testing import objects_per_item
from pocketcore_asyncio import AsyncioExecutor


class Watching(AsyncioExecutor):
    """The asyncio executor, recording what each ``map`` is handed (its batch is made of it)."""

    name = "watching"

    def __init__(self, *, attempts: bool = True) -> None:
        self.gates_attempts = attempts
        self.handed: list[tuple[Callable[[Any], Awaitable[Any]], Gate | None]] = []

    def batch(self, fn: Callable[[Any], Awaitable[Any]], gate: Gate | None) -> Any:
        self.handed.append((fn, gate))
        return super().batch(fn, gate)


class Doubles(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    async def exec_async(self, item: int) -> int:
        await asyncio.sleep(0)
        return item * 2

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class Rescued(Doubles):
    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        return -1


class Hears:
    @pocketcore.hookimpl
    def pocketcore_batch_item_start(self, index: int) -> None:
        pass


# Every combination of what decides it (2**7 batches of 5 items, a few seconds in all).
DECIDING = ["retries", "rescued", "collect", "paced", "heard", "cached", "declares"]


@pytest.mark.parametrize(
    DECIDING,
    [
        (retries, *flags)
        for retries in (1, 2)
        for flags in itertools.product([False, True], repeat=len(DECIDING) - 1)
    ],
)
def test_the_executor_gates_attempts_only_where_nothing_sits_between(
    retries: int,
    rescued: bool,
    collect: bool,
    paced: bool,
    heard: bool,
    cached: bool,
    declares: bool,
) -> None:
    executor = Watching(attempts=declares)
    limiter = Limiter(max_concurrency=3, max_per_second=10_000 if paced else None)
    node = (Rescued if rescued else Doubles)(
        limiter=limiter,
        executor=executor,
        max_retries=retries,
        on_error="collect" if collect else "raise",
        cache="memory" if cached else None,
    )
    registry = pocketcore.get_registry()
    listener = Hears()
    if heard:
        registry.register(listener, name="hears")
    try:
        shared = {"n": 5}
        pocketcore.run(node, shared)
    finally:
        if heard:
            registry.unregister(listener)
    assert shared["out"] == [0, 2, 4, 6, 8]
    assert limiter.idle
    expected = declares and retries == 1 and not (rescued or collect or paced or heard or cached)
    [(fn, gate)] = executor.handed
    assert (gate is not None) == expected
    if expected:  # and the item's call is exec_async itself, with no layer around it
        assert fn == node.exec_async


def test_an_idle_limiter_keeps_no_object_more_per_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's idle-limiter row, counted: its items keep what unlimited ones keep.

    A coroutine more per item is what tipped a full garbage collection at
    10,000 items (docs/performance.md, "Per-item controls").
    """

    def batch_of(limiter: Limiter | None) -> Callable[[Callable[[int], Awaitable[None]]], Any]:
        async def batch(fn: Callable[[int], Awaitable[None]]) -> None:
            class Calls(pocketcore.AsyncParallelBatchNode):
                async def prep_async(self, shared: dict[str, Any]) -> Any:
                    return range(1000)

                async def exec_async(self, item: int) -> None:
                    await fn(item)

            node = (
                Calls(executor="asyncio")
                if limiter is None
                else Calls(executor="asyncio", limiter=limiter)
            )
            await pocketcore.AsyncFlow(start=node).run_async({})

        return batch

    assert gc.isenabled()
    plain = min(objects_per_item(batch_of(None), items=1000) for _ in range(3))
    idle = Limiter(max_concurrency=10**6)
    limited = min(objects_per_item(batch_of(idle), items=1000) for _ in range(3))
    assert limited <= plain + 0.01, f"{limited:.2f} objects per item; without a limiter {plain:.2f}"
