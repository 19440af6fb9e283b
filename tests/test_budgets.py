"""Budgets refilled continuously, with one queue of waiting calls (the governor's core)."""

from __future__ import annotations

import itertools
import math
import threading
import time

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketcore._runtime.budgets import Bucket, Budgets

# Clock reads around a charge land a little apart: windows are checked with
# this much slack (seconds), on a machine that may be busy.
SLACK = 0.02


def within_budget(admitted: list[tuple[float, float]], bucket: Bucket, largest: float) -> None:
    """Over any window, what was admitted fits capacity + rate * window (+ one call's excess)."""
    admitted.sort()
    totals = list(itertools.accumulate((amount for _, amount in admitted), initial=0.0))
    excess = max(0.0, largest - bucket.capacity)
    for a, (start, _) in enumerate(admitted):
        for b in range(a, len(admitted)):
            window = admitted[b][0] - start + SLACK
            assert totals[b + 1] - totals[a] <= bucket.capacity + bucket.rate * window + excess


@settings(max_examples=16, deadline=None)
@given(
    charges=st.lists(st.integers(1, 120), min_size=1, max_size=30),
    cancel=st.sets(st.integers(0, 29)),
    overtake=st.sampled_from([0.0, 0.02, 1.0]),
)
def test_no_window_takes_more_than_the_budget(
    charges: list[int], cancel: set[int], overtake: float
) -> None:
    # 2,000 tokens a second, 100 held; calls of up to 120 tokens, some given up,
    # and short calls let go before long ones or not.
    budgets = Budgets({"tokens": Bucket(rate=2000, capacity=100)}, overtake=overtake)
    admitted: list[tuple[float, float]] = []

    async def call(i: int, amount: int) -> None:
        if i in cancel:
            with anyio.move_on_after(0.001):
                await budgets.charge({"tokens": amount})
                admitted.append((time.monotonic(), amount))
            return
        await budgets.charge({"tokens": amount})
        admitted.append((time.monotonic(), amount))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i, amount in enumerate(charges):
                tg.start_soon(call, i, amount)

    anyio.run(main)
    assert budgets.waiting() == 0
    # Every call that did not give up got in; some that gave up got in first.
    kept = sum(i not in cancel for i in range(len(charges)))
    assert kept <= len(admitted) <= len(charges)
    within_budget(admitted, budgets.buckets["tokens"], max(charges))


def test_a_cancelled_wait_takes_nothing() -> None:
    budgets = Budgets({"tokens": Bucket(rate=10, capacity=10)})

    async def main() -> None:
        await budgets.charge({"tokens": 10})  # empties the bucket
        with anyio.move_on_after(0.05):
            await budgets.charge({"tokens": 10})  # would wait about a second
        pytest.fail("the second charge cannot fit in 0.05 s")

    with pytest.raises(pytest.fail.Exception):
        anyio.run(main)
    # The cancelled call left nothing reserved: the bucket is refilling
    # from empty, not from minus one charge.
    level = budgets.levels()["tokens"]
    assert 0 <= level < 3
    assert budgets.waiting() == 0


def test_the_queue_is_first_come_first_served() -> None:
    # A large call at the head is not overtaken by small ones behind it.
    budgets = Budgets({"tokens": Bucket(rate=1000, capacity=100)})
    order: list[str] = []

    async def call(name: str, amount: int) -> None:
        await budgets.charge({"tokens": amount})
        order.append(name)

    async def main() -> None:
        await budgets.charge({"tokens": 100})
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "big", 100)
            await anyio.sleep(0.01)
            for i in range(5):
                tg.start_soon(call, f"small{i}", 1)
                await anyio.lowlevel.checkpoint()

    anyio.run(main)
    assert order[0] == "big"


@settings(max_examples=8, deadline=None)
@given(
    long=st.integers(40, 100),
    short=st.lists(st.integers(1, 10), min_size=1, max_size=12),
    overtake=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_shorter_calls_go_first_only_within_the_overtake_bound(
    long: int, short: list[int], overtake: float
) -> None:
    # Requests capped at one held (as a limiter's are) and tokens at 100,
    # refilled at 100 a second: the long call waits for its tokens (0.4 s to
    # 1 s), during which the short ones behind it fit.
    budgets = Budgets(
        {"requests": Bucket(rate=50, capacity=1), "tokens": Bucket(rate=100, capacity=100)},
        overtake=overtake,
    )
    started: dict[str, float] = {}

    async def call(name: str, amount: int) -> None:
        await budgets.charge({"requests": 1, "tokens": amount})
        started[name] = time.monotonic()

    async def main() -> None:
        await budgets.charge({"requests": 1, "tokens": 100})  # empties both buckets
        begun = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "long", long)
            await anyio.lowlevel.checkpoint()
            for i, amount in enumerate(short):
                tg.start_soon(call, f"short{i}", amount)
        started["begun"] = begun

    anyio.run(main)
    # Strictly in turn, the long call starts once its tokens are in.
    due = started["begun"] + long / 100
    # A wake-up on a busy machine comes late: a quarter of a second allowed.
    assert started["long"] <= due + overtake + 0.25, "delayed past the bound"
    first = [
        name for name in started if name.startswith("short") and started[name] < started["long"]
    ]
    if overtake == 0.0:
        assert first == [], "overtaken although the queue is strictly in turn"
    assert budgets.waiting() == 0


