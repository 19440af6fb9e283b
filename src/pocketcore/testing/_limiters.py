"""The properties of shared limiters on an executor that gates items, in flows as users nest them.

A :class:`pocketcore.Limiter` is one budget for every item that names it:
the items of batch nodes inside the passes of a parallel batch flow, in
flows inside flows, across runs. These properties run real flows on the
executor under test (a parallel batch flow whose passes each run a parallel
batch node, limiters and ``max_concurrency`` at each level, with and
without a failing item) and check what a user relies on: every run
finishes, no more items hold a limiter than it admits, and the limiter is
idle again once the run is over, so the next run on it does not wait for
turns that nobody took (a batch that failed while items waited for their
turns gives them back). They are made for executors that gate items.

The property of nested passes is made only for an executor that runs the
items in this process: a remote executor refuses batch flows (their passes
read and write the shared store, which stays here), so there is nothing of
it to check there. The property of turns given back after a failure is made
for remote executors too, where it checks the gate the kernel hands them
(``pocketcore.Gate``): its node is a module-level class that records to the
probes' log, so that a copy of it can travel to the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from hypothesis import strategies as st

from pocketcore._nodes.flows import AsyncParallelBatchFlow
from pocketcore._nodes.nodes import AsyncParallelBatchNode
from pocketcore._runtime.limits import Limiter

from ._failures import Failures
from ._probes import Log
from ._suite import CAPABILITY, gate_property, suite_property

__all__ = ["Limiters"]


def limiter_property(
    *strategies: st.SearchStrategy[Any],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a property of executors that gate items in this process only."""

    def register(body: Callable[..., None]) -> Callable[..., None]:
        CAPABILITY[body.__name__] = lambda suite: (
            suite._declares("gates_items") and not suite._is_remote()
        )
        return suite_property(*strategies)(body)

    return register


class _Holders:
    """How many items hold each limiter now, and the most that ever did."""

    def __init__(self, limiters: list[Limiter]) -> None:
        self.now = {id(limiter): 0 for limiter in limiters}
        self.peak = dict(self.now)

    def enter(self, limiter: Limiter) -> None:
        key = id(limiter)
        self.now[key] += 1
        self.peak[key] = max(self.peak[key], self.now[key])

    def leave(self, limiter: Limiter) -> None:
        self.now[id(limiter)] -= 1


class _Items(AsyncParallelBatchNode):
    """The batch node inside each pass: its items hold the limiters named in its params."""

    def __init__(
        self, holders: _Holders, shared_limiter: Limiter, fail: int | None, *, own: bool, **kw: Any
    ) -> None:
        super().__init__(limiter=shared_limiter if own else None, **kw)
        self.holders, self.shared_limiter, self.fail = holders, shared_limiter, fail

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(range(self.params["size"]))

    async def exec_async(self, item: int) -> int:
        self.holders.enter(self.shared_limiter)
        try:
            await anyio.sleep(0.001 * (item % 3))
            if self.fail is not None and (self.params["pass"], item) == (0, self.fail):
                raise ValueError("the failing item")
            return item
        finally:
            self.holders.leave(self.shared_limiter)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared.setdefault("done", []).append(self.params["pass"])


class _Passes(AsyncParallelBatchFlow):
    """The parallel batch flow: one pass per entry of ``shared["passes"]``."""

    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"pass": i, "size": size} for i, size in enumerate(shared["passes"])]


class _FailsFirst(AsyncParallelBatchNode):
    """``shared["count"]`` items, each recording its start; the first to start fails 50 ms in.

    The first on the log, across runs: the node's later runs do not fail. A
    module-level class whose only attribute is the probes' log, so that a
    remote executor can send a copy of it to its workers (whose starts are
    paced apart, so that two of them never both see themselves first).
    """

    def __init__(self, log: Log, **kw: Any) -> None:
        super().__init__(**kw)
        self.log = log

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(range(shared["count"]))

    async def exec_async(self, item: int) -> int:
        self.log.record("start", item)
        if self.log.count("start") == 1:  # the others wait for their turns meanwhile
            await anyio.sleep(0.05)
            raise ValueError("the first item to start")
        return item


