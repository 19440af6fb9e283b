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
turns gives them back). They are made for executors that gate items and
run them in this process.
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
from ._suite import CAPABILITY, suite_property

__all__ = ["Limiters"]


def limiter_property(
    *strategies: st.SearchStrategy[Any],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a property of executors that gate items in this process only."""

    def register(body: Callable[..., None]) -> Callable[..., None]:
        CAPABILITY[body.__name__] = lambda suite: suite._gates() and not suite._is_remote()
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

    @limiter_property(
        st.integers(min_value=20, max_value=60),
        st.just(20.0),
        st.one_of(st.none(), st.integers(min_value=1, max_value=8)),
    )
    def test_turns_are_returned_after_a_failure(
        self, count: int, rate: float, limit: int | None
    ) -> None:
        """A batch that fails while its items wait for their turns leaves the limiter idle.

        The first item to start fails 50 ms in; the others, paced at
        ``rate`` by a limiter shared with later runs, are still waiting for
        their turns. Once the failure has reached the caller, those turns
        must be back: the limiter is idle, and the next batch on it starts
        at once rather than after ``count / rate`` seconds.
        """

        async def body(log: Any) -> None:
            shared_limiter = Limiter(max_per_second=rate)
            started: list[int] = []

            class Fails(AsyncParallelBatchNode):
                async def prep_async(self, shared: Any) -> list[int]:
                    return list(range(shared["count"]))

                async def exec_async(self, item: int) -> int:
                    started.append(item)
                    if len(started) == 1:  # the others book their turns meanwhile
                        await anyio.sleep(0.05)
                        raise ValueError("the first item to start")
                    return item

            node = Fails(limiter=shared_limiter, executor=self.executor, max_concurrency=limit)
            try:
                await node.run_async({"count": count})
            except ValueError:
                pass
            else:
                raise AssertionError("the batch returned although its first item failed")
            assert shared_limiter.idle, (
                f"after a failed batch of {count} at {rate:g}/s, the limiter still has "
                "turns booked ahead: the items that waited did not give them back"
            )
            begun = anyio.current_time()
            await node.run_async({"count": 2})
            took = anyio.current_time() - begun
            # Two starts at `rate` need one interval; the turns of the failed
            # batch would have added (count - 1) of them.
            assert took < (count - 1) / rate / 2 + 1 / rate, (
                f"the next batch of 2 took {took:.2f} s at {rate:g}/s"
            )

        self._each_backend(body)