def test_a_long_call_is_overtaken_by_short_ones_that_fit() -> None:
    budgets = Budgets(
        {"requests": Bucket(rate=100, capacity=1), "tokens": Bucket(rate=1000, capacity=1000)},
        overtake=1.0,
    )
    order: list[str] = []

    async def call(name: str, amount: int) -> None:
        await budgets.charge({"requests": 1, "tokens": amount})
        order.append(name)

    async def main() -> None:
        await budgets.charge({"requests": 1, "tokens": 1000})  # a second until 1,000 tokens
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "long", 1000)
            await anyio.lowlevel.checkpoint()
            for i in range(3):
                tg.start_soon(call, f"short{i}", 10)

    anyio.run(main)
    # The requests the long call does not need yet go to the short ones.
    assert order == ["short0", "short1", "short2", "long"]


def test_a_pause_stops_every_start_until_it_ends() -> None:
    budgets = Budgets({"requests": Bucket(rate=1000, capacity=1000)})
    starts: list[float] = []

    async def call() -> None:
        await budgets.charge({"requests": 1})
        starts.append(time.monotonic())

    async def main() -> float:
        budgets.pause(0.2)
        paused_at = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(call)
        return paused_at

    paused_at = anyio.run(main)
    assert len(starts) == 10
    assert min(starts) >= paused_at + 0.2 - SLACK
    assert budgets.paused_for() == 0.0


def test_a_pause_reaches_calls_already_waiting() -> None:
    budgets = Budgets({"tokens": Bucket(rate=100, capacity=10)})
    starts: list[float] = []

    async def main() -> float:
        await budgets.charge({"tokens": 10})
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await budgets.charge({"tokens": 1})  # fits in 0.01 s, were it not paused
                starts.append(time.monotonic())

            tg.start_soon(call)
            await anyio.lowlevel.checkpoint()
            budgets.pause(0.2)
            return time.monotonic()

    paused_at = anyio.run(main)
    assert starts[0] >= paused_at + 0.2 - SLACK


@given(charged=st.integers(0, 500), used=st.integers(0, 500))
def test_a_correction_moves_the_level_by_the_difference(charged: int, used: int) -> None:
    budgets = Budgets({"tokens": Bucket(rate=1e-9, capacity=1000)})  # no refill to speak of
    assert budgets.try_charge({"tokens": charged})
    budgets.correct({"tokens": charged}, {"tokens": used})
    assert budgets.levels()["tokens"] == pytest.approx(min(1000, 1000 - used), abs=1e-3)


def test_a_correction_wakes_the_head_of_the_queue() -> None:
    budgets = Budgets({"tokens": Bucket(rate=1, capacity=100)})  # one token a second
    assert budgets.try_charge({"tokens": 100})

    async def main() -> float:
        started = time.monotonic()
        async with anyio.create_task_group() as tg:

            async def refund() -> None:
                await anyio.sleep(0.05)
                budgets.correct({"tokens": 100}, {"tokens": 20})

            tg.start_soon(refund)
            await budgets.charge({"tokens": 50})  # 50 s away, but 80 come back
        return time.monotonic() - started

    assert anyio.run(main) < 2


def test_sync_lowers_a_bucket_but_never_raises_it() -> None:
    budgets = Budgets({"tokens": Bucket(rate=1e-9, capacity=1000)})
    budgets.sync("tokens", 300)
    assert budgets.levels()["tokens"] == pytest.approx(300)
    budgets.sync("tokens", 900)
    assert budgets.levels()["tokens"] == pytest.approx(300)
    budgets.sync("other", 0)  # a unit this limiter does not budget: ignored
    assert budgets.levels() == pytest.approx({"tokens": 300})


def test_a_call_larger_than_the_capacity_waits_for_a_full_bucket_then_owes() -> None:
    budgets = Budgets({"tokens": Bucket(rate=1000, capacity=100)})

    async def main() -> None:
        await budgets.charge({"tokens": 250})  # the bucket is full: goes at once
        assert budgets.levels()["tokens"] == pytest.approx(-150, abs=5)
        started = time.monotonic()
        await budgets.charge({"tokens": 1})  # waits out the debt: about 0.15 s
        assert time.monotonic() - started >= 0.15 - SLACK

    anyio.run(main)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_one_budget_shared_by_loops_on_two_threads(backend: str) -> None:
    # Calls waiting on two event loops at once take turns through one queue;
    # the total admitted still fits the budget.
    budgets = Budgets({"requests": Bucket(rate=200, capacity=1)})
    admitted: list[tuple[float, float]] = []
    lock = threading.Lock()

    async def calls(n: int) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(n):

                async def one() -> None:
                    await budgets.charge({"requests": 1})
                    with lock:
                        admitted.append((time.monotonic(), 1))

                tg.start_soon(one)

    other = threading.Thread(target=anyio.run, args=(calls, 20), kwargs={"backend": backend})
    other.start()
    anyio.run(calls, 20)
    other.join()
    assert len(admitted) == 40
    within_budget(admitted, budgets.buckets["requests"], 1)
    assert not math.isinf(budgets.levels()["requests"])
