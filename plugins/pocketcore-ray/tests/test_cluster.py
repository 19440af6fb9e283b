"""Which Ray a run uses: the program's own, the process's local instance, one at an address."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import HERE, executor, script
from ray_nodes import Spans

import pocketcore
from pocketcore_ray import RayExecutor

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


OWN = """
import os

import ray

import pocketcore
import pocketcore_ray
from ray_nodes import Numbers

if __name__ == "__main__":
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    shared = {"items": [1, 2, 3]}
    pocketcore.run(Numbers(), shared, executor=pocketcore_ray.RayExecutor(num_cpus=4))
    print(shared["results"])
    print(int(ray.cluster_resources()["CPU"]))  # the program's own, not num_cpus=4
    pocketcore_ray.shutdown()
    print(ray.is_initialized())  # pocketcore leaves it alone
    ray.shutdown()
"""


def test_a_program_that_initialised_ray_keeps_its_own(tmp_path: Path) -> None:
    assert script(tmp_path, OWN) == ["[2, 4, 6]", "1", "True"]


AGAIN = """
import ray

import pocketcore
import pocketcore_ray
from ray_nodes import Numbers

if __name__ == "__main__":
    for _ in range(2):
        shared = {"items": [1, 2]}
        pocketcore.run(Numbers(), shared, executor="ray")
        print(shared["results"], int(ray.cluster_resources()["CPU"]))
        pocketcore_ray.shutdown()
        print(ray.is_initialized())
"""


def test_shutdown_ends_the_local_instance_and_the_next_run_starts_one(tmp_path: Path) -> None:
    lines = script(tmp_path, AGAIN, POCKETCORE_RAY_NUM_CPUS="1")
    assert lines == ["[2, 4] 1", "False", "[2, 4] 1", "False"]


def test_another_shape_is_refused_while_a_batch_runs_and_the_batch_finishes(
    tmp_path: Path,
) -> None:
    node = Spans()
    node.set_params({"folder": str(tmp_path), "seconds": 3.0})
    shared: dict[str, Any] = {"items": [0, 1]}
    outcome: list[Any] = []

    def long_run() -> None:
        try:
            pocketcore.run(node, shared, executor=executor())
            outcome.append(shared["results"])
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    runner = threading.Thread(target=long_run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        from pocketcore_ray import _cluster

        while _cluster._current is None or not _cluster._current.busy:
            assert time.monotonic() < deadline, "the first batch never started"
            time.sleep(0.05)
        with pytest.raises(pocketcore.ConfigError) as info:
            pocketcore.run(Spans(), {"items": [9]}, executor=RayExecutor(num_cpus=1))
    finally:
        runner.join(60)
    assert str(info.value).startswith(
        "cannot switch this process's Ray instance to a local instance with num_cpus=1 "
        "(from argument num_cpus= of RayExecutor()): a local instance with num_cpus=32 "
    )
    assert outcome == [[0, 1]]  # the running batch ended on its instance


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


ATTACH = """
import os

import pocketcore
from ray_nodes import Numbers

if __name__ == "__main__":
    shared = {"items": [1, 2, 3]}
    pocketcore.run(Numbers(), shared, executor="ray")
    print(shared["results"])
"""


def test_a_run_attaches_to_a_cluster_at_an_address(tmp_path: Path) -> None:
    found = shutil.which("ray", path=str(Path(sys.executable).parent))
    if found is None:  # pragma: no cover - installed with ray
        pytest.skip("the ray command is not installed")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ["PYTHONPATH"]])}
    # Short: Ray's unix sockets live below it, and their paths may not be long.
    temp = tempfile.mkdtemp(prefix="pcray-")
    head = subprocess.Popen(
        [
            found,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=1",
            f"--temp-dir={temp}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # the head and what it starts: one group to end
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, "the head node did not start"
            assert time.monotonic() < deadline, "the head node did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        lines = script(tmp_path, ATTACH, POCKETCORE_RAY_ADDRESS=f"127.0.0.1:{port}")
        assert lines == ["[2, 4, 6]"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)
