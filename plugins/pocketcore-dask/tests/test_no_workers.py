"""A scheduler without workers: dask waits for one forever, so the batch says it is waiting."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dask_nodes import Square
from distributed import LocalCluster

import pocketcore
from pocketcore_dask import DaskExecutor


@pytest.fixture
def idle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalCluster]:
    """A scheduler with no workers, which runs use; they warn after half a second."""
    with LocalCluster(n_workers=0, dashboard_address="127.0.0.1:0") as cluster:
        monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", cluster.scheduler_address)
        monkeypatch.setenv("POCKETCORE_EXECUTOR", "dask")
        monkeypatch.chdir(tmp_path)
        (tmp_path / "pocketcore.toml").write_text("[dask]\nno_workers_warning = 0.5\n")
        yield cluster


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("pocketcore-dask:")]


def test_a_batch_waiting_for_workers_says_so_once(
    idle: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    shared: dict[str, Any] = {"numbers": [1, 2, 3]}

    outcome: list[BaseException] = []

    def run() -> None:
        async def main() -> None:
            await asyncio.wait_for(Square().run_async(shared), timeout=3)

        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    # Cancelled, the batch does not wait for workers either: its tasks, all
    # queued at a scheduler without workers, are dropped.
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=3 + 20)  # a wide margin for a busy machine
    assert not runner.is_alive(), "the cancelled batch still waits for a worker"
    assert [type(exc) for exc in outcome] == [TimeoutError]
    assert not idle.scheduler.tasks
    assert warnings(capsys.readouterr().err) == [
        f"pocketcore-dask: no dask workers connected to {idle.scheduler_address} "
        "after 0.5 s; waiting"
    ]


def test_the_batch_goes_on_when_a_worker_comes(
    idle: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    shared: dict[str, Any] = {"numbers": [1, 2, 3]}

    async def main() -> None:
        batch = asyncio.ensure_future(Square().run_async(shared))
        deadline = time.monotonic() + 30
        while not warnings(capsys.readouterr().err):
            assert time.monotonic() < deadline, "no warning"
            assert not batch.done()
            await asyncio.sleep(0.1)
        idle.scale(1)  # a worker comes: the batch runs
        await asyncio.wait_for(batch, timeout=60)

    asyncio.run(main())
    assert [r["square"] for r in shared["results"]] == [1, 4, 9]


@pytest.mark.usefixtures("address")
def test_no_warning_while_workers_are_there(capsys: pytest.CaptureFixture[str]) -> None:
    shared: dict[str, Any] = {"numbers": list(range(20))}
    pocketcore.run(Square(), shared, executor=DaskExecutor(no_workers_warning=0.01))
    assert len(shared["results"]) == 20
    assert not warnings(capsys.readouterr().err)
