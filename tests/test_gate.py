"""The gate: how a batch's limiters reach an executor that gates items itself.

An executor that declares ``gates_items = True`` (``pocketcore.GatingExecutor``)
is handed the batch's limiters as one ``pocketcore.Gate`` and enters it
before each item starts; the kernel then wraps nothing around the items. A
remote one is paced that way too. The gate takes every slot first, then every
turn, all or nothing in ``try_enter``.
"""

from __future__ import annotations

import itertools
import math
import pickle
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import pytest

import pocketcore
from pocketcore import Gate, Limiter
from pocketcore._runtime.gate import gate_of
from pocketcore.testing import RecordingExecutor

from .test_remote import Pickling

#: How much closer together than their turns two starts may be seen: a start is
#: never early, but may be late (a loop's wake-up on a loaded machine), and the
#: next one's turn does not move. Half of the spacing at the rates used here,
#: so an unpaced batch (starts a few microseconds apart) still fails by far.
SLACK = 0.05


class SeesTheGate:
    """A sequential executor that gates items, and records what ``map`` is handed."""

    name = "sees-the-gate"
    backend = None
    gates_items = True

    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any]] = []

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return RecordingExecutor().run(fn)

    async def map(
        self, fn: Any, items: Iterable[Any], *, limit: int | None, gate: Gate | None = None
    ) -> list[Any]:
        self.seen.append((fn, gate))
        results = []
        for item in items:
            if gate is not None and not gate.try_enter():
                await gate.enter()
            try:
                results.append(await fn(item))
            finally:
                if gate is not None:
                    gate.leave()
        return results


class PicklingGated(Pickling):
    """A remote-looking executor that gates items: each copy starts once through the gate."""

    name = "pickling-gated"
    gates_items = True

    async def map(  # type: ignore[override]
        self, fn: Any, items: Iterable[Any], *, limit: int | None, gate: Gate | None = None
    ) -> list[Any]:
        return await self._each(pickle.loads(pickle.dumps(fn)), items, gate, sync=False)

    async def map_blocking(  # type: ignore[override]
        self, fn: Any, items: Iterable[Any], *, limit: int | None, gate: Gate | None = None
    ) -> list[Any]:
        return await self._each(pickle.loads(pickle.dumps(fn)), items, gate, sync=True)

    async def _each(self, work: Any, items: Iterable[Any], gate: Gate | None, sync: bool) -> Any:
        assert gate is not None, "the kernel passes a gate to an executor that gates items"
        results = []
        for item in items:
            if not gate.try_enter():
                await gate.enter()
            try:
                results.append(work(item) if sync else await work(item))
            finally:
                gate.leave()
        return results


