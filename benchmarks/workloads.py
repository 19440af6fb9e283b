"""What is run: pocketcore's and PocketFlow's node classes, and the raw baselines.

Each pair of classes has the same body on both sides, so the only difference
measured is the library around it. Every async item does one ``sleep(0)`` of
its backend (``asyncio.sleep(0)``, ``trio.sleep(0)``) and returns ``None``;
the raw baselines await the same body as a coroutine function ``work(item)``.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from itertools import pairwise
from time import perf_counter
from typing import Any

import anyio
import pocketflow  # type: ignore[import-untyped]
import trio
import trio.lowlevel

import pocketcore

#: The per-item delay of the latency-bound scenario (seconds).
LATENCY = 0.05

Shared = dict[str, Any]


# --- sync node steps ---------------------------------------------------------------------


class PcStep(pocketcore.Node):
    def prep(self, shared: Shared) -> Any:
        return None

    def exec(self, prep_res: Any) -> Any:
        return None

    def post(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        return None


class PfStep(pocketflow.Node):  # type: ignore[misc]
    def prep(self, shared: Shared) -> Any:
        return None

    def exec(self, prep_res: Any) -> Any:
        return None

    def post(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        return None


class PcLoop(pocketcore.Node):
    """Its successor for ``"again"`` is itself, until ``shared["n"]`` reaches ``shared["stop"]``."""

    def prep(self, shared: Shared) -> Any:
        return None

    def exec(self, prep_res: Any) -> Any:
        return None

    def post(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["n"] += 1
        return "again" if shared["n"] < shared["stop"] else None


class PfLoop(pocketflow.Node):  # type: ignore[misc]
    def prep(self, shared: Shared) -> Any:
        return None

    def exec(self, prep_res: Any) -> Any:
        return None

    def post(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["n"] += 1
        return "again" if shared["n"] < shared["stop"] else None


# --- async node steps --------------------------------------------------------------------


class PcAStep(pocketcore.AsyncNode):
    async def prep_async(self, shared: Shared) -> Any:
        return None

    async def exec_async(self, prep_res: Any) -> Any:
        return None

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        return None


class PfAStep(pocketflow.AsyncNode):  # type: ignore[misc]
    async def prep_async(self, shared: Shared) -> Any:
        return None

    async def exec_async(self, prep_res: Any) -> Any:
        return None

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        return None


class PcALoop(pocketcore.AsyncNode):
    async def prep_async(self, shared: Shared) -> Any:
        return None

    async def exec_async(self, prep_res: Any) -> Any:
        return None

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["n"] += 1
        return "again" if shared["n"] < shared["stop"] else None


class PfALoop(pocketflow.AsyncNode):  # type: ignore[misc]
    async def prep_async(self, shared: Shared) -> Any:
        return None

    async def exec_async(self, prep_res: Any) -> Any:
        return None

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["n"] += 1
        return "again" if shared["n"] < shared["stop"] else None


def chain(flow_cls: type[Any], step_cls: type[Any], length: int) -> tuple[Any, list[Any]]:
    """A flow of ``length`` nodes joined by their default action, and the nodes."""
    nodes = [step_cls() for _ in range(length)]
    for a, b in pairwise(nodes):
        a >> b
    return flow_cls(start=nodes[0]), nodes


def self_loop(flow_cls: type[Any], loop_cls: type[Any], end_cls: type[Any]) -> tuple[Any, Any]:
    """A flow whose one node is its own successor for ``"again"``; ``None`` leads to an end node."""
    node = loop_cls()
    node - "again" >> node
    node >> end_cls()
    return flow_cls(start=node), node


def run_loop(flow: Any, steps: int) -> None:
    shared: Shared = {"n": 0, "stop": steps}
    flow.run(shared)
    if shared["n"] != steps:
        raise AssertionError(f"{type(flow).__name__}: {shared['n']} steps of {steps}")


async def run_loop_async(flow: Any, steps: int) -> None:
    shared: Shared = {"n": 0, "stop": steps}
    await flow.run_async(shared)
    if shared["n"] != steps:
        raise AssertionError(f"{type(flow).__name__}: {shared['n']} steps of {steps}")


# --- fan-out -----------------------------------------------------------------------------
# prep_async returns shared["items"] (a range); post_async stores the results.


class PcAsyncioItem(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await asyncio.sleep(0)

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


class PcTrioItem(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await trio.lowlevel.checkpoint()  # trio.sleep(0)

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


class PfAsyncioItem(pocketflow.AsyncParallelBatchNode):  # type: ignore[misc]
    async def prep_async(self, shared: Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await asyncio.sleep(0)

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


class PfAsyncioSeqItem(pocketflow.AsyncBatchNode):  # type: ignore[misc]
    """PocketFlow's one-at-a-time batch: the equivalent of the ``sequential`` executor."""

    async def prep_async(self, shared: Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await asyncio.sleep(0)

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


class PcAsyncioSleep(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await asyncio.sleep(LATENCY)

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


class PcTrioSleep(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await trio.sleep(LATENCY)

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


class PfAsyncioSleep(pocketflow.AsyncParallelBatchNode):  # type: ignore[misc]
    async def prep_async(self, shared: Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await asyncio.sleep(LATENCY)

    async def post_async(self, shared: Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


# The raw baselines: the same body as a plain coroutine function.


async def asyncio_work(item: Any) -> Any:
    await asyncio.sleep(0)


async def trio_work(item: Any) -> Any:
    await trio.lowlevel.checkpoint()  # trio.sleep(0)


async def asyncio_sleep_work(item: Any) -> Any:
    await asyncio.sleep(LATENCY)


async def trio_sleep_work(item: Any) -> Any:
    await trio.sleep(LATENCY)


Work = Callable[[Any], Coroutine[Any, Any, Any]]


async def raw_gather(work: Work, items: Iterable[Any]) -> None:
    """Every item a task at once, results gathered: ``asyncio.gather``."""
    await asyncio.gather(*[work(item) for item in items])


async def raw_paced_gather(work: Work, items: Iterable[Any], rate: float) -> None:
    """Every item a task at once, item ``i`` sleeping until ``i / rate`` before its work."""

    async def paced(i: int, item: Any) -> Any:
        await asyncio.sleep(i / rate)
        return await work(item)

    await asyncio.gather(*[paced(i, item) for i, item in enumerate(items)])


async def raw_sequential(work: Work, items: Iterable[Any]) -> None:
    """One item after another, in a bare loop."""
    for item in items:
        await work(item)


async def raw_nursery(work: Work, items: Iterable[Any]) -> None:
    """Every item a task of one trio nursery (trio keeps no results)."""
    async with trio.open_nursery() as nursery:
        for item in items:
            nursery.start_soon(work, item)


async def anyio_task_group(work: Work, items: Iterable[Any]) -> None:
    """Every item a task of one anyio task group, on whichever backend runs."""
    async with anyio.create_task_group() as tg:
        for item in items:
            tg.start_soon(work, item)


def _puller(work: Work, source: Iterator[Any]) -> Callable[[], Awaitable[None]]:
    async def worker() -> None:
        for item in source:
            await work(item)

    return worker


async def asyncio_pool(work: Work, items: Iterable[Any], limit: int) -> None:
    """``limit`` asyncio tasks pulling items from one shared iterator."""
    worker = _puller(work, iter(items))
    await asyncio.gather(*[worker() for _ in range(limit)])


async def trio_pool(work: Work, items: Iterable[Any], limit: int) -> None:
    """``limit`` trio tasks pulling items from one shared iterator."""
    worker = _puller(work, iter(items))
    async with trio.open_nursery() as nursery:
        for _ in range(limit):
            nursery.start_soon(worker)


# --- running samples ---------------------------------------------------------------------

Body = Callable[[], Awaitable[Any]]


def batch(node: Any, n: int) -> Body:
    """``await node.run_async(shared)`` on a fresh shared store holding ``range(n)``, checked."""

    async def body() -> Any:
        shared = {"items": range(n)}
        await node.run_async(shared)
        if len(shared["results"]) != n:
            raise AssertionError(f"{type(node).__name__}: {len(shared['results'])} results of {n}")

    return body


async def timed(body: Body, times: int) -> float:
    """Seconds taken by ``times`` awaits of ``body()``, measured inside the running loop."""
    start = perf_counter()
    for _ in range(times):
        await body()
    return perf_counter() - start


async def traced_peak(body: Body) -> float:
    """Peak traced memory (bytes) allocated while ``body()`` runs, inside the running loop."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        await body()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return float(peak - base)


def on_backend(backend: str, fn: Callable[..., Coroutine[Any, Any, float]], *args: Any) -> float:
    """Start a fresh event loop of ``backend`` the way pocketcore does and run ``fn(*args)``.

    asyncio: ``asyncio.run`` (as the ``asyncio`` executor); uvloop: ``uvloop.run``
    (as the ``uvloop`` executor); trio: ``anyio.run(..., backend="trio")`` (as the
    ``trio`` executor).
    """
    if backend == "asyncio":
        return asyncio.run(fn(*args))
    if backend == "uvloop":  # as the uvloop executor starts it
        import uvloop

        return uvloop.run(fn(*args))
    return anyio.run(fn, *args, backend=backend)


def sync_timed(body: Callable[[], Any], times: int) -> float:
    start = perf_counter()
    for _ in range(times):
        body()
    return perf_counter() - start
