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


#: A property, and the one input that exposes an executor breaking it.
Case = tuple[str, dict[str, Any]]

STOPS: Case = (
    "test_failure_stops_the_batch",
    {"item_delays": [0.0] * 6, "data": Drawn({1}), "limit": 1},
)
WAITS_FOR_CALLS: Case = (
    "test_failure_stops_the_batch",
    {"item_delays": [0.0, 0.5], "data": Drawn({0}), "limit": None},
)
WAITS_ON_CANCELLATION: Case = (
    "test_cancelling_the_caller_cancels_the_batch",
    {"item_delays": [10.0, 10.0], "limit": None, "after": 0.01},
)


@pytest.mark.parametrize(
    ("broken", "case", "message"),
    [
        (NeverStops, STOPS, r"items \[2, 3, 4, 5\] started after the first"),
        (DoesNotWait, WAITS_FOR_CALLS, "map raised while calls were still in flight"),
        (DoesNotWait, WAITS_ON_CANCELLATION, "cancellation returned while calls were in flight"),
    ],
    ids=[
        "goes-on-after-a-failure",
        "raises-while-tasks-run",
        "returns-on-cancellation-while-tasks-run",
    ],
)
def test_an_executor_that_breaks_the_contract_is_rejected(
    broken: type[Any], case: Case, message: str
) -> None:
    prop, inputs = case
    with pytest.raises(AssertionError, match=message):
        check(broken(), prop, **inputs)


def test_the_real_executor_passes_the_same_inputs() -> None:
    from pocketcore_dask import DaskExecutor

    for prop, inputs in (STOPS, WAITS_ON_CANCELLATION):
        check(DaskExecutor(), prop, **inputs)
