"""Faults on a real cluster of separate processes: a scheduler and workers over TCP on loopback.

The cluster is started the way a cluster of several machines is, with dask's
own commands (``dask scheduler``, ``dask worker``), here as local processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore_dask import DaskExecutor, SchedulerLost

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


def dask_command(*args: str) -> list[str]:
    found = shutil.which("dask", path=str(Path(sys.executable).parent))
    return [found, *args] if found else [sys.executable, "-m", "dask", *args]


class Cluster:
    """``dask scheduler`` and ``dask worker --nworkers 2``, as processes of their own."""

    def __init__(self, folder: Path, allowed_failures: int = 3) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / "scheduler.json"
        self.log = (folder / "cluster.log").open("w")
        # The node classes are this module's: the scheduler and the workers
        # import it, as they would your own modules (installed, or on their path).
        path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        common: dict[str, Any] = {
            "stdout": self.log,
            "stderr": subprocess.STDOUT,
            "env": {
                **os.environ,
                "PYTHONPATH": path,
                # How many worker deaths a task may cause before dask gives up on it.
                "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures),
            },
        }
        self.scheduler = subprocess.Popen(
            dask_command(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(file),
            ),
            **common,
        )
        self.workers: subprocess.Popen[bytes] | None = None
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            assert self.scheduler.poll() is None, "the scheduler died"
            assert time.monotonic() < deadline, "no scheduler"
            time.sleep(0.1)
        self.address = json.loads(file.read_text())["address"]
        self.workers = subprocess.Popen(
            dask_command(
                "worker",
                "--scheduler-file",
                str(file),
                "--nworkers",
                "2",
                "--nthreads",
                "2",
                "--no-dashboard",
            ),
            **common,
            start_new_session=True,  # the nanny and its worker processes: one group to end
        )

    def close(self) -> None:
        if self.workers is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.workers.pid, signal.SIGKILL)
            self.workers.wait()
        self.scheduler.kill()
        self.scheduler.wait()
        self.log.close()


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.close()


class Where(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return range(shared["n"])

    def exec(self, i: int) -> Any:
        from distributed import get_worker

        return {"item": i, "pid": os.getpid(), "worker": get_worker().address}

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


class Marked(pocketcore.ParallelBatchNode):
    """Each item leaves ``started-<item>-<pid>`` in a folder, then works for a while."""

    def prep(self, shared: dict[str, Any]) -> Any:
        return [(shared["marks"], i) for i in range(shared["n"])]

    def exec(self, item: Any) -> Any:
        folder, i = item
        Path(folder, f"started-{i}-{os.getpid()}").touch()
        time.sleep(1.5)
        return i

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


def run_in_thread(call: Any, limit: float) -> Any:
    """``call()`` in a thread; its result or exception, failing the test if it hangs."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the test
            outcome.append((False, exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still running after {limit} s: it hangs"
    return outcome[0]


def marked_items(tmp_path: Path, n: int) -> tuple[Path, dict[str, Any]]:
    """A folder for :class:`Marked`'s marks, and the shared store of a batch of ``n`` items."""
    marks = tmp_path / "marks"
    marks.mkdir()
    return marks, {"n": n, "marks": str(marks)}


def kill_first_worker_to_start(marks: Path, killed: list[int]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = sorted(marks.iterdir())
        if started:
            pid = int(started[0].name.rsplit("-", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


@contextlib.contextmanager
def first_worker_killed(marks: Path) -> Iterator[list[int]]:
    """In a thread, SIGKILL the first worker process to mark an item; its pid, after the block."""
    killed: list[int] = []
    killer = threading.Thread(target=kill_first_worker_to_start, args=(marks, killed))
    killer.start()
    try:
        yield killed
    finally:
        killer.join()


def test_a_scheduler_and_workers_in_processes_of_their_own(
    processes: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", processes.address)
    shared: dict[str, Any] = {"n": 8}
    pocketcore.run(Where(), shared, executor="dask")
    results = shared["results"]
    assert [r["item"] for r in results] == list(range(8))
    assert os.getpid() not in {r["pid"] for r in results}
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in results)


def test_a_worker_killed_mid_batch_the_batch_completes(processes: Cluster, tmp_path: Path) -> None:
    marks, shared = marked_items(tmp_path, 6)
    with first_worker_killed(marks) as killed:
        ok, value = run_in_thread(
            lambda: pocketcore.run(Marked(), shared, executor=DaskExecutor(processes.address)), 120
        )
    assert killed, "no item started"
    # dask ran the killed worker's items again on the other worker (or its
    # replacement): the batch is complete, in order.
    assert ok, value
    assert shared["results"] == list(range(6))
    rerun = {p.name.split("-")[1] for p in marks.iterdir() if not p.name.endswith(str(killed[0]))}
    assert rerun == {str(i) for i in range(6)}


def test_an_item_whose_workers_keep_dying_is_named_in_the_error(tmp_path: Path) -> None:
    # A scheduler that gives up on a task at its first worker death, as dask
    # does by default at the fourth.
    cluster = Cluster(tmp_path / "strict", allowed_failures=0)
    try:
        marks, shared = marked_items(tmp_path, 1)
        dask = DaskExecutor(cluster.address)
        with first_worker_killed(marks) as killed:
            ok, error = run_in_thread(lambda: pocketcore.run(Marked(), shared, executor=dask), 120)
    finally:
        cluster.close()
    assert killed
    assert not ok
    assert type(error).__name__ == "KilledWorker", repr(error)
    assert "item 0 of Marked: the dask workers running it died each time" in error.__notes__


def test_the_scheduler_gone_mid_run_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "doomed")
    try:
        marks, shared = marked_items(tmp_path, 4)

        def kill_the_scheduler_once_items_run() -> None:
            deadline = time.monotonic() + 60
            while not any(marks.iterdir()) and time.monotonic() < deadline:
                time.sleep(0.05)
            cluster.scheduler.kill()

        killer = threading.Thread(target=kill_the_scheduler_once_items_run)
        killer.start()
        dask = DaskExecutor(cluster.address, connect_timeout=2)
        ok, error = run_in_thread(lambda: pocketcore.run(Marked(), shared, executor=dask), 90)
        killer.join()
    finally:
        cluster.close()
    assert not ok
    assert isinstance(error, SchedulerLost), repr(error)
    assert isinstance(error, ConnectionError)
    assert str(error).startswith("lost the connection to the dask scheduler while item ")
    assert "of Marked was on the cluster" in str(error)
    # One error for the one cause: no note per item in flight.
    assert not getattr(error, "__notes__", [])
