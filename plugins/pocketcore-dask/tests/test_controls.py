"""The kernel's per-item controls on the dask executor: pacing and limiters, timeouts, collect.

Pacing and limiters are enforced where the items are sent: the executor
gates items (``pocketcore.GatingExecutor``), so each item enters the batch's
limiters before it is submitted and leaves them when its task settles. A
timeout per attempt and collect travel with the work: each attempt is timed
on the worker it runs on, and an item that still fails comes back as a
``pocketcore.Failed`` value.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from dask_nodes import HangsThenAnswers, SyncTimed, Timed
from distributed import LocalCluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import Limiter
from pocketcore_dask import DaskExecutor

pytestmark = pytest.mark.usefixtures("address")

KINDS: dict[str, type[pocketcore.BaseNode]] = {"async": Timed, "sync": SyncTimed}

# Starts are paced where the items are submitted, and measured where they
# start, on the workers: after a hop through the scheduler to a worker
# process (and, for an async item, a new event loop on a worker thread),
# whose length varies from item to item on a loaded two-core machine. Two
# starts may so be seen closer together than their submissions by up to the
# difference of their hops: this is the slack allowed. The rates keep starts
# at least 125 ms apart, so an unpaced batch (every start within a few
# milliseconds) still fails by far.
SLACK = 0.1


def test_a_timeout_retries_on_the_worker_and_collect_keeps_every_outcome() -> None:
    node = HangsThenAnswers(max_retries=2, timeout=0.2, on_error="collect")
    node.set_params({"hangs": [0, 1, 0, 2], "bad": [2]})
    shared: dict[str, Any] = {"hangs": [0, 1, 0, 2]}
    pocketcore.run(node, shared, executor="dask")
    first, second, bad, hung = shared["results"]
    assert (first, second) == ((0, 0), (1, 1))  # item 1 answered on its second attempt
    assert isinstance(bad, pocketcore.Failed)
    assert (bad.index, bad.item, bad.attempts, str(bad.exception)) == (2, 2, 2, "item 2 is bad")
    assert isinstance(hung, pocketcore.Failed)
    assert (hung.index, hung.attempts, type(hung.exception)) == (3, 2, TimeoutError)


@pytest.fixture(scope="module")
def warm(cluster: LocalCluster) -> None:
    """The workers have run these nodes once: the first item is not late by an import."""
    executor = DaskExecutor(cluster.scheduler_address)  # the session's cluster, not a new one
    for cls in KINDS.values():
        pocketcore.run(cls(), {"n": 4}, executor=executor)


@pytest.mark.usefixtures("warm")
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    n=st.integers(3, 7),
    rate=st.sampled_from([4.0, 8.0]),
    limit=st.one_of(st.none(), st.integers(1, 3)),
)
def test_starts_on_the_workers_are_paced(kind: str, n: int, rate: float, limit: int | None) -> None:
    shared: dict[str, Any] = {"n": n}
    pocketcore.run(KINDS[kind](max_per_second=rate, max_concurrency=limit), shared, executor="dask")
    starts = sorted(start for start, _ in shared["times"])
    assert len(starts) == n
    # Never faster than the rate, but for the slack ...
    assert starts[-1] - starts[0] >= (n - 1) / rate - SLACK
    # ... and in any window of T seconds at most floor(rate * T) + 1 starts.
    for i in range(n):
        for j in range(i + 1, n):
            window = starts[j] - starts[i]
            assert j - i + 1 <= math.floor(rate * (window + SLACK)) + 1, (
                f"{j - i + 1} starts within {window:.3f} s at {rate:g}/s"
            )


def _most_at_once(times: list[tuple[float, float]]) -> int:
    """The most items running at once: an item that ended at the instant another started, not."""
    events = sorted([(end, -1) for _, end in times] + [(start, 1) for start, _ in times])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_shared_limiter_bounds_the_items_on_the_cluster(kind: str) -> None:
    # Its slots are held from submission until the result is back, so the
    # items' runs on the workers (one ends before the next may be sent) never
    # overlap more than it allows, whatever the clocks' resolution.
    limiter = Limiter(max_concurrency=2, name="llm")
    node = KINDS[kind](limiter=limiter)
    node.set_params({"hold": 0.2})
    shared: dict[str, Any] = {"n": 6}
    pocketcore.run(node, shared, executor="dask")
    assert _most_at_once(shared["times"]) == 2
    assert limiter._in_flight == 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_failed_batch_gives_every_slot_back(kind: str) -> None:
    limiter = Limiter(max_concurrency=2, name="llm")
    node = KINDS[kind](limiter=limiter)
    node.set_params({"hold": 0.05, "fail": [1]})
    with pytest.raises(ValueError, match="item 1 failed"):
        pocketcore.run(node, {"n": 6}, executor="dask")
    assert limiter._in_flight == 0
    # The limiter serves the next run as a fresh one would.
    node.set_params({"hold": 0.0})
    shared: dict[str, Any] = {"n": 3}
    pocketcore.run(node, shared, executor="dask")
    assert len(shared["times"]) == 3
