"""``wait=Backoff(...)``: exponential waits with full jitter, and the server's Retry-After."""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pocketcore
from pocketcore import Backoff, ConfigError

SLACK = 0.03


class Status(Exception):
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(status)
        self.status_code = status
        self.response = type("R", (), {"status_code": status, "headers": headers})()


@given(
    initial=st.floats(0.001, 10),
    maximum=st.floats(0.001, 100),
    multiplier=st.floats(1, 4),
    failures=st.integers(0, 2000),
)
def test_every_wait_is_within_its_bound(
    initial: float, maximum: float, multiplier: float, failures: int
) -> None:
    backoff = Backoff(initial, maximum, multiplier)
    bound = backoff.bound(failures)
    assert bound <= maximum
    try:
        grown = initial * multiplier**failures
    except OverflowError:  # far past any maximum
        grown = math.inf
    assert bound == pytest.approx(min(maximum, grown))
    assert 0 <= backoff.delay(failures) <= bound
    assert Backoff(initial, maximum, multiplier, jitter=False).delay(failures) == bound
    assert backoff.bound(failures + 1) >= bound  # never shrinks


def test_waits_are_spread_not_synchronised() -> None:
    backoff = Backoff(initial=1, maximum=8)
    delays = {round(backoff.delay(3), 6) for _ in range(50)}
    assert len(delays) > 40  # 50 items retrying at once come back at 50 moments


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after": "3"}, 3.0), ({"retry-after-ms": "250"}, 0.25)],
)
@pytest.mark.parametrize("status", [429, 503])
def test_the_servers_retry_after_wins(
    status: int, headers: dict[str, str], expected: float
) -> None:
    backoff = Backoff(initial=100, maximum=1000, jitter=False)
    assert backoff.delay(0, Status(status, headers)) == expected
    assert backoff.delay(0, Status(status, {})) == 100


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"maximum": -1},
        {"multiplier": 0.5},
        {"initial": float("inf")},
        {"initial": "1"},
    ],
)
def test_bad_values_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="Backoff"):
        Backoff(**kwargs)


@pytest.mark.parametrize("kind", ["sync", "async", "parallel", "threads"])
def test_a_node_waits_as_its_backoff_says(kind: str) -> None:
    starts: list[float] = []

    def attempt() -> str:
        starts.append(time.monotonic())
        if len(starts) < 4:
            raise ValueError("not yet")
        return "done"

    wait = Backoff(initial=0.05, multiplier=2, jitter=False)  # 0.05, 0.1, 0.2

    class Plain(pocketcore.Node):
        def exec(self, item: Any) -> str:
            return attempt()

    class Async(pocketcore.AsyncNode):
        async def exec_async(self, item: Any) -> str:
            return attempt()

    class Parallel(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return [1]

        async def exec_async(self, item: Any) -> str:
            return attempt()

    class Threads(pocketcore.ParallelBatchNode):
        def prep(self, shared: Any) -> Any:
            return [1]

        def exec(self, item: Any) -> str:
            return attempt()

    cls = {"sync": Plain, "async": Async, "parallel": Parallel, "threads": Threads}[kind]
    pocketcore.run(cls(max_retries=4, wait=wait), {})
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 3
    for gap, bound in zip(gaps, (0.05, 0.1, 0.2), strict=True):
        assert gap >= bound - SLACK