class Squares(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    async def exec_async(self, item: int) -> int:
        return item * item

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class Stamps(pocketcore.AsyncParallelBatchNode):
    """Each item's result is when it started (on whichever copy of the node runs it)."""

    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    async def exec_async(self, item: int) -> float:
        return time.monotonic()

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["starts"] = exec_res


class SyncStamps(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    def exec(self, item: int) -> float:
        return time.monotonic()

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["starts"] = exec_res


def test_async_items_here_pass_the_limiters_in_the_kernel_not_through_the_gate() -> None:
    # Every attempt of an async item that runs in this process passes its
    # limiters (the governor's layers), so the executor is handed no gate:
    # it would admit only the first attempt.
    executor = SeesTheGate()
    limiter = Limiter(max_concurrency=2)
    node = Squares(limiter=limiter)
    shared: dict[str, Any] = {"items": [1, 2, 3]}
    pocketcore.run(node, shared, executor=executor)
    assert shared["out"] == [1, 4, 9]
    ((fn, gate),) = executor.seen
    assert gate is None
    assert getattr(fn, "__func__", None) is not Squares.exec_async
    assert limiter.idle


def test_blocking_items_are_handed_to_a_gating_executor_with_the_gate() -> None:
    executor = PicklingGated()
    node = SyncStamps(limiter=Limiter(max_concurrency=1))
    shared: dict[str, Any] = {"n": 2}
    pocketcore.run(node, shared, executor=executor)
    assert len(shared["starts"]) == 2  # PicklingGated asserts it was handed a gate


def test_without_limiters_no_gate_is_passed() -> None:
    executor = SeesTheGate()
    shared: dict[str, Any] = {"items": [1, 2]}
    pocketcore.run(Squares(), shared, executor=executor)
    assert [gate for _, gate in executor.seen] == [None]


@pytest.mark.parametrize("cls", [Stamps, SyncStamps])
@pytest.mark.parametrize("how", ["max_per_second", "limiter"])
def test_a_remote_executor_that_gates_items_is_paced(
    cls: type[pocketcore.BaseNode], how: str
) -> None:
    rate, n = 10.0, 4
    shared: dict[str, Any] = {"n": n}
    # A Limiter object travels with the node it is set on (as a copy, unused there).
    node = (
        cls(max_per_second=rate)
        if how == "max_per_second"
        else cls(limiter=Limiter(max_per_second=rate))
    )
    pocketcore.run(node, shared, executor=PicklingGated())
    starts = shared["starts"]
    assert len(starts) == n
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 1 / rate - SLACK


# --- the gate the kernel builds from a batch's limiters ------------------------------


def test_one_limiter_with_both_bounds_is_entered_all_or_nothing() -> None:
    limiter = Limiter(max_concurrency=1, max_per_second=1)
    gate = gate_of((limiter,))
    assert gate.try_enter()
    assert not gate.try_enter()  # no slot
    gate.leave()
    assert not gate.try_enter()  # a slot, but the next turn is a second away ...
    assert limiter.try_take_slot()  # ... and the slot it found was given back
    limiter.release()


@pytest.mark.parametrize(
    "limiters",
    [
        (Limiter(max_concurrency=1),),
        (Limiter(max_per_second=1000),),
        (Limiter(max_concurrency=1), Limiter(max_concurrency=2)),
    ],
    ids=["slots", "turns", "two-with-slots"],
)
def test_a_gate_admits_at_once_what_its_limiters_allow(limiters: tuple[Limiter, ...]) -> None:
    gate = gate_of(limiters)
    assert gate.try_enter()
    gate.leave()
    assert all(limiter._in_flight == 0 for limiter in limiters)


def test_several_limiters_are_entered_slots_first_and_given_back_when_a_turn_is_not_due() -> None:
    slots, turns = Limiter(max_concurrency=1), Limiter(max_per_second=1)
    gate = gate_of((slots, turns))
    assert gate.try_enter()
    gate.leave()
    assert not gate.try_enter()  # the turn is a second away
    assert slots.try_take_slot()  # the slot taken on the way was given back
    slots.release()


def test_a_gate_of_two_paced_limiters_is_entered_all_or_nothing() -> None:
    first = Limiter(max_per_second=0.5)
    second = Limiter(max_per_second=0.5, max_concurrency=1)
    assert second.try_take_turn()  # second's next turn is two seconds away
    gate = gate_of((first, second))
    assert not gate.try_enter()
    assert second._in_flight == 0
    assert first.try_take_turn()  # the turn the gate took from first was given back

    async def main() -> None:
        with anyio.move_on_after(0.05):
            await gate.enter()  # waits for second's turn, holding first's
        assert second._in_flight == 0

    anyio.run(main)
    assert first.idle
    assert second.idle


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_cancelled_entry_gives_back_the_slots_it_took(backend: str) -> None:
    slots, turns = Limiter(max_concurrency=1), Limiter(max_per_second=0.5)
    assert turns.try_take_turn()  # the next turn is two seconds away
    gate = gate_of((slots, turns))

    async def main() -> None:
        with anyio.move_on_after(0.05) as scope:
            await gate.enter()  # takes the slot, then waits for the turn
        assert scope.cancelled_caught

    started = time.monotonic()
    anyio.run(main, backend=backend)
    assert time.monotonic() - started < 1
    assert slots._in_flight == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_pause_holds_back_a_gate_of_a_limiter_without_a_budget(backend: str) -> None:
    # It charges nothing, but a provider's refusal pauses every start on it.
    limiter = Limiter(max_concurrency=2)
    gate = gate_of((limiter,))
    limiter.signal(0.2)
    assert not gate.try_enter()
    assert limiter._in_flight == 0  # the slot it found was given back

    async def main() -> float:
        began = time.monotonic()
        await gate.enter()
        gate.leave()
        return time.monotonic() - began

    assert anyio.run(main, backend=backend) >= 0.2 - SLACK
    assert gate.try_enter()
    gate.leave()
    assert limiter.idle


def test_the_gate_keeps_the_pacing_bound_across_batches_sharing_a_limiter() -> None:
    rate = 10
    limiter = Limiter(max_per_second=rate)
    starts: list[float] = []
    for _ in range(2):
        shared: dict[str, Any] = {"n": 3}
        pocketcore.run(Stamps(limiter=limiter), shared, executor="asyncio")
        starts += shared["starts"]
    starts.sort()
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            window = starts[j] - starts[i]
            assert j - i + 1 <= math.floor(rate * (window + SLACK)) + 1


def test_a_limiter_travels_as_a_fresh_one_with_the_same_bounds() -> None:
    limiter = Limiter(max_concurrency=2, max_per_second=3.5, name="llm")
    assert limiter.try_take_slot()
    copied = pickle.loads(pickle.dumps(limiter))
    assert copied is not limiter
    assert (copied.max_concurrency, copied.max_per_second, copied.name) == (2, 3.5, "llm")
    assert copied._in_flight == 0  # its own budget: the slot taken here stays here
