"""Checks an executor plugin's own tests repeat: objects kept alive per item, and a time guard.

They are not properties of every executor (the conformance suite holds those):
:func:`check_objects_per_item` is for executors on an asyncio loop, measured
against a raw ``asyncio.gather``; :func:`stopped_after` is for tests of an
executor that could, if broken, spin without ever giving its loop a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import FrameType
from typing import Any

from pocketcore._core.executor import Executor

__all__ = ["check_objects_per_item", "objects_per_item", "stopped_after"]

ItemFn = Callable[[int], Awaitable[None]]
Runner = Callable[[Coroutine[Any, Any, None]], object]


def objects_per_item(
    batch: Callable[[ItemFn], Awaitable[object]], *, items: int = 2000, run: Runner = asyncio.run
) -> float:
    """Objects alive per item once every item of ``batch`` has started and waits.

    ``batch(fn)`` must call ``fn`` on each of ``range(items)``, starting them
    in order (``executor.map(fn, range(items), limit=None)`` does). Each call
    waits in an ``asyncio.sleep(0)``; when the last one starts, the objects
    alive are counted, and compared with the count before the batch. The
    batch runs in a new loop started by ``run`` (``asyncio.run``, or
    ``uvloop.run``), with the garbage collector off: the counts do not
    depend on the machine's load, only on what the process allocates
    meanwhile (another thread's objects count too).
    """
    counts: list[int] = []

    async def fn(item: int) -> None:
        if item == items - 1:  # the last to start: all the others wait in their sleep(0)
            counts.append(len(gc.get_objects()))
        await asyncio.sleep(0)

    async def main() -> None:
        counts.append(len(gc.get_objects()))
        await batch(fn)

    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        run(main())
    finally:
        if enabled:
            gc.enable()
    before, peak = counts
    return (peak - before) / items


def check_objects_per_item(
    executor: Executor, *, items: int = 2000, run: Runner = asyncio.run
) -> None:
    """Check that an unlimited batch keeps no more objects alive per item than a raw ``gather``.

    Every object an item keeps alive counts towards the garbage collector's
    next collection; at 10,000 items a wrapper or two per item brings on a
    full (generation 2) collection that a raw ``asyncio.gather`` of the same
    calls escapes, and which costs more than scheduling the batch. So an
    asyncio-based executor's ``map(fn, items, limit=None)`` is held to what
    ``asyncio.gather`` keeps alive, both counted by :func:`objects_per_item`
    on the loop ``run`` starts (the fewest of three counts, each).

    Raises:
        AssertionError: The executor keeps more than a hundredth of an object
            more per item; the message gives both counts.
    """

    async def raw_gather(fn: ItemFn) -> None:
        await asyncio.gather(*[fn(i) for i in range(items)])

    async def executor_map(fn: ItemFn) -> None:
        await executor.map(fn, range(items), limit=None)

    # The fewest of three counts each: another thread of the process (a test
    # runner's own, say) may allocate while one is taken, never free ours.
    raw = min(objects_per_item(raw_gather, items=items, run=run) for _ in range(3))
    mine = min(objects_per_item(executor_map, items=items, run=run) for _ in range(3))
    assert mine <= raw + 0.01, f"{mine:.2f} objects alive per item; a raw gather: {raw:.2f}"


@contextlib.contextmanager
def stopped_after(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` in this thread after ``seconds``, even in a loop that never yields.

    An executor that starts ``limit`` tasks up front (a huge limit over a
    small input, say) does so without giving its loop a turn, where no
    event-loop timeout can stop it: a signal handler can. Uses ``SIGALRM``
    and the real-time interval timer, so only in the main thread, and not
    on Windows; the previous handler is put back on the way out.
    """

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
