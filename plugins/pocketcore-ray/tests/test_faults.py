"""Faults: a worker killed mid-item, a result that cannot travel back, an item that exits.

Each ends in one error naming the node and the item, promptly, and the
program's output holds nothing of Ray's own logs (checked in a process of
its own, whose whole output the test reads).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import executor, script
from ray_nodes import Faults, SyncFaults, marks

import pocketcore
from pocketcore_ray import WorkerDied

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")

KINDS = {"async": Faults, "sync": SyncFaults}


def run(kind: str, items: list[Any], folder: Path) -> BaseException:
    node = KINDS[kind]()
    node.set_params({"folder": str(folder)})
    start = time.monotonic()
    try:
        pocketcore.run(node, {"items": items}, executor=executor())
    except BaseException as exc:  # SystemExit too: handed to the test
        # Promptly: no retry by Ray, no wait for a worker to come back.
        assert time.monotonic() - start < 30
        return exc
    raise AssertionError("the run did not fail")


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_killing_itself_is_one_error_naming_node_and_item(
    kind: str, tmp_path: Path
) -> None:
    error = run(kind, [1, "kill", 3], tmp_path)
    assert type(error) is WorkerDied
    name = KINDS[kind].__name__
    assert str(error).startswith(
        f"the Ray worker process running item 1 of node {name} died before the item ended"
    )
    assert "\n" not in str(error)


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_killed_from_outside_is_one_error_naming_node_and_item(
    kind: str, tmp_path: Path
) -> None:
    killed: list[int] = []

    def kill_the_waiting_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = marks(tmp_path, "waiting-")
            if waiting:
                pid = int(waiting[0].rsplit("-", 1)[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_waiting_worker)
    killer.start()
    try:
        error = run(kind, [0, "wait"], tmp_path)
    finally:
        killer.join()
    assert killed, "the item never started"
    assert type(error) is WorkerDied
    assert str(error).startswith(
        f"the Ray worker process running item 1 of node {KINDS[kind].__name__} died"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_result_that_cannot_travel_back_is_one_line_naming_node_and_item(
    kind: str, tmp_path: Path
) -> None:
    error = run(kind, [1, 2, "lock"], tmp_path)
    assert type(error) is pocketcore.PocketcoreError
    assert str(error) == (
        f"cannot send back the result of item 2 of node {KINDS[kind].__name__} from executor "
        "'ray' (a lock, which cannot be pickled): TypeError: cannot pickle '_thread.lock' object"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_an_item_calling_sys_exit_is_its_failure_and_the_worker_lives(
    kind: str, tmp_path: Path
) -> None:
    error = run(kind, ["exit"], tmp_path)
    assert type(error) is SystemExit
    assert error.code == 3
    assert error.__notes__ == [f"raised by item 0 of node {KINDS[kind].__name__} in a Ray worker"]
    # Its remote traceback says where: in the item's own code.
    assert "in misbehave" in str(error.__cause__)


SCRIPT = """
import sys

import pocketcore
from ray_nodes import Faults, SyncFaults

if __name__ == "__main__":
    for name, item in [("Faults", "kill"), ("SyncFaults", "lock"), ("Faults", "exit")]:
        node = {"Faults": Faults, "SyncFaults": SyncFaults}[name]()
        node.set_params({"folder": "."})
        try:
            pocketcore.run(node, {"items": [0, item]}, executor="ray")
        except BaseException as exc:
            print(f"{type(exc).__name__}: {exc}", flush=True)
"""


def test_ray_says_nothing_of_its_own(tmp_path: Path) -> None:
    lines = script(tmp_path, SCRIPT, POCKETCORE_RAY_NUM_CPUS="1")
    assert len(lines) == 3, lines
    assert lines[0].startswith("WorkerDied: the Ray worker process running item 1 of node Faults")
    assert lines[1].startswith("PocketcoreError: cannot send back the result of item 1 of node ")
    assert lines[2] == "SystemExit: 3"
