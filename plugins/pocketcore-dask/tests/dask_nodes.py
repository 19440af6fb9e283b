"""Nodes the tests send to the cluster.

They live in a module of their own (not in a test module) because the
workers import it to unpickle the nodes: the worker processes inherit this
process's ``sys.path``, where pytest put the tests folder.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distributed import get_worker

import pocketcore


def where() -> dict[str, Any]:
    """The process and worker an item ran in."""
    worker = get_worker()
    return {"pid": os.getpid(), "worker": worker.address, "nthreads": worker.state.nthreads}


def mark(folder: str, name: str) -> None:
    """Leave a file behind: what an item did, seen from the test process."""
    Path(folder, name).touch()


async def sleep_marked(folder: str, i: int, seconds: float) -> None:
    """Sleep ``seconds``; item ``i``, cancelled meanwhile, leaves the mark ``cancelled-i``."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        mark(folder, f"cancelled-{i}")
        raise


def marks(folder: Path, prefix: str) -> set[int]:
    """The items that left a mark starting with ``prefix``."""
    return {int(p.name.rsplit("-", 1)[1]) for p in folder.iterdir() if p.name.startswith(prefix)}


class Numbers(pocketcore.AsyncParallelBatchNode):
    """A batch over ``shared["numbers"]`` whose results go to ``shared["results"]``."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["numbers"]

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


class SyncNumbers(pocketcore.ParallelBatchNode):
    """:class:`Numbers` with blocking steps."""

    def prep(self, shared: dict[str, Any]) -> Any:
        return shared["numbers"]

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


class Square(Numbers):
    async def exec_async(self, n: int) -> Any:
        await asyncio.sleep(0.01)
        return {"square": n * n, **where()}


class SyncSquare(SyncNumbers):
    def exec(self, n: int) -> Any:
        time.sleep(0.01)
        return {"square": n * n, **where()}


class Flaky(Numbers):
    """Each item fails on its first two attempts; the third one returns its attempt number."""

    def __init__(self) -> None:
        super().__init__(max_retries=3, wait=0.01)

    async def exec_async(self, n: int) -> Any:
        await asyncio.sleep(0.001 * n)  # interleave the items' attempts
        if self.cur_retry < 2:
            raise ConnectionError(f"attempt {self.cur_retry} of item {n}")
        return {"item": n, "attempt": self.cur_retry, **where()}


class SyncFlaky(SyncNumbers):
    def __init__(self) -> None:
        super().__init__(max_retries=3, wait=0.01)

    def exec(self, n: int) -> Any:
        time.sleep(0.001 * n)
        if self.cur_retry < 2:
            raise ConnectionError(f"attempt {self.cur_retry} of item {n}")
        return {"item": n, "attempt": self.cur_retry, **where()}


class FallsBack(Numbers):
    def __init__(self) -> None:
        super().__init__(max_retries=2)

    async def exec_async(self, n: int) -> Any:
        raise ValueError(f"no luck with {n}")

    async def exec_fallback_async(self, n: int, exc: Exception) -> Any:
        return f"fallback for {n} after {exc} (attempt {self.cur_retry})"


class SyncFallsBack(SyncNumbers):
    def __init__(self) -> None:
        super().__init__(max_retries=2)

    def exec(self, n: int) -> Any:
        raise ValueError(f"no luck with {n}")

    def exec_fallback(self, n: int, exc: Exception) -> Any:
        return f"fallback for {n} after {exc} (attempt {self.cur_retry})"


class Stalls(pocketcore.AsyncParallelBatchNode):
    """Items in ``fail`` raise after ``fail_after`` s; the others wait ``seconds``, leaving marks.

    Marks, in the folder ``shared["marks"]``: ``started-i``, ``finished-i``,
    ``cancelled-i`` (``CancelledError`` reached the item at its ``await``).
    """

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        lag = shared.get("fail_after", 0.0)
        return [
            (shared["marks"], i, shared["fail"], shared["seconds"], lag) for i in shared["items"]
        ]

    async def exec_async(self, item: Any) -> Any:
        folder, i, fail, seconds, lag = item
        mark(folder, f"started-{i}")
        if i in fail:
            await asyncio.sleep(lag + 0.05 * fail.index(i))  # fail in this order
            raise ValueError(f"item {i} failed")
        await sleep_marked(folder, i, seconds)
        mark(folder, f"finished-{i}")
        return i


class SyncStalls(pocketcore.ParallelBatchNode):
    """:class:`Stalls` with a blocking ``exec``: started items cannot be interrupted."""

    def prep(self, shared: dict[str, Any]) -> Any:
        lag = shared.get("fail_after", 0.0)
        return [
            (shared["marks"], i, shared["fail"], shared["seconds"], lag) for i in shared["items"]
        ]

    def exec(self, item: Any) -> Any:
        folder, i, fail, seconds, lag = item
        mark(folder, f"started-{i}")
        if i in fail:
            time.sleep(lag + 0.05 * fail.index(i))
            raise ValueError(f"item {i} failed")
        time.sleep(seconds)
        mark(folder, f"finished-{i}")
        return i


class Items(pocketcore.AsyncParallelBatchNode):
    """Hands ``shared["items"]`` to the executor as they are."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        mark(self.params["marks"], f"ran-{item if isinstance(item, int) else 0}")
        return item


