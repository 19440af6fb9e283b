"""Failures and cancellation in parallel batches end cleanly, on every executor.

Whatever an item raises (``SystemExit`` and ``KeyboardInterrupt`` included)
reaches the caller as itself; an item waiting for a worker thread never
starts once the batch has failed; thread-backed batches pull their items no
faster than threads can take them; and a caller's timeout around a failing
batch ends either as the scope's own outcome or as the item's exception,
never as a stray cancellation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore


class Escape(BaseException):
    """A BaseException of the user's own, neither Exception nor a cancellation."""


def _raising(kind: str) -> BaseException:
    return {
        "SystemExit": SystemExit(3),
        "KeyboardInterrupt": KeyboardInterrupt(),
        "Escape": Escape(),
    }[kind]


base_exceptions = st.sampled_from(["SystemExit", "KeyboardInterrupt", "Escape"])


class ThreadItems(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    def exec(self, item: int) -> int:
        time.sleep(0.001)
        if item == self.params["bad"]:
            raise self.params["exc"]
        return item


class AsyncItems(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    async def exec_async(self, item: int) -> int:
        await anyio.sleep(0.001)
        if item == self.params["bad"]:
            raise self.params["exc"]
        return item


class ThreadPass(pocketcore.Node):
    def exec(self, prep_res: Any) -> None:
        if self.params["i"] == self.params["bad"]:
            raise self.params["exc"]


class ThreadPasses(pocketcore.ParallelBatchFlow):
    def prep(self, shared: dict[str, Any]) -> Any:
        return [{"i": i} for i in range(shared["n"])]


def _target(kind: str, bad: int, exc: BaseException, limit: int | None) -> pocketcore.BaseNode:
    params = {"bad": bad, "exc": exc}
    node: pocketcore.BaseNode
    if kind == "threads":
        node = ThreadItems(max_concurrency=limit)
    elif kind == "async":
        node = AsyncItems(max_concurrency=limit)
    else:
        node = ThreadPasses(start=ThreadPass(), max_concurrency=limit)
    node.set_params(params)
    return node


@pytest.mark.parametrize("executor", ["sequential", "asyncio", "trio"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["threads", "async", "passes"]),
    raised=base_exceptions,
    n=st.integers(1, 6),
    data=st.data(),
    limit=st.one_of(st.none(), st.integers(1, 3)),
)
def test_an_items_base_exception_reaches_the_caller_as_itself(
    executor: str, kind: str, raised: str, n: int, data: st.DataObject, limit: int | None
) -> None:
    bad = data.draw(st.integers(0, n - 1))
    exc = _raising(raised)
    target = _target(kind, bad, exc, limit)
    with pytest.raises(BaseException) as caught:  # noqa: PT011 - the identity is checked below
        pocketcore.run(target, {"n": n}, executor=executor)
    assert caught.value is exc


class Recorded(pocketcore.ParallelBatchNode):
    """Items 0 fails at once; the others record when they start."""

    starts: list[tuple[int, float]]
    failed_at: list[float]

    def prep(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    def exec(self, item: int) -> int:
        if item == 0:
            self.failed_at.append(time.monotonic())
            raise ValueError("item 0")
        self.starts.append((item, time.monotonic()))
        time.sleep(0.002)
        return item


@pytest.mark.parametrize("executor", ["sequential", "asyncio", "trio"])
def test_items_waiting_for_a_thread_never_start_after_a_failure(executor: str) -> None:
    # More items than the default thread limiter has threads: most wait.
    for _ in range(5):
        node = Recorded()
        node.starts, node.failed_at = [], []
        with pytest.raises(ValueError, match="item 0"):
            pocketcore.run(node, {"n": 200}, executor=executor)
        (failed,) = node.failed_at
        late = [item for item, at in node.starts if at > failed + 0.0005]
        # An item already past its check when the failure happened may start
        # a moment later; none may start long after.
        assert len(late) <= 1, late


class Counted:
    """A long input that counts how many of its items were pulled."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pulled = 0

    def __iter__(self) -> Iterator[int]:
        for i in range(self.size):
            self.pulled += 1
            yield i


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_thread_batches_pull_no_faster_than_threads_take_items(executor: str) -> None:
    source = Counted(100_000)

    class Long(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> Any:
            return source

        def exec(self, item: int) -> int:
            if item == 100:
                raise ValueError("enough")
            time.sleep(0.0005)
            return item

    with pytest.raises(ValueError, match="enough"):
        pocketcore.run(Long(), executor=executor)
    threads = int(anyio.run(_default_threads))
    # Items are pulled as threads free up: by the failure, at most the items
    # before it, those in flight with it, and one round of threads finishing
    # at the same moment; not the whole input queued as tasks.
    assert source.pulled <= 100 + 2 * threads + 1


async def _default_threads() -> float:
    return anyio.to_thread.current_default_thread_limiter().total_tokens


@pytest.mark.parametrize("limit", [None, 10**9])
@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_a_huge_limit_on_a_small_thread_batch_costs_nothing(
    executor: str, limit: int | None
) -> None:
    class Three(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> Any:
            return (i for i in range(3))  # no len()

        def exec(self, item: int) -> int:
            return item * 2

        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return exec_res

    started = time.monotonic()
    assert pocketcore.run(Three(max_concurrency=limit), executor=executor) == [0, 2, 4]
    assert time.monotonic() - started < 5  # a worker per unit of limit would take minutes


# --- a caller's cancellation around a failing batch --------------------------


class Scenario(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return list(range(len(self.params["delays"])))

    def exec(self, item: int) -> int:
        time.sleep(self.params["delays"][item])
        if item in self.params["failing"]:
            raise ValueError(item)
        return item


class AsyncScenario(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return list(range(len(self.params["delays"])))

    async def exec_async(self, item: int) -> int:
        await anyio.sleep(self.params["delays"][item])
        if item in self.params["failing"]:
            raise ValueError(item)
        return item


@pytest.mark.parametrize(
    "backend_executor",
    [("asyncio", "asyncio"), ("asyncio", "sequential"), ("trio", "trio"), ("trio", "sequential")],
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["threads", "async"]),
    # Failing items fail early, while slower siblings may still be running
    # when the caller's timeout fires: the case that once let a bare
    # CancelledError escape the timeout's scope.
    delays=st.lists(st.sampled_from([0.0, 0.003, 0.01, 0.02, 0.03]), min_size=1, max_size=6),
    data=st.data(),
    timeout=st.sampled_from([0.0, 0.002, 0.005, 0.01, 0.02, 0.05]),
    fail_after=st.booleans(),
)
def test_a_timeout_around_a_failing_batch_ends_as_the_scope_or_the_item(
    backend_executor: tuple[str, str],
    kind: str,
    delays: list[float],
    data: st.DataObject,
    timeout: float,
    fail_after: bool,
) -> None:
    backend, executor = backend_executor
    failing = data.draw(st.sets(st.integers(0, len(delays) - 1), max_size=2))
    delays = [0.001 if i in failing else d for i, d in enumerate(delays)]
    node: pocketcore.BaseNode = (Scenario if kind == "threads" else AsyncScenario)(
        executor=executor
    )
    flow = pocketcore.AsyncFlow(start=node)
    flow.set_params({"delays": delays, "failing": failing})  # handed to the node

    async def main() -> str:
        try:
            if fail_after:
                with anyio.fail_after(timeout):
                    await flow.run_async({})
            else:
                with anyio.move_on_after(timeout) as scope:
                    await flow.run_async({})
                if scope.cancelled_caught:
                    return "timed out"
        except TimeoutError:
            return "timed out"
        except ValueError as exc:
            return f"item {exc.args[0]} failed"
        return "completed"

    outcome = anyio.run(main, backend=backend)  # a stray cancellation would raise here
    assert outcome in {"timed out", "completed", *(f"item {i} failed" for i in failing)}
    if outcome == "completed":
        assert not failing
