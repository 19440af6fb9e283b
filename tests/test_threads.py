"""ParallelBatchNode / ParallelBatchFlow: sync items on worker threads, same contract."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore

from .strategies import executor_names

delays = st.lists(st.sampled_from([0.0, 0.001, 0.003]), max_size=12)


class Probe:
    """Counts threads working at once; records starts, ends and failures in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.timeline: list[tuple[str, int]] = []

    def enter(self, index: int) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.timeline.append(("start", index))

    def leave(self, index: int, kind: str) -> None:
        with self.lock:
            self.in_flight -= 1
            self.timeline.append((kind, index))


class Work(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    def exec(self, item: tuple[int, float]) -> int:
        index, delay = item
        probe: Probe = self.params["probe"]
        probe.enter(index)
        time.sleep(delay)
        if index in self.params.get("fail", ()):
            probe.leave(index, "fail")
            raise ValueError(index)
        probe.leave(index, "end")
        return index * 10

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["out"] = exec_res
        return "done"


def _run(delays: list[float], executor: str, limit: int | None, **params: Any) -> Any:
    probe = Probe()
    node = Work()
    node.set_params({"probe": probe, **params})
    shared: dict[str, Any] = {"items": list(enumerate(delays))}
    try:
        pocketcore.run(node, shared, executor=executor, max_concurrency=limit)
    finally:
        assert probe.in_flight == 0, "a thread was still working when run() returned"
    return probe, shared


@settings(max_examples=25, deadline=None)
@given(delays, executor_names, st.one_of(st.none(), st.integers(1, 4)))
def test_order_and_thread_limit(delays: list[float], executor: str, limit: int | None) -> None:
    probe, shared = _run(delays, executor, limit)
    assert shared["out"] == [i * 10 for i in range(len(delays))]
    if limit is not None:
        assert probe.max_in_flight <= limit
    if executor == "sequential":
        assert probe.max_in_flight <= 1


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.002, 0.01]), min_size=1, max_size=10),
    st.data(),
    st.sampled_from(["asyncio", "trio", "sequential"]),
    st.one_of(st.none(), st.integers(1, 3)),
)
def test_failure_waits_for_running_threads_and_starts_no_more(
    delays: list[float], data: st.DataObject, executor: str, limit: int | None
) -> None:
    fail = data.draw(st.integers(0, len(delays) - 1), label="fail")
    with pytest.raises(ValueError, match=rf"^{fail}$") as info:
        _run(delays, executor, limit, fail=[fail])  # _run checks nothing is in flight
    assert info.value.args == (fail,)


def test_items_after_a_failure_never_start() -> None:
    # One thread at a time: item 2 fails, so items 3.. must never be handed
    # to a thread.
    probe = Probe()
    node = Work()
    node.set_params({"probe": probe, "fail": [2]})
    with pytest.raises(ValueError, match="2"):
        pocketcore.run(node, {"items": [(i, 0.0) for i in range(8)]}, max_concurrency=1)
    assert [i for kind, i in probe.timeline if kind == "start"] == [0, 1, 2]


def test_threads_run_in_parallel() -> None:
    # Compared with the sequential executor side by side, with a wide margin.
    items = [0.05] * 8
    start = time.perf_counter()
    _run(items, "sequential", None)
    sequential = time.perf_counter() - start
    for executor in ("asyncio", "trio"):
        start = time.perf_counter()
        _run(items, executor, None)
        assert time.perf_counter() - start < sequential / 2