class SyncItems(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    def exec(self, item: Any) -> Any:
        mark(self.params["marks"], f"ran-{item if isinstance(item, int) else 0}")
        return item


class Passes(pocketcore.AsyncParallelBatchFlow):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return [{"k": 1}, {"k": 2}]


class SyncPasses(pocketcore.ParallelBatchFlow):
    def prep(self, shared: dict[str, Any]) -> Any:
        return [{"k": 1}, {"k": 2}]


def marked_square(item: tuple[str, int]) -> int:
    """A sync item for ``map_blocking``: marks its start and end, returns the square."""
    folder, i = item
    mark(folder, f"started-{i}")
    time.sleep(0.01 * (i % 3))
    mark(folder, f"ended-{i}")
    return i * i


def leave(how: str) -> None:
    """What an item does to end it all: ``sys.exit(3)`` or a ``KeyboardInterrupt``."""
    if how == "exit":
        sys.exit(3)
    raise KeyboardInterrupt


class Exits(pocketcore.AsyncParallelBatchNode):
    """Item ``shared["exits"]`` leaves (see :func:`leave`); the others wait 30 s, leaving marks."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return [(shared["marks"], i, shared["exits"], shared["how"]) for i in range(4)]

    async def exec_async(self, item: Any) -> Any:
        folder, i, exits, how = item
        mark(folder, f"started-{i}")
        if i == exits:
            await asyncio.sleep(0.2)
            leave(how)
        await sleep_marked(folder, i, 30)
        return i


class SyncExits(pocketcore.ParallelBatchNode):
    """:class:`Exits` with a blocking ``exec``; the other items take half a second."""

    def prep(self, shared: dict[str, Any]) -> Any:
        return [(shared["marks"], i, shared["exits"], shared["how"]) for i in range(4)]

    def exec(self, item: Any) -> Any:
        folder, i, exits, how = item
        mark(folder, f"started-{i}")
        if i == exits:
            time.sleep(0.2)
            leave(how)
        time.sleep(0.5)
        mark(folder, f"finished-{i}")
        return i


class HangsThenAnswers(pocketcore.AsyncParallelBatchNode):
    """Item i hangs on its first ``hangs[i]`` attempts (until timed out), then answers."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return list(range(len(shared["hangs"])))

    async def exec_async(self, item: int) -> tuple[int, int]:
        if self.cur_retry < self.params["hangs"][item]:
            await asyncio.sleep(30)  # only the timeout ends this
        if item in self.params.get("bad", ()):
            raise ValueError(f"item {item} is bad")
        return item, self.cur_retry

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


def note(path: str, line: str) -> None:
    """Append one line to a side file, in one write (O_APPEND: lines never mix)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def noted(path: Path) -> list[str]:
    """The lines of a side file (none when it does not exist yet)."""
    return path.read_text().splitlines() if path.exists() else []


def started_and_ended(path: Path) -> tuple[list[int], list[int]]:
    """The items that noted ``start i`` and ``end i`` in a side file, in the order noted."""
    lines = [line.split() for line in noted(path)]
    return (
        [int(i) for what, i in lines if what == "start"],
        [int(i) for what, i in lines if what == "end"],
    )


def _fails(calls: str, n: int) -> bool:
    """Whether item ``n`` fails this run: a file ``fail-n`` lies beside the calls file."""
    return Path(calls).with_name(f"fail-{n}").exists()


def _all_started(calls: str, size: int) -> bool:
    return len(started_and_ended(Path(calls))[0]) >= size


async def until(check: Callable[[], bool], seconds: float = 20) -> bool:
    """Whether ``check()`` holds within ``seconds``, polled (a file has no event to wait on)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


class Counted(Numbers):
    """Squares its numbers, noting ``start n`` and ``end n`` in the file ``params["calls"]``.

    Item n fails while a file ``fail-n`` lies beside that file: once every
    item of the batch (``params["size"]``) has started (20 s at most), and
    0.3 s later, so the others have long returned.
    """

    async def exec_async(self, n: int) -> int:
        calls = self.params["calls"]
        note(calls, f"start {n}")
        if _fails(calls, n):
            await until(functools.partial(_all_started, calls, self.params["size"]))
            await asyncio.sleep(0.3)
            raise ValueError(f"item {n} failed")
        await asyncio.sleep(0.01)
        note(calls, f"end {n}")
        return n * n


class SyncCounted(SyncNumbers):
    """:class:`Counted` with a blocking ``exec``."""

    def exec(self, n: int) -> int:
        calls = self.params["calls"]
        note(calls, f"start {n}")
        if _fails(calls, n):
            deadline = time.monotonic() + 20
            while not _all_started(calls, self.params["size"]) and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)
            raise ValueError(f"item {n} failed")
        time.sleep(0.01)
        note(calls, f"end {n}")
        return n * n


