"""The kernel's per-item controls on the dask executor: a timeout per attempt and collect.

Both travel with the work: each attempt is timed on the worker it runs on,
and an item that still fails comes back as a ``pocketcore.Failed`` value.
Pacing and limiters need pocketcore to start each item itself, which a
remote executor does; they are refused with a ``ConfigError``.
"""

from __future__ import annotations

from typing import Any

import pytest
from dask_nodes import HangsThenAnswers

import pocketcore

pytestmark = pytest.mark.usefixtures("address")


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


def test_pacing_is_refused_before_any_item_is_sent() -> None:
    node = HangsThenAnswers(max_per_second=5)
    node.set_params({"hangs": [0]})
    with pytest.raises(pocketcore.ConfigError, match="cannot pace their starts"):
        pocketcore.run(node, {"hangs": [0]}, executor="dask")