def test_cur_retry_is_per_item_on_threads() -> None:
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    class Flaky(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> list[int]:
            return [0, 1, 2, 3]

        def exec(self, item: int) -> int:
            attempt = self.cur_retry
            with lock:
                seen.append((item, attempt))
            time.sleep(0.002)
            if self.cur_retry != attempt:
                raise AssertionError("another item's attempt leaked in")
            if attempt < item:
                raise ValueError(item)
            return item

    node = Flaky(max_retries=4)
    pocketcore.run(node, executor="asyncio")
    assert sorted(seen) == sorted((i, a) for i in range(4) for a in range(i + 1))


def test_none_is_an_empty_batch_and_node_run_works() -> None:
    class Empty(pocketcore.ParallelBatchNode):
        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
            shared["out"] = exec_res

    shared: dict[str, Any] = {}
    Empty().run(shared)
    assert shared == {"out": []}


def test_in_an_async_flow_the_loop_is_not_blocked() -> None:
    ticks: list[float] = []

    class Ticker(pocketcore.AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            for _ in range(5):
                ticks.append(time.perf_counter())
                await anyio.sleep(0.01)

    class Slow(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> list[int]:
            return [1, 2]

        def exec(self, item: int) -> int:
            time.sleep(0.4)
            return item

    class Both(pocketcore.AsyncParallelBatchFlow):
        async def prep_async(self, shared: Any) -> list[dict[str, str]]:
            return [{"which": "tick"}, {"which": "slow"}]

    class Pick(pocketcore.AsyncNode):
        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> str:
            return self.params["which"]

    pick = Pick()
    pick - "tick" >> Ticker()
    pick - "slow" >> Slow()
    start = time.perf_counter()
    for executor in ("asyncio", "trio"):
        ticks.clear()
        start = time.perf_counter()
        pocketcore.run(Both(start=pick), executor=executor)
        # The ticker kept ticking while the threads slept: its five ticks
        # (50 ms of sleeps) were done long before the 400 ms batch ended.
        assert len(ticks) == 5
        assert ticks[-1] - start < 0.3


def test_parallel_batch_flow_passes_on_threads() -> None:
    class Passes(pocketcore.ParallelBatchFlow):
        def prep(self, shared: Any) -> list[dict[str, int]]:
            return [{"k": k} for k in range(6)]

        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
            shared["post"] = (len(prep_res), exec_res)
            return "after"

    threads: set[str] = set()
    lock = threading.Lock()

    class Leaf(pocketcore.Node):
        def exec(self, prep_res: Any) -> int:
            with lock:
                threads.add(threading.current_thread().name)
            time.sleep(0.01)
            return int(self.params["k"])

        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: int) -> None:
            with lock:
                shared.setdefault("ks", []).append(exec_res)

    shared: dict[str, Any] = {}
    assert Passes(start=Leaf()).run(shared) == "after"
    assert sorted(shared["ks"]) == list(range(6))
    assert shared["post"] == (6, None)
    assert threading.main_thread().name not in threads


def test_cancelling_the_caller_waits_for_threads() -> None:
    started: list[int] = []
    finished: list[int] = []

    class Slow(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> list[int]:
            return list(range(6))

        def exec(self, item: int) -> int:
            started.append(item)
            time.sleep(0.05)
            finished.append(item)
            return item

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pocketcore.AsyncFlow(start=Slow(max_concurrency=2)).run_async, {})
            # Cancel once both threads are at work (they cannot set an anyio
            # Event from a worker thread without a token, so poll).
            while len(started) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.001)
            tg.cancel_scope.cancel()
        # Threads already running finished before the cancellation completed;
        # with a limit of 2, the other items never started.
        assert sorted(finished) == [0, 1]

    for backend in ("asyncio", "trio"):
        started.clear()
        finished.clear()
        anyio.run(main, backend=backend)
        time.sleep(0.08)
        assert sorted(finished) == [0, 1], "a thread ran on after the cancellation"


def test_a_batch_on_a_helper_thread_keeps_the_runs_settings() -> None:
    # A sync flow inside an async flow runs inline on the loop's thread, so
    # the batch gets its loop on a helper thread; the run's limit must hold.
    probe = Probe()
    outer = pocketcore.AsyncFlow(start=pocketcore.Flow(start=Work()))
    outer.set_params({"probe": probe})  # handed down to every node of the pass
    shared: dict[str, Any] = {"items": [(i, 0.01) for i in range(8)]}
    pocketcore.run(outer, shared, max_concurrency=2)
    assert shared["out"] == [i * 10 for i in range(8)]
    assert probe.max_in_flight <= 2


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_after_a_failure_running_items_make_no_further_attempts(executor: str) -> None:
    attempts: dict[int, int] = {0: 0, 1: 0}
    lock = threading.Lock()

    class Doomed(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> list[int]:
            return [0, 1]

        def exec(self, item: int) -> None:
            with lock:
                attempts[item] += 1
            if item == 0:
                time.sleep(0.02)  # item 1 is retrying by now
                self.cur_retry = self.max_retries - 1  # PocketFlow's way to give up now
                raise KeyError("item 0 gives up at once")
            raise ValueError("item 1 keeps failing")

        def exec_fallback(self, prep_res: Any, exc: Exception) -> None:
            raise exc

    with pytest.raises(KeyError, match="gives up"):
        pocketcore.run(Doomed(max_retries=10, wait=0.2), executor=executor)
    assert attempts[0] == 1
    # Without the stop, item 1 would make all ten attempts, 0.2 s apart.
    assert attempts[1] < 10


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_cancelled_caller_stops_retries_on_threads(backend: str) -> None:
    attempts: list[int] = []

    class Stubborn(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> list[int]:
            return [0]

        def exec(self, item: int) -> None:
            attempts.append(item)
            time.sleep(0.05)
            raise ValueError("keeps failing")

    async def main() -> None:
        with anyio.move_on_after(0.1) as scope:
            await pocketcore.AsyncFlow(start=Stubborn(max_retries=8, wait=0.2)).run_async({})
        assert scope.cancelled_caught  # the cancellation was not lost on the way

    anyio.run(main, backend=backend)
    # Without the stop, all eight attempts would run, 0.2 s apart.
    assert len(attempts) <= 2