class Limiters(Failures):
    """The properties of limiters over nested flows (a part of ``ExecutorConformance``)."""

    @limiter_property(
        st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=4),
        st.integers(min_value=1, max_value=3),
        st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
        st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
        st.one_of(st.none(), st.sampled_from([200.0, 1000.0])),
        st.one_of(st.none(), st.integers(min_value=0, max_value=5)),
        st.booleans(),
    )
    def test_limiter_over_nested_passes(
        self,
        passes: list[int],
        bound: int,
        flow_limit: int | None,
        node_limit: int | None,
        rate: float | None,
        fail: int | None,
        on_flow: bool,
    ) -> None:
        """A limiter on the items in a parallel batch flow's passes bounds them, and only them.

        ``passes`` is the size of each pass's batch; the shared limiter
        admits ``bound`` items at a time (paced at ``rate`` when given);
        the flow and the node may have a ``max_concurrency`` of their own;
        one item of the first pass may fail; the limiter is given to the
        node, or (``on_flow``) to the flow, for every batch inside it. The
        run must finish (the passes never hold the limiter while their items
        wait for it), no more than ``bound`` items may hold it at once, and
        once the run is over, failed or not, the limiter is idle.
        """
        failing = fail if fail is not None and passes[0] > fail else None

        async def body(log: Any) -> None:
            shared_limiter = Limiter(bound, rate, name="shared")
            holders = _Holders([shared_limiter])
            node = _Items(
                holders, shared_limiter, failing, own=not on_flow, max_concurrency=node_limit
            )
            flow_settings: dict[str, Any] = {"executor": self.executor}
            if flow_limit is not None:
                flow_settings["max_concurrency"] = flow_limit
            if on_flow:
                flow_settings["limiter"] = shared_limiter
            flow = _Passes(start=node, **flow_settings)
            shared: dict[str, Any] = {"passes": passes}
            raised: ValueError | None = None
            try:
                await flow.run_async(shared)
            except ValueError as exc:
                raised = exc
            assert (raised is None) == (failing is None), f"failing {failing}, raised {raised!r}"
            if raised is None:
                assert sorted(shared["done"]) == list(range(len(passes)))
            assert holders.peak[id(shared_limiter)] <= bound, (
                f"{holders.peak[id(shared_limiter)]} items held a limiter of {bound}"
            )
            assert shared_limiter.idle, f"{shared_limiter!r} still busy after the run"

        self._each_backend(body)

    @gate_property(
        st.integers(min_value=20, max_value=60),
        st.one_of(st.none(), st.integers(min_value=1, max_value=8)),
    )
    def test_turns_are_returned_after_a_failure(self, count: int, limit: int | None) -> None:
        """A batch that fails while its items wait for their turns leaves the limiter idle.

        The first item to start fails 50 ms in; the others, paced at 20 a second
        by a limiter shared with later runs, are still waiting for their
        turns (a remote executor's batch has ``count`` times ``time_scale``
        items, so that the turns it could keep outlast its round trips by
        far). Once the failure has reached the caller, those turns must be
        back: the limiter is idle, and the next batch on it starts at once
        rather than after the turns of the failed one.
        """
        rate = 20.0
        if self._is_remote():
            count = round(count * self._scale)
        # Two starts need one interval; the turns of the failed batch would add
        # (count - 1) of them: half of those is the bound.
        bound = (count - 1) / rate / 2 + 1 / rate

        async def body(log: Log) -> None:
            shared_limiter = Limiter(max_per_second=rate)
            node = _FailsFirst(
                log, limiter=shared_limiter, executor=self.executor, max_concurrency=limit
            )
            try:
                await node.run_async({"count": count})
            except ValueError:
                pass
            else:
                raise AssertionError("the batch returned although its first item failed")
            started = log.count("start")
            assert started < count, f"all {count} items started: none waited for its turn"
            assert shared_limiter.idle, (
                f"after a failed batch of {count} at {rate:g}/s ({started} started), the "
                "limiter still has turns booked ahead: the items that waited kept them"
            )
            begun = anyio.current_time()
            with anyio.move_on_after(bound):
                await node.run_async({"count": 2})
            took = anyio.current_time() - begun
            assert took < bound, (
                f"the next batch of 2 took {took:.2f} s or more at {rate:g}/s, after a failed "
                f"batch of {count} ({started} started): it waited for the turns of that batch"
            )

        self._each_backend(body)
