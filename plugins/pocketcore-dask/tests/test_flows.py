"""Flows run with executor="dask": items on the workers, prep and post at home."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dask_nodes import (
    FallsBack,
    Flaky,
    Square,
    SyncFallsBack,
    SyncFlaky,
    SyncSquare,
)

import pocketcore
import pocketcore_dask
from pocketcore_dask import DaskExecutor

pytestmark = pytest.mark.usefixtures("address")


@pytest.fixture
def local(address: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No address (not even ``address``'s), in a folder of its own: runs start a ``LocalCluster``.

    It is shut down afterwards, so that the next test without an address
    starts one with its own settings (and a failed test leaves no workers).
    """
    monkeypatch.delenv("POCKETCORE_DASK_ADDRESS")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    pocketcore_dask.shutdown()


def test_the_plugin_registers_the_executor() -> None:
    executor = pocketcore.get_registry().executors["dask"].executor
    assert isinstance(executor, DaskExecutor)
    assert (executor.name, executor.backend, executor.remote) == ("dask", "asyncio", True)


@pytest.mark.parametrize("node", [Square, SyncSquare])
def test_items_run_on_the_workers_and_come_back_in_order(
    node: type[pocketcore.BaseNode], cluster: Any
) -> None:
    shared: dict[str, Any] = {"numbers": list(range(12))}
    pocketcore.run(node(), shared, executor="dask")
    results = shared["results"]
    assert [r["square"] for r in results] == [n * n for n in range(12)]
    assert {r["pid"] for r in results}.isdisjoint({os.getpid()})
    assert {r["worker"] for r in results} <= set(cluster.scheduler_info["workers"])


@pytest.mark.parametrize("node", [Square, SyncSquare])
def test_a_limit_is_honoured(node: type[pocketcore.BaseNode]) -> None:
    shared: dict[str, Any] = {"numbers": list(range(6))}
    pocketcore.run(node(max_concurrency=1), shared, executor="dask")
    assert [r["square"] for r in shared["results"]] == [n * n for n in range(6)]


@pytest.mark.parametrize("node", [Flaky, SyncFlaky])
def test_retries_run_per_item_on_the_worker(node: type[pocketcore.BaseNode]) -> None:
    shared: dict[str, Any] = {"numbers": list(range(8))}
    pocketcore.run(node(), shared, executor="dask")
    # Each item counted its own attempts, concurrently with the others.
    assert [(r["item"], r["attempt"]) for r in shared["results"]] == [(n, 2) for n in range(8)]
    assert all(r["pid"] != os.getpid() for r in shared["results"])


@pytest.mark.parametrize("node", [FallsBack, SyncFallsBack])
def test_the_fallback_runs_on_the_worker(node: type[pocketcore.BaseNode]) -> None:
    shared: dict[str, Any] = {"numbers": [1, 2]}
    pocketcore.run(node(), shared, executor="dask")
    assert shared["results"] == [
        "fallback for 1 after no luck with 1 (attempt 1)",
        "fallback for 2 after no luck with 2 (attempt 1)",
    ]


def test_sync_and_async_batches_share_a_run_inside_an_async_flow() -> None:
    first, second = Square(), SyncSquare()
    first >> second
    shared: dict[str, Any] = {"numbers": [1, 2, 3]}
    pocketcore.run(pocketcore.AsyncFlow(start=first), shared, executor="dask")
    assert [r["square"] for r in shared["results"]] == [1, 4, 9]


def test_a_node_can_name_the_executor_itself() -> None:
    shared: dict[str, Any] = {"numbers": [4]}
    pocketcore.run(pocketcore.AsyncFlow(start=Square(executor="dask")), shared)
    assert shared["results"][0]["square"] == 16
    assert shared["results"][0]["pid"] != os.getpid()


def test_a_batch_awaited_in_your_own_loop_connects_for_that_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POCKETCORE_EXECUTOR", "dask")
    shared: dict[str, Any] = {"numbers": [5, 6]}

    async def main() -> None:
        await Square().run_async(shared)

    asyncio.run(main())
    assert [r["square"] for r in shared["results"]] == [25, 36]


def test_without_an_address_runs_share_a_local_cluster_until_shutdown(local: Path) -> None:
    (local / "pocketcore.toml").write_text("[dask]\nn_workers = 1\nthreads_per_worker = 3\n")
    before = set(multiprocessing.active_children())
    workers = set()
    for _ in range(2):
        shared: dict[str, Any] = {"numbers": [1, 2, 3, 4]}
        pocketcore.run(Square(), shared, executor="dask")
        results = shared["results"]
        assert [r["square"] for r in results] == [1, 4, 9, 16]
        assert results[0]["nthreads"] == 3
        workers |= {r["worker"] for r in results}
    # One worker, the same for both runs: the second run reused the cluster.
    assert len(workers) == 1
    assert set(multiprocessing.active_children()) > before
    pocketcore_dask.shutdown()
    # Its worker process is gone with it.
    assert set(multiprocessing.active_children()) <= before


def test_a_run_without_a_parallel_batch_starts_no_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An unreachable address would fail the run if it connected.
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", "tcp://127.0.0.1:1")

    class Hello(pocketcore.AsyncNode):
        async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
            shared["hello"] = "world"

    shared: dict[str, Any] = {}
    pocketcore.run(Hello(), shared, executor="dask")
    assert shared == {"hello": "world"}


def test_an_empty_batch_starts_no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", "tcp://127.0.0.1:1")  # fails if used
    for node in (Square(), SyncSquare()):
        shared: dict[str, Any] = {"numbers": []}
        pocketcore.run(node, shared, executor="dask")
        assert shared["results"] == []


def test_a_client_of_your_own_is_used_and_left_open(client: Any, cluster: Any) -> None:
    shared: dict[str, Any] = {"numbers": [1, 2, 3]}
    # A synchronous client runs its own loop: the run connects to its scheduler.
    pocketcore.run(SyncSquare(), shared, executor=DaskExecutor(client=client))
    assert [r["square"] for r in shared["results"]] == [1, 4, 9]
    assert {r["worker"] for r in shared["results"]} <= set(cluster.scheduler_info["workers"])
    assert client.status == "running"


def test_an_asynchronous_client_on_the_runs_loop_is_used_as_it_is(cluster: Any) -> None:
    from distributed import Client

    shared: dict[str, Any] = {"numbers": [4, 5]}

    async def main() -> str:
        async with Client(cluster.scheduler_address, asynchronous=True) as mine:
            dask = DaskExecutor(client=mine)
            await Square(executor=dask).run_async(shared)
            return str(mine.status)

    assert asyncio.run(main()) == "running"  # not closed by the run
    assert [r["square"] for r in shared["results"]] == [16, 25]


@pytest.mark.usefixtures("local")
def test_processes_false_runs_the_items_on_threads_of_this_process() -> None:
    shared: dict[str, Any] = {"numbers": [1, 2, 3]}
    pocketcore.run(SyncSquare(), shared, executor=DaskExecutor(processes=False, n_workers=1))
    assert [r["square"] for r in shared["results"]] == [1, 4, 9]
    assert {r["pid"] for r in shared["results"]} == {os.getpid()}
