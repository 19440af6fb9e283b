"""The driver's side of a batch: every failure is named, even one Ray reports as cancelled.

Ray reports a task it was asked to cancel as cancelled when the request
arrives just as the task returns, although the item had failed first: the
worker keeps each failure in the cluster's key-value store, and the driver
asks for those of the tasks that came back cancelled. The race is too narrow
to provoke through Ray, so the driver's side runs here on tasks whose
outcomes the test decides, and the worker's side on a real instance.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from typing import Any

import pytest
import ray.cloudpickle as cloudpickle
import ray.exceptions as rex

from pocketcore_ray import _batch, _worker


class Task:
    """What ``submit`` returns in place of an ``ObjectRef``: its outcome set by the test."""

    def __init__(self) -> None:
        self.settled: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def future(self) -> concurrent.futures.Future[Any]:
        return self.settled


def failed(message: str) -> bytes:
    """A worker's outcome of an item that raised ``ValueError(message)``."""
    return _worker._failed(ValueError(message))


@pytest.mark.parametrize("kept", [True, False])
def test_a_failure_reported_as_cancelled_is_named_on_the_raised_one(
    monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    tasks: list[Task] = []

    def submit(index: int, item: Any) -> Task:
        tasks.append(Task())
        return tasks[-1]

    asked: list[tuple[str, list[int]]] = []

    def kept_failures(batch: str, indices: list[int]) -> dict[int, bytes]:
        asked.append((batch, list(indices)))
        return {1: failed("the second failure")} if kept else {}

    monkeypatch.setattr(_batch, "kept_failures", kept_failures)

    async def main() -> None:
        running = asyncio.ensure_future(
            _batch.run_batch(
                submit,
                "Node",
                range(3),
                None,
                gate=None,
                on_result=None,
                kill_after=None,
                batch_name="b",
            )
        )
        await asyncio.sleep(0)  # every item is submitted at once: no limit, no gate
        assert len(tasks) == 3
        tasks[0].settled.set_result(failed("the first failure"))
        await asyncio.sleep(0.05)
        # Cancelled by the batch's stop: item 1 had failed, item 2 had not.
        tasks[1].settled.set_exception(rex.TaskCancelledError())
        tasks[2].settled.set_exception(rex.TaskCancelledError())
        await running

    with pytest.raises(ValueError, match="the first failure") as info:
        asyncio.run(main())
    notes = getattr(info.value, "__notes__", [])
    assert asked == [("b", [1, 2])]
    assert any("the second failure" in note for note in notes) is kept, notes


def test_the_worker_keeps_a_failure_until_the_batch_is_forgotten() -> None:
    def fails(item: int) -> int:
        raise ValueError(f"item {item} failed")

    batch = f"pocketcore-test-{uuid.uuid4().hex}"
    holder = (cloudpickle.dumps(fails), batch, False, batch)
    sent = _worker.run_item((holder, True, 7, 3))
    assert _worker.kept_failures(batch, [2, 3]) == {3: sent}
    ok, value = _batch._decoded(sent, 3, "Node")
    assert ok is False
    assert str(value) == "item 7 failed"
    _worker.forget(batch)
    assert _worker.kept_failures(batch, [3]) == {}


def test_a_result_is_not_kept() -> None:
    batch = f"pocketcore-test-{uuid.uuid4().hex}"
    holder = (cloudpickle.dumps(lambda item: item * 2), batch, False, batch)
    sent = _worker.run_item((holder, True, 7, 0))
    assert _batch._decoded(sent, 0, "Node") == (True, 14)
    assert _worker.kept_failures(batch, [0]) == {}
