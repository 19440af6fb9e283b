"""The remote conformance suite rejects dask executors that break the contract.

Without this, a suite whose probes could not see into the worker processes
would pass anything. Each case runs one property on one input chosen to
expose the breach, rather than waiting for Hypothesis to find it.
"""

from __future__ import annotations

from typing import Any

import pytest
from broken_executors import DoesNotWait, NeverStops

from pocketcore.testing import ExecutorConformance

pytestmark = pytest.mark.usefixtures("address")


class Drawn:
    """Stands in for Hypothesis's ``st.data()``: every draw returns the value given."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return self.value


def check(executor: Any, prop: str, **inputs: Any) -> None:
    suite = type("Suite", (ExecutorConformance,), {"executor": executor})
    body = getattr(suite, prop).hypothesis.inner_test
    body(suite(), **inputs)


def test_an_executor_that_goes_on_after_a_failure_is_rejected() -> None:
    with pytest.raises(AssertionError, match=r"items \[2, 3, 4, 5\] started after the first"):
        check(
            NeverStops(),
            "test_failure_stops_the_batch",
            item_delays=[0.0] * 6,
            data=Drawn({1}),
            limit=1,
        )


def test_an_executor_that_raises_while_tasks_run_is_rejected() -> None:
    with pytest.raises(AssertionError, match="map raised while calls were still in flight"):
        check(
            DoesNotWait(),
            "test_failure_stops_the_batch",
            item_delays=[0.0, 0.5],
            data=Drawn({0}),
            limit=None,
        )


def test_an_executor_that_returns_on_cancellation_while_tasks_run_is_rejected() -> None:
    with pytest.raises(AssertionError, match="cancellation returned while calls were in flight"):
        check(
            DoesNotWait(),
            "test_cancelling_the_caller_cancels_the_batch",
            item_delays=[10.0, 10.0],
            limit=None,
            after=0.01,
        )


def test_the_real_executor_passes_the_same_inputs() -> None:
    from pocketcore_dask import DaskExecutor

    check(
        DaskExecutor(),
        "test_failure_stops_the_batch",
        item_delays=[0.0] * 6,
        data=Drawn({1}),
        limit=1,
    )
    check(
        DaskExecutor(),
        "test_cancelling_the_caller_cancels_the_batch",
        item_delays=[10.0, 10.0],
        limit=None,
        after=0.01,
    )
