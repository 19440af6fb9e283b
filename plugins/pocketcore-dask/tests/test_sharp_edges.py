"""Three edges of the dask executor: a refused address, a cluster replaced under a batch, a
result that cannot travel back."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore_dask import DaskExecutor, _cluster


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No dask settings in the environment, and a working directory with no configuration file."""
    for key in ("ADDRESS", "CONNECT_TIMEOUT", "N_WORKERS", "PROCESSES"):
        monkeypatch.delenv(f"POCKETCORE_DASK_{key}", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Doubles(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["items"]

    async def exec_async(self, item: int) -> int:
        import asyncio

        await asyncio.sleep(self.params.get("seconds", 0))
        return item * 2

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


def test_a_refused_address_fails_at_once_without_any_timeout_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", f"tcp://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(pocketcore.ConfigError) as info:
        pocketcore.run(Doubles(), {"items": [1]}, executor="dask")
    elapsed = time.monotonic() - start
    # dask's own retries took its 30 s connect timeout; a refusal is final.
    # (Under the 5 s default with a wide margin, for a busy machine.)
    assert elapsed < 4, elapsed
    message = str(info.value)
    assert message.startswith(
        f"cannot reach the dask scheduler at 'tcp://127.0.0.1:{port}' "
        "(from environment variable POCKETCORE_DASK_ADDRESS): "
    )
    assert "refused" in message.lower()
    assert "\n" not in message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections are accepted (into the backlog) and never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield server.getsockname()[1]


class _Silent:
    """What ``_cluster.get`` hands back in place of a LocalCluster whose scheduler froze."""

    def __init__(self, port: int) -> None:
        self.scheduler_address = f"tcp://127.0.0.1:{port}"


def test_the_connect_timeout_setting_bounds_the_process_own_cluster(
    monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    fake = _Silent(silent_port)
    monkeypatch.setattr(_cluster, "get", lambda settings: fake)
    monkeypatch.setattr(_cluster, "release", lambda cluster: None)
    monkeypatch.setenv("POCKETCORE_DASK_CONNECT_TIMEOUT", "0.5")
    start = time.monotonic()
    with pytest.raises(pocketcore.ConfigError) as info:
        pocketcore.run(Doubles(), {"items": [1]}, executor=DaskExecutor(processes=False))
    elapsed = time.monotonic() - start
    # 0.5 s and a second of grace; the default (5 s) would take longer than this.
    assert elapsed < 4.5, elapsed
    assert "no answer within 0.5 s (the connect_timeout setting)" in str(info.value)


def test_a_batch_finishes_on_its_cluster_while_another_shape_is_asked_for() -> None:
    first = DaskExecutor(n_workers=2, processes=False)
    other = DaskExecutor(n_workers=1, processes=False)
    outcome: list[Any] = []
    node = Doubles()
    node.set_params({"seconds": 3})
    shared: dict[str, Any] = {"items": [1, 2, 3, 4]}

    def long_run() -> None:
        try:
            pocketcore.run(node, shared, executor=first)
            outcome.append(shared["results"])
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    try:
        runner = threading.Thread(target=long_run)
        runner.start()
        deadline = time.monotonic() + 60
        while _cluster._cluster is None or not _cluster._leases:  # the first run is connected
            assert time.monotonic() < deadline, "the first run never connected"
            time.sleep(0.05)
        running = _cluster._cluster
        quick: dict[str, Any] = {"items": [5, 6]}
        pocketcore.run(Doubles(), quick, executor=other)  # replaces the process's cluster
        assert quick["results"] == [10, 12]
        assert _cluster._cluster is not running
        assert running.status.name == "running"  # still serving the first run
        runner.join(60)
        assert not runner.is_alive()
        assert outcome == [[2, 4, 6, 8]]
        assert running.status.name == "closed"  # closed once that run was done with it
    finally:
        _cluster.shutdown()


SCRIPT = """
import threading

import pocketcore


class Locks(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return [1, 2, 3]

    async def exec_async(self, item):
        return threading.Lock() if item == 2 else item


class SyncLocks(pocketcore.ParallelBatchNode):
    def prep(self, shared):
        return [1, 2, 3]

    def exec(self, item):
        return threading.Lock() if item == 2 else item


if __name__ == "__main__":
    import sys

    node = {"async": Locks, "sync": SyncLocks}[sys.argv[1]]()
    try:
        pocketcore.run(node, {}, executor="dask")
    except pocketcore.PocketcoreError as exc:
        print(f"{type(exc).__name__}: {exc}")
    import pocketcore_dask

    pocketcore_dask.shutdown()
"""


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_result_that_cannot_travel_back_is_one_line_naming_node_and_item(
    clean: Path, kind: str
) -> None:
    (clean / "locks.py").write_text(SCRIPT)
    (clean / "pocketcore.toml").write_text("[dask]\nn_workers = 1\n")
    done = subprocess.run(
        [sys.executable, "locks.py", kind], cwd=clean, capture_output=True, text=True, timeout=180
    )
    name = {"async": "Locks", "sync": "SyncLocks"}[kind]
    assert done.stdout.splitlines() == [
        f"PocketcoreError: cannot send back the result of item 1 of node {name} from executor "
        "'dask' (a lock, which cannot be pickled: TypeError: cannot pickle '_thread.lock' object)"
    ]
    # Not dask's logs of a result it failed to send (about 80 lines of them).
    assert "ERROR" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
