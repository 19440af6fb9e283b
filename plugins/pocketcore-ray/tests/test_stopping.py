"""Stopping a batch: through its stop flag, never by cancelling a task whose result is arriving.

Ray 2.60's driver aborts (a failed check in its task manager, "Tried to
complete task that was not pending", exit status 1, nothing printed by
Python) when ``ray.cancel`` reaches a task whose result is being taken in
at that moment. A batch stops many tasks just as they end (a failing item
stops its quick siblings), so the run died now and then, in the middle of a
pytest session. The batch is stopped through its flag instead, which its
workers watch.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray.cloudpickle as cloudpickle
from ray_nodes import mark

from pocketcore_ray import _worker

# Many small batches, each stopped by a failure while its other items end:
# before the flag, the driver died within a hundred rounds, every time.
STOPPED_AS_THEY_END = """
import pocketcore
from pocketcore_ray import RayExecutor


class Quick(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return range(12)

    async def exec_async(self, item):
        if item == 3:
            raise ValueError(f"item {item} failed")
        return item


class SyncQuick(pocketcore.ParallelBatchNode):
    def prep(self, shared):
        return range(12)

    def exec(self, item):
        if item == 3:
            raise ValueError(f"item {item} failed")
        return item


executor = RayExecutor(num_cpus=4)
for round in range(ROUNDS):
    node = (Quick if round % 2 else SyncQuick)(max_concurrency=None if round % 3 else 3)
    try:
        pocketcore.run(node, {}, executor=executor)
    except ValueError as exc:
        assert str(exc) == "item 3 failed", exc
    else:
        raise AssertionError("the batch did not fail")
print("rounds:", ROUNDS)
"""


def test_batches_stopped_as_their_items_end_leave_the_driver_alive() -> None:
    rounds = 200
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_RAY_")}
    script = STOPPED_AS_THEY_END.replace("ROUNDS", str(rounds))
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert (done.returncode, done.stdout.splitlines()[-1:]) == (0, [f"rounds: {rounds}"]), (
        done.stderr[-3000:]
    )


def loops_until_stopped(item: int) -> str:
    """A sync item that runs on until interrupted (a minute at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "not stopped"


async def awaits_until_stopped(item: int) -> str:
    """:func:`loops_until_stopped`, async."""
    await asyncio.sleep(60)
    return "not stopped"


@pytest.mark.parametrize(
    ("blocking", "work"), [(True, loops_until_stopped), (False, awaits_until_stopped)]
)
def test_a_running_item_ends_soon_after_its_batch_is_stopped(
    blocking: bool, work: Callable[[int], Any]
) -> None:
    batch = f"pocketcore-test-{uuid.uuid4().hex}"
    holder = (cloudpickle.dumps(work), batch, False, batch)
    stopping = threading.Timer(0.3, _worker.stop, [batch])
    stopping.start()
    start = time.monotonic()
    try:
        sent = _worker.run_item((holder, blocking, 0, 0))
    finally:
        stopping.join()
        _worker.forget(batch)
    assert sent == _worker.SKIPPED  # stopped by its batch: not a failure of its own
    assert time.monotonic() - start < 20


def test_an_item_of_a_stopped_batch_does_not_start(tmp_path: Path) -> None:
    batch = f"pocketcore-test-{uuid.uuid4().hex}"
    holder = (cloudpickle.dumps(functools.partial(mark, str(tmp_path))), batch, False, batch)
    _worker.stop(batch)
    try:
        assert _worker.run_item((holder, True, "ran", 0)) == _worker.SKIPPED
    finally:
        _worker.forget(batch)
    assert list(tmp_path.iterdir()) == []


class SlowToLoad:
    """A batch's work that takes a while to unpickle (as a first import can), then marks items."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __reduce__(self) -> tuple[Any, ...]:
        return (slowly_loaded, (self.folder,))

    def __call__(self, item: str) -> None:
        mark(self.folder, item)


def slowly_loaded(folder: str) -> SlowToLoad:
    time.sleep(1)
    return SlowToLoad(folder)


def test_an_item_of_a_batch_stopped_while_its_work_loads_does_not_start(tmp_path: Path) -> None:
    batch = f"pocketcore-test-{uuid.uuid4().hex}"
    holder = (cloudpickle.dumps(SlowToLoad(str(tmp_path))), batch, False, batch)
    stopping = threading.Timer(0.3, _worker.stop, [batch])
    stopping.start()
    try:
        assert _worker.run_item((holder, True, "ran", 0)) == _worker.SKIPPED
    finally:
        stopping.join()
        _worker.forget(batch)
    assert list(tmp_path.iterdir()) == []
