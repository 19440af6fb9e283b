"""``pocketcore.testing``'s checks beside the suites: they pass what is right, catch what is not."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pocketcore import BaseExecutor, Gate
from pocketcore.testing import (
    check_ctrl_c,
    check_objects_per_item,
    objects_per_item,
    stopped_after,
)

R = TypeVar("R")


class Gathering(BaseExecutor):
    """A raw ``asyncio.gather`` of the calls; with ``wrap``, a wrapper coroutine around each."""

    name = "gathering"
    backend = "asyncio"

    def __init__(self, *, wrap: bool = False) -> None:
        self.wrap = wrap

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[R]:
        async def wrapped(item: Any) -> R:
            scratch = [item]  # and a list of its own
            result = await fn(item)
            scratch.clear()
            return result

        call = wrapped if self.wrap else fn
        return list(await asyncio.gather(*[call(item) for item in items]))


def test_a_raw_gather_passes_the_objects_check() -> None:
    check_objects_per_item(Gathering(), items=500)


def test_a_wrapper_per_item_fails_the_objects_check() -> None:
    with pytest.raises(AssertionError, match="objects alive per item; a raw gather"):
        check_objects_per_item(Gathering(wrap=True), items=500)


def test_objects_per_item_counts_what_each_item_keeps() -> None:
    kept: list[object] = []

    async def keeping(fn: Callable[[int], Awaitable[None]]) -> None:
        async def one(item: int) -> None:
            kept.extend([] for _ in range(3))  # three more (tracked) objects per item
            await fn(item)

        await asyncio.gather(*[one(i) for i in range(400)])

    async def plain(fn: Callable[[int], Awaitable[None]]) -> None:
        await asyncio.gather(*[fn(i) for i in range(400)])

    extra = objects_per_item(keeping, items=400) - objects_per_item(plain, items=400)
    assert extra >= 3


def test_objects_per_item_leaves_the_collector_as_it_was() -> None:
    async def plain(fn: Callable[[int], Awaitable[None]]) -> None:
        await asyncio.gather(*[fn(i) for i in range(10)])

    objects_per_item(plain, items=10)
    assert gc.isenabled()
    gc.disable()
    try:
        objects_per_item(plain, items=10)
        assert not gc.isenabled()
    finally:
        gc.enable()


def spin() -> None:
    """A loop that never yields, as a broken executor's start-up could be."""
    while True:
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGALRM")
def test_stopped_after_stops_a_loop_that_never_yields() -> None:
    previous = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"still running after 0\.05 s"), stopped_after(0.05):
        spin()
    assert time.monotonic() - started < 5
    assert signal.getsignal(signal.SIGALRM) is previous


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGALRM")
def test_stopped_after_lets_a_quick_body_end_and_disarms() -> None:
    with stopped_after(0.2):
        total = sum(range(1000))
    time.sleep(0.3)  # no alarm may come once the body has ended
    assert total == 499500
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_ctrl_c_passes_a_run_whose_items_are_cancelled(tmp_path: Path) -> None:
    check_ctrl_c(tmp_path, "asyncio", "waits", within=10)


def test_ctrl_c_fails_a_run_that_waits_for_its_items(tmp_path: Path) -> None:
    # The asyncio executor's sync items run on threads of the run, which no
    # interrupt stops: the run waits for their two minutes to end.
    with pytest.raises(AssertionError, match="the run did not end within 3 s"):
        check_ctrl_c(tmp_path, "asyncio", "computes", within=1)


def test_ctrl_c_fails_a_run_with_fewer_processes_than_it_should_have(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="only 1 processes"):
        check_ctrl_c(tmp_path, "asyncio", "waits", processes=2)
