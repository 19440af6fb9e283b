"""The dask executor reports each result as it comes back; with a cache, hits stay home.

``on_result`` is what the kernel's result cache hands a reporting executor:
called in this process, with the item's position and result, for each item
that succeeded. The kernel then writes each result as it arrives, so a
batch that fails (or a process killed mid-run, see test_cache_kill.py)
keeps every result that came back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from dask_nodes import (
    Counted,
    SyncCounted,
    async_square,
    fails_first,
    marked_square,
    marks,
    stalls_unless_first,
    started_and_ended,
    waits_for_report,
)

import pocketcore
from pocketcore import StoreInfo
from pocketcore_dask import DaskExecutor

pytestmark = pytest.mark.usefixtures("address")


class DictStore(pocketcore.BaseStore):
    """A store in a dict, counting its writes."""

    location = "dict-store"

    def __init__(self) -> None:
        self.data: dict[bytes, tuple[bytes, str]] = {}
        self.puts = 0
        self.lock = threading.Lock()

    def get_many(self, keys: Sequence[bytes]) -> Mapping[bytes, bytes]:
        with self.lock:
            return {k: self.data[k][0] for k in keys if k in self.data}

    def put(self, key: bytes, value: bytes, node: str) -> None:
        with self.lock:
            self.puts += 1
            self.data[key] = (value, node)

    def info(self) -> StoreInfo:
        counts = Counter(node for _, node in self.data.values())
        return StoreInfo(self.location, dict(counts), sum(len(v) for v, _ in self.data.values()))

    def clear(self, node: str | None = None) -> int:
        gone = [k for k, (_, n) in self.data.items() if node in (None, n)]
        for k in gone:
            del self.data[k]
        return len(gone)

    def close(self) -> None:
        pass


def test_the_executor_declares_that_it_reports_results() -> None:
    executor = DaskExecutor()
    assert isinstance(executor, pocketcore.ReportingExecutor)
    assert executor.reports_results is True


# --- on_result, handed to map and map_blocking directly -----------------------------


@pytest.mark.parametrize("limit", [None, 1, 3])
@pytest.mark.parametrize("blocking", [False, True], ids=["map", "map_blocking"])
def test_each_result_is_reported_once_at_its_position_before_map_returns(
    tmp_path: Path, limit: int | None, blocking: bool
) -> None:
    reported: list[tuple[int, int]] = []
    items = [(str(tmp_path), i) for i in range(12)]
    executor = DaskExecutor()

    def on_result(position: int, result: int) -> None:
        reported.append((position, result))

    async def main() -> tuple[list[int], list[tuple[int, int]]]:
        if blocking:
            results = await executor.map_blocking(
                marked_square, iter(items), limit=limit, on_result=on_result
            )
        else:
            results = await executor.map(
                async_square, iter(items), limit=limit, on_result=on_result
            )
        return results, list(reported)

    results, at_return = executor.run(main)
    assert results == [i * i for i in range(12)]
    assert sorted(at_return) == [(i, i * i) for i in range(12)]  # each once, in its place
    assert len(reported) == 12  # none after map returned


def test_results_are_reported_as_they_come_back_not_at_the_end(tmp_path: Path) -> None:
    executor = DaskExecutor()

    def on_result(position: int, result: tuple[int, bool]) -> None:
        (tmp_path / f"reported-{position}").touch()

    items = [(str(tmp_path), i) for i in range(4)]
    results = executor.run(
        lambda: executor.map(waits_for_report, items, limit=None, on_result=on_result)
    )
    # Items 1-3 waited for item 0's report: it was made while they ran.
    assert results == [(0, True), (1, True), (2, True), (3, True)]


def test_a_callback_that_raises_stops_the_batch_and_is_raised(tmp_path: Path) -> None:
    boom = OSError("database or disk is full")
    calls: list[int] = []

    def on_result(position: int, result: int) -> None:
        calls.append(position)
        raise boom

    executor = DaskExecutor()
    items = ((str(tmp_path), i) for i in range(10))
    began = time.monotonic()
    with pytest.raises(OSError, match="disk is full") as info:
        executor.run(lambda: executor.map(stalls_unless_first, items, limit=3, on_result=on_result))
    assert info.value is boom
    assert time.monotonic() - began < 20  # the others wait 30 s: they were stopped
    assert calls == [0]
    started = marks(tmp_path, "started")
    # Items 3.. were never pulled; those of 1 and 2 that had started were
    # cancelled, and had finished before map raised.
    assert 0 in started
    assert started <= {0, 1, 2}
    assert marks(tmp_path, "cancelled") == started - {0}


def test_results_that_come_back_after_a_failure_are_still_reported(tmp_path: Path) -> None:
    reported: list[tuple[int, int]] = []
    executor = DaskExecutor()
    items = [(str(tmp_path), i, 3) for i in range(3)]

    def on_result(position: int, result: int) -> None:
        reported.append((position, result))

    with pytest.raises(ValueError, match="item 0 failed"):
        executor.run(
            lambda: executor.map_blocking(fails_first, items, limit=None, on_result=on_result)
        )
    # Sync items 1 and 2 ran to their end while the batch stopped: their
    # results were dropped, but reported (a cache keeps them).
    assert marks(tmp_path, "ended") == {1, 2}
    assert sorted(reported) == [(1, 10), (2, 20)]


# --- the kernel's result cache on dask ---------------------------------------------


def _run(node: type[pocketcore.BaseNode], calls: Path, store: DictStore, **kw: Any) -> list[int]:
    numbers = kw.pop("numbers")
    step = node(**kw)
    # The params are part of each key: the same in every run of a test.
    step.set_params({"calls": str(calls), "size": 8})
    shared: dict[str, Any] = {"numbers": numbers}
    pocketcore.run(step, shared, executor="dask", cache=store)
    return list(shared["results"])


@pytest.mark.parametrize("limit", [None, 3])
@pytest.mark.parametrize("node", [Counted, SyncCounted])
def test_hits_are_never_shipped_and_a_rerun_computes_nothing(
    tmp_path: Path, node: type[pocketcore.BaseNode], limit: int | None
) -> None:
    store, calls = DictStore(), tmp_path / "calls"
    assert _run(node, calls, store, numbers=list(range(10)), max_concurrency=limit) == [
        n * n for n in range(10)
    ]
    assert sorted(started_and_ended(calls)[0]) == list(range(10))
    assert store.puts == 11  # ten results, and the batch's whole-batch entry
    # Items 0-9 hit at home; only 10-14 go to the workers.
    assert _run(node, calls, store, numbers=list(range(15)), max_concurrency=limit) == [
        n * n for n in range(15)
    ]
    assert sorted(started_and_ended(calls)[0]) == list(range(15))
    assert _run(node, calls, store, numbers=list(range(15)), max_concurrency=limit) == [
        n * n for n in range(15)
    ]
    assert len(started_and_ended(calls)[0]) == 15  # nothing computed
    assert store.puts == 17  # five more results, and the longer batch's whole-batch entry


@pytest.mark.parametrize("node", [Counted, SyncCounted])
def test_a_failed_batch_keeps_every_result_that_came_back(
    tmp_path: Path, node: type[pocketcore.BaseNode]
) -> None:
    store, calls = DictStore(), tmp_path / "calls"
    numbers = list(range(8))  # the size in the params
    (tmp_path / "fail-3").touch()
    with pytest.raises(ValueError, match="item 3 failed"):
        _run(node, calls, store, numbers=numbers)
    _, ended = started_and_ended(calls)
    assert 3 not in ended
    (tmp_path / "fail-3").unlink()
    assert _run(node, calls, store, numbers=numbers) == [n * n for n in numbers]
    started, _ = started_and_ended(calls)
    # Every item that returned in the failed run was kept: the second run
    # computed item 3 and only those the first never finished.
    assert sorted(started[len(started) - (8 - len(ended)) :]) == sorted(set(numbers) - set(ended))
    assert Counter(started) == {n: 1 + (n not in ended) for n in numbers}
    if node is SyncCounted:
        # Sync items cannot be cancelled: every other item ran to its end.
        assert sorted(ended) == [n for n in numbers if n != 3]