async def async_square(item: tuple[str, int]) -> int:
    """:func:`marked_square` for ``map``."""
    folder, i = item
    mark(folder, f"started-{i}")
    await asyncio.sleep(0.01 * (i % 3))
    mark(folder, f"ended-{i}")
    return i * i


async def waits_for_report(item: tuple[str, int]) -> tuple[int, bool]:
    """Item 0 returns at once; the others wait (20 s at most) until item 0's report is seen.

    The test's ``on_result`` leaves the file ``reported-0``, so the others
    see it only when results are reported as they come back. Returns the
    item and whether it saw the report.
    """
    folder, i = item
    seen = functools.partial(os.path.exists, os.path.join(folder, "reported-0"))
    return i, not i or await until(seen)


async def stalls_unless_first(item: tuple[str, int]) -> int:
    """Item 0 returns at once; the others wait 30 s, leaving marks (``cancelled-i`` too)."""
    folder, i = item
    mark(folder, f"started-{i}")
    if i:
        await sleep_marked(folder, i, 30)
    return i


def fails_first(item: tuple[str, int, int]) -> int:
    """Item 0 fails once all ``size`` items have started (20 s at most); the others take 0.5 s."""
    folder, i, size = item
    mark(folder, f"started-{i}")
    if not i:
        deadline = time.monotonic() + 20
        while len(marks(Path(folder), "started")) < size and time.monotonic() < deadline:
            time.sleep(0.02)
        raise ValueError("item 0 failed")
    time.sleep(0.5)
    mark(folder, f"ended-{i}")
    return i * 10


class Timed(pocketcore.AsyncParallelBatchNode):
    """Each item holds ``params["hold"]`` seconds; its result is when it started and ended.

    Wall-clock times, which the processes of one machine share. An item in
    ``params["fail"]`` raises once it has held.
    """

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    async def exec_async(self, item: int) -> tuple[float, float]:
        start = time.time()
        await asyncio.sleep(self.params.get("hold", 0.0))
        if item in self.params.get("fail", ()):
            raise ValueError(f"item {item} failed")
        return start, time.time()

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["times"] = exec_res


class SyncTimed(pocketcore.ParallelBatchNode):
    """:class:`Timed` with a sync ``exec`` (the executor's ``map_blocking``)."""

    def prep(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    def exec(self, item: int) -> tuple[float, float]:
        start = time.time()
        time.sleep(self.params.get("hold", 0.0))
        if item in self.params.get("fail", ()):
            raise ValueError(f"item {item} failed")
        return start, time.time()

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["times"] = exec_res
