"""Node classes the tests run on Ray; a module of their own, which Ray's workers import."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pocketcore


def mark(folder: str, name: str) -> None:
    """Leave ``name`` in ``folder``: what an item running in another process tells the test."""
    Path(folder, name).touch()


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (a few bytes: no need to leave the event loop for it)."""
    path.write_text(text)


def marks(folder: Path, prefix: str) -> list[str]:
    """The marks in ``folder`` that start with ``prefix``, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(prefix))


class Numbers(pocketcore.AsyncParallelBatchNode):
    """An async batch of ``shared["items"]``; the results go to ``shared["results"]``."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        return item * 2

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


class SyncNumbers(pocketcore.ParallelBatchNode):
    """:class:`Numbers`, sync."""

    def prep(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    def exec(self, item: Any) -> Any:
        return item * 2

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


def misbehave(folder: str, item: Any) -> Any:
    """What the fault items do: item ``"kill"`` kills its own process, ``"exit"`` exits,
    ``"lock"`` returns what cannot be pickled, ``"wait"`` marks its pid and sleeps."""
    if item == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if item == "exit":
        sys.exit(3)
    if item == "lock":
        return threading.Lock()
    if item == "wait":
        mark(folder, f"waiting-{os.getpid()}")
        time.sleep(60)
    return item


class Faults(Numbers):
    async def exec_async(self, item: Any) -> Any:
        return misbehave(self.params["folder"], item)


class SyncFaults(SyncNumbers):
    def exec(self, item: Any) -> Any:
        return misbehave(self.params["folder"], item)


class Spans(Numbers):
    """Each item's start and end, with wall-clock times, in a folder (``params["folder"]``)."""

    async def exec_async(self, item: Any) -> Any:
        folder = self.params["folder"]
        start = time.time()
        await asyncio.sleep(self.params.get("seconds", 0.3))
        write(Path(folder, f"span-{item}"), f"{start} {time.time()}")
        return item


def spans(folder: Path) -> list[tuple[float, float]]:
    """The (start, end) of each item :class:`Spans` ran."""
    found = []
    for path in folder.glob("span-*"):
        start, end = path.read_text().split()
        found.append((float(start), float(end)))
    return sorted(found)


class Flaky(Numbers):
    """Fails its first ``params["fails"]`` attempts of each item, then answers; times out too."""

    async def exec_async(self, item: Any) -> Any:
        if item == "hang" and self.cur_retry == 0:
            await asyncio.sleep(30)
        if item == "bad" or self.cur_retry < self.params.get("fails", 0):
            raise ValueError(f"{item} attempt {self.cur_retry}")
        return (item, self.cur_retry, os.getpid())

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        if self.params.get("fallback"):
            return ("fallback", str(exc))
        raise exc


class Counted(Numbers):
    """Counts its calls in a folder: one mark per call of exec."""

    async def exec_async(self, item: Any) -> Any:
        mark(self.params["folder"], f"ran-{item}-{time.time_ns()}")
        return item * 10


class TraceIds(Numbers):
    """Returns the trace and parent span ids current in the worker while the item runs."""

    async def exec_async(self, item: Any) -> Any:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        return (item, context.trace_id, context.span_id)


class SlowToSend(Exception):
    """An exception that takes a second to pickle: still on its way back when its batch stops."""

    def __reduce__(self) -> tuple[Any, ...]:
        time.sleep(1.0)
        return (SlowToSend, self.args)


class TwoFailures(SyncNumbers):
    """Item 0 fails after half a second; item 1 fails at once, slow to send its failure back.

    Item 0's failure reaches the driver first, which cancels item 1 while
    its failure is being pickled: Ray then reports item 1 as cancelled.
    """

    def exec(self, item: Any) -> Any:
        if item == 0:
            time.sleep(0.5)
            raise ValueError("the first failure")
        raise SlowToSend("the second failure")
