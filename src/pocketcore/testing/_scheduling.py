"""The properties of a batch that runs: results in order, limits, lazy pulling, overlap.

A parallel executor's items overlap up to the limit, and no more calls run
or items wait pulled than the limit allows; a sequential one's run one at a
time in input order. Either way the input is pulled lazily, its ``len()``
is never trusted, and a huge limit costs no more than none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest
from hypothesis import strategies as st

from ._probes import (
    LENGTHS,
    ItemCall,
    ItemFailure,
    Log,
    Misleading,
    OverlapCall,
    Seen,
    TaskCountingCall,
    pulled,
)
from ._suite import DELAYS, HUGE_LIMITS, LIMITS, PROMPT, SuiteBase, suite_property


class Scheduling(SuiteBase):
    """The properties of how a batch runs (a part of ``ExecutorConformance``)."""

    @suite_property(st.lists(DELAYS, max_size=24), LIMITS)
    def test_results_in_input_order(self, item_delays: list[float], limit: int | None) -> None:
        """One result per item, in input order, each item called exactly once."""
        delays = tuple(d * self._scale for d in item_delays)

        async def body(log: Log) -> None:
            call = ItemCall(log, delays)
            result = await self.executor.map(call, pulled(log, len(delays)), limit=limit)
            assert result == [i * 2 for i in range(len(delays))]
            seen = Seen(log.timeline())
            assert sorted(seen.events("start")) == list(range(len(delays)))
            if not self.parallel:
                assert seen.events("start") == list(range(len(delays)))
                assert seen.peaks()[0] <= 1

        self._each_backend(body)

    @suite_property(st.lists(DELAYS, max_size=24), st.integers(min_value=1, max_value=6))
    def test_limit_bounds_calls_and_pulls(self, item_delays: list[float], limit: int) -> None:
        """With ``limit=k`` at most k calls run, and at most k items are pulled but unfinished."""
        delays = tuple(d * self._scale for d in item_delays)

        async def body(log: Log) -> None:
            await self.executor.map(ItemCall(log, delays), pulled(log, len(delays)), limit=limit)
            max_in_flight, max_pending, _ = Seen(log.timeline()).peaks()
            assert max_in_flight <= limit
            assert max_pending <= limit

        self._each_backend(body)

    @suite_property(st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=40))
    def test_huge_input_is_pulled_lazily(self, limit: int, fail_at: int) -> None:
        """A practically endless input with a limit is pulled only as calls finish.

        The input refuses to yield an item while ``limit`` pulled items are
        unfinished, so an executor that materializes its input fails at once.
        """

        async def body(log: Log) -> None:
            def endless() -> Iterator[int]:
                for index in range(10**12):
                    unfinished = log.count("pull") - log.count("exit")
                    if unfinished >= limit:
                        raise AssertionError(
                            f"item {index} pulled while {unfinished} pulled items "
                            f"are unfinished (limit {limit})"
                        )
                    log.record("pull", index)
                    yield index

            call = ItemCall(log, fail_at=frozenset({fail_at}), pause=True)
            with pytest.raises(ItemFailure) as info:
                await self.executor.map(call, endless(), limit=limit)
            assert info.value.index == fail_at

        self._each_backend(body)

    @suite_property(st.integers(min_value=1, max_value=30), LIMITS)
    def test_parallel_items_overlap(self, count: int, limit: int | None) -> None:
        """Parallel: with room for k, k items are in flight together.

        Each item, once started, waits until ``min(count, limit)`` items have
        started (yielding to the scheduler for a generous number of rounds;
        a remote item polls for a while), and the most calls seen in flight
        at once must then be exactly that room. A sequential executor must
        instead never overlap two items. Locally no clock is involved, so a
        slow machine cannot make this flaky.
        """
        room = count if limit is None else min(count, limit)

        async def body(log: Log) -> None:
            call = OverlapCall(log, room, self._patience)
            result = await self.executor.map(call, list(range(count)), limit=limit)
            assert result == list(range(count))
            max_in_flight = Seen(log.timeline()).peaks()[0]
            if self.parallel:
                assert max_in_flight == room, f"{max_in_flight} in flight at most, room for {room}"
            else:
                assert max_in_flight == 1

        self._each_backend(body)

    @suite_property(
        st.lists(DELAYS, max_size=12),
        st.data(),
        LIMITS,
        st.sampled_from(LENGTHS),
    )
    def test_input_length_is_not_trusted(
        self, item_delays: list[float], data: st.DataObject, limit: int | None, length: str
    ) -> None:
        """The input's ``__len__`` never decides anything: every item is pulled and called.

        The input is iterable and also has a ``__len__`` that raises (as
        ``len(range(10**19))`` raises ``OverflowError``) or lies (0, 1, or
        more items than there are). The results must still be one per item
        in input order; and when an item fails, its own exception comes out.
        """
        count = len(item_delays)
        fail_at = data.draw(
            st.none() | st.integers(min_value=0, max_value=max(count - 1, 0)), label="fail_at"
        )
        if count == 0:
            fail_at = None
        delays = tuple(d * self._scale for d in item_delays)

        async def body(log: Log) -> None:
            fails = frozenset() if fail_at is None else frozenset({fail_at})
            call = ItemCall(log, delays, fails)
            items = Misleading(log, count, length)
            try:
                result = await self.executor.map(call, items, limit=limit)
            except ItemFailure as exc:
                failed: int | None = exc.index
            except Exception as exc:
                raise AssertionError(
                    f"map raised {exc!r} for an input whose len() {length}"
                ) from exc
            else:
                assert result == [i * 2 for i in range(count)]
                failed = None
            assert failed == fail_at, f"item {fail_at} should have failed, not {failed}"

        self._each_backend(body)

    @suite_property(st.integers(min_value=0, max_value=8), st.sampled_from(HUGE_LIMITS))
    def test_huge_limit_costs_what_no_limit_costs(self, count: int, limit: int) -> None:
        """A limit far above the batch's size starts no more than the items need.

        The input is a generator (no ``len()``) of at most 8 items, and the
        limit is 1000 or 10000. The batch must finish within two seconds
        (times ``time_scale``), and when an item starts the event loop may
        hold no more tasks than the items pulled so far, plus two of the
        executor's own: an executor that starts ``limit`` workers up front
        fails at its first item. A remote executor is only held to the time.

        The limits stay this low on purpose: an executor that starts
        ``limit`` workers in a loop that never awaits cannot be stopped by a
        timeout, and 10**12 of them would exhaust the machine's memory
        rather than fail the test.
        """
        scale = self._scale
        remote = self._is_remote()

        async def body(log: Log) -> None:
            # Counting tasks means nothing in other processes: a remote
            # executor's items only return.
            call: Callable[[int], Awaitable[int]] = (
                ItemCall(log)
                if remote
                else TaskCountingCall(log, len(anyio.get_running_tasks()), limit)
            )
            with anyio.fail_after(PROMPT * scale):
                result = await self.executor.map(call, pulled(log, count), limit=limit)
            assert result == [i * 2 for i in range(count)]

        self._each_backend(body)
