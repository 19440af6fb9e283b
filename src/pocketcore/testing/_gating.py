"""The properties of an executor that gates items: entered before each call, left after it.

An executor that declares ``gates_items = True`` (``pocketcore.GatingExecutor``)
is handed a gate by the kernel, built from the batch's limiters, and must
enter it before it starts each item and leave it, once per entry, when the
item has ended: returned, failed, cancelled, or never started because the
batch stopped. These properties hand ``map`` a :class:`ProbeGate`, which
records its entries and leaves on the timeline the items record to, and
check on that timeline what :meth:`Seen.gate_problem` says. They are made
into tests only for an executor that declares the capability.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
from hypothesis import strategies as st

from ._failures import Failures
from ._probes import ItemCall, Log, OverlapCall, ProbeGate, RefusedCall, Seen, pulled
from ._suite import (
    CANCEL_AFTER,
    CAPACITIES,
    DELAYS,
    LIMITS,
    STRAGGLING,
    attempts_property,
    gate_property,
)


class Gating(Failures):
    """The properties of the gate (a part of ``ExecutorConformance``)."""

    async def _map(
        self,
        fn: Callable[[int], Awaitable[int]],
        items: Iterable[int],
        limit: int | None,
        gate: ProbeGate,
    ) -> list[Any]:
        """The executor's ``map``, with ``gate``: a keyword the ``Executor`` protocol lacks."""
        run: Callable[..., Awaitable[list[Any]]] = self.executor.map
        return await run(fn, items, limit=limit, gate=gate)

    @staticmethod
    def _check_refusals(gate: ProbeGate, refusals: list[int]) -> None:
        """Each item's refusals: asked about on its entry, its run handed back to it."""
        began: dict[int, float] = {}  # when each item's run of refusals began
        counted: dict[int, int] = {}
        for index, since, returned, open_entries in gate.refusals:
            assert open_entries >= 1, f"item {index}'s entry was left before the gate was asked"
            assert since == began.get(index), (
                f"item {index} was refused with since={since}; its run began at {began.get(index)}"
            )
            began.setdefault(index, returned)
            counted[index] = counted.get(index, 0) + 1
        assert counted == {i: n for i, n in enumerate(refusals) if n}

    def _check_gate(self, log: Log, capacity: int | None) -> None:
        problem = Seen(log.timeline()).gate_problem(capacity)
        assert problem is None, problem

    @gate_property(st.lists(DELAYS, max_size=16), LIMITS, CAPACITIES, st.booleans())
    def test_gate_is_entered_before_each_call_and_left_after_it(
        self, item_delays: list[float], limit: int | None, capacity: int | None, eager: bool
    ) -> None:
        """Each call starts on an entry of its own, left once the call has ended.

        The gate admits ``capacity`` items at a time (any number for
        ``None``); a gate that is not ``eager`` refuses every ``try_enter``,
        so each entry goes through ``await gate.enter()``. The results must
        be those of the batch without a gate, no more calls may be in
        flight than the gate admits, and by the time ``map`` returns every
        entry has been left, once.
        """
        delays = tuple(d * self._scale for d in item_delays)
        count = len(delays)

        async def body(log: Log) -> None:
            gate = ProbeGate(log, capacity, eager=eager)
            result = await self._map(ItemCall(log, delays), pulled(log, count), limit, gate)
            assert result == [i * 2 for i in range(count)]
            self._check_gate(log, capacity)
            timeline = log.timeline()
            await anyio.sleep(0.005 * self._scale)
            assert len(log.timeline()) == len(timeline), "the gate was used after map returned"

        self._each_backend(body)

    @gate_property(
        st.lists(DELAYS, min_size=1, max_size=16), st.data(), LIMITS, CAPACITIES, st.booleans()
    )
    def test_gate_is_left_when_the_batch_fails(
        self,
        item_delays: list[float],
        data: st.DataObject,
        limit: int | None,
        capacity: int | None,
        eager: bool,
    ) -> None:
        """A failing batch leaves every entry: of calls that failed, were cancelled or never ran.

        Items that wait at the gate when the batch stops never start, and the
        batch stops as it does without a gate (see
        ``test_failure_stops_the_batch``).
        """
        count = len(item_delays)
        fail_at, delays = self._failing(data, item_delays)

        async def body(log: Log) -> None:
            gate = ProbeGate(log, capacity, eager=eager)
            call = ItemCall(log, delays, fail_at)
            raised = await self._failure_of(self._map(call, pulled(log, count), limit, gate))
            self._check_gate(log, capacity)
            await self._check_stopped(log, raised, count, limit, delays)

        self._each_backend(body)

    @gate_property(
        st.lists(STRAGGLING, min_size=1, max_size=16),
        LIMITS,
        CANCEL_AFTER,
        CAPACITIES,
        st.booleans(),
    )
    def test_gate_is_left_when_the_caller_is_cancelled(
        self,
        item_delays: list[float],
        limit: int | None,
        after: float,
        capacity: int | None,
        eager: bool,
    ) -> None:
        """A cancelled caller leaves every entry; nothing of the batch uses the gate afterwards."""
        scale = self._scale
        delays = tuple(d * scale for d in item_delays)

        async def body(log: Log) -> None:
            gate = ProbeGate(log, capacity, eager=eager)
            with anyio.move_on_after(after * scale):
                await self._map(ItemCall(log, delays), pulled(log, len(delays)), limit, gate)
            self._check_gate(log, capacity)
            await self._check_quiet(log, "a call ran on, or the gate was used,")

        self._each_backend(body)

    @gate_property(
        st.integers(min_value=1, max_value=12),
        LIMITS,
        st.integers(min_value=1, max_value=4),
        st.booleans(),
    )
    def test_gate_bounds_the_items_in_flight(
        self, count: int, limit: int | None, capacity: int, eager: bool
    ) -> None:
        """A gate that admits k at a time bounds the calls in flight to k, and k do run together.

        Each item, once started, waits until ``room`` items have started
        (the batch's size, the limit and the gate's capacity, whichever is
        smallest), as in ``test_parallel_items_overlap``: a parallel
        executor must have exactly ``room`` calls in flight at its peak, no
        more (the gate bounds them) and no fewer (waiting at the gate does
        not serialize the batch); a sequential one, exactly one.
        """
        room = min(count, capacity, count if limit is None else limit)

        async def body(log: Log) -> None:
            gate = ProbeGate(log, capacity, eager=eager)
            call = OverlapCall(log, room, self._patience)
            result = await self._map(call, list(range(count)), limit, gate)
            assert result == list(range(count))
            max_in_flight = Seen(log.timeline()).peaks()[0]
            expected = room if self.parallel else 1
            assert max_in_flight == expected, (
                f"{max_in_flight} in flight at most, through a gate of {capacity} "
                f"(limit {limit}, {count} items): expected {expected}"
            )
            self._check_gate(log, capacity)

        self._each_backend(body)

    @attempts_property(
        st.lists(st.integers(min_value=0, max_value=3), max_size=8),
        LIMITS,
        CAPACITIES,
        st.booleans(),
    )
    def test_a_refused_call_enters_again_and_is_made_again(
        self, refusals: list[int], limit: int | None, capacity: int | None, eager: bool
    ) -> None:
        """``gates_attempts``: a call the gate says to make again is, on an entry of its own.

        Item ``i`` is refused ``refusals[i]`` times (a refusal the gate's
        ``again`` answers with when its run of refusals began), then
        returns. Each item must be called once per refusal and once more,
        every call on an entry of its own (left before the next, and once);
        each refusal after an item's first must come back with what ``again``
        returned for that item; ``passed`` is told once per item.
        """
        count = len(refusals)

        async def body(log: Log) -> None:
            gate = ProbeGate(log, capacity, eager=eager)
            made: list[int] = []
            call = RefusedCall(log, tuple(refusals), made)
            result = await self._map(call, list(range(count)), limit, gate)
            assert result == [i * 2 for i in range(count)]
            assert sorted(made) == sorted(i for i in range(count) for _ in range(refusals[i] + 1))
            assert gate.passes == count, f"passed told {gate.passes} times for {count} items"
            self._check_refusals(gate, refusals)
            self._check_gate(log, capacity)

        self._each_backend(body)
