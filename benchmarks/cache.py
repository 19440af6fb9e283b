"""The result cache's groups: a re-run that hits, the cost of a miss, and memory with a cache.

Every cached contender uses the default store, an SQLite file (in a
temporary directory that is removed at exit), through the node's
``cache=`` keyword, as a user would write it.

* **hits**: a batch of items that each sleep 1 ms, at a limit of 100,
  computed without a cache, against the same batch re-run when every item
  is in the cache (the file filled by an untimed run first). Target: at
  most 0.05. An unchanged batch is read back from its whole-batch entry, in
  one lookup; a second row, for information, re-runs the batch with one new
  item each time, so that every other item is read from its own entry.
* **misses**: the per-item cost of the miss path (keying, the lookup, the
  pickled write and its commit; results that finish together share one
  transaction), on items that do no work (``sleep(0)``), so nothing hides
  it: a fresh file per sample against the same batch uncached, at a limit
  of 100. Reported in µs per item; target: at most 25 µs.
* **memory** (in the memory groups of ``scenarios``): the peak of a batch at
  a limit of 100 with a cache that misses every item (so every item is
  keyed, looked up and written), which must still follow the limit.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import shutil
import statistics
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

import pocketcore

from . import workloads as w
from .harness import Contender, Group, Row

HIT_TARGET = 0.05
MISS_TARGET_US = 25.0
#: Seconds each item of the hit group's batch sleeps when it is computed.
HIT_ITEM_SECONDS = 0.001
LIMIT = 100

_DIR = Path(tempfile.mkdtemp(prefix="pocketcore-bench-cache-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
_files = itertools.count()


def fresh_file() -> str:
    """A path for a new cache file in the run's temporary directory."""
    return str(_DIR / f"cache-{next(_files)}.db")


class PcAsyncioMs(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: w.Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await asyncio.sleep(HIT_ITEM_SECONDS)
        return item

    async def post_async(self, shared: w.Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


class PcTrioMs(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: w.Shared) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await trio.sleep(HIT_ITEM_SECONDS)
        return item

    async def post_async(self, shared: w.Shared, prep_res: Any, exec_res: Any) -> Any:
        shared["results"] = exec_res


class PcAsyncioValue(w.PcAsyncioItem):
    async def exec_async(self, item: Any) -> Any:
        await asyncio.sleep(0)
        return item


class PcTrioValue(w.PcTrioItem):
    async def exec_async(self, item: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return item


_batch = w.batch


def _fresh_each_time(make: Callable[[str], Any], n: int) -> w.Body:
    """A batch of ``make(path)`` on a new cache file each time (every item misses)."""

    async def body() -> Any:
        await _batch(make(fresh_file()), n)()

    return body


def _timed(backend: str, body: w.Body) -> Callable[[], float]:
    return partial(w.on_backend, backend, w.timed, body, 1)


def _one_new_item(node: Any, n: int) -> w.Body:
    """The batch ``range(n)`` and one item never seen before, on each call."""
    new = itertools.count(n)

    async def body() -> Any:
        shared = {"items": [*range(n), next(new)]}
        await node.run_async(shared)
        if len(shared["results"]) != n + 1:
            raise AssertionError(f"{len(shared['results'])} results of {n + 1}")

    return body


def _hit_group(n: int, backend: str, repeats: int) -> Group:
    cls = PcAsyncioMs if backend == "asyncio" else PcTrioMs
    # The harness's untimed warm-up samples fill the files: every timed one hits.
    hit = _batch(cls(executor=backend, max_concurrency=LIMIT, cache=fresh_file()), n)
    changed = _one_new_item(cls(executor=backend, max_concurrency=LIMIT, cache=fresh_file()), n)
    return Group(
        key=f"cache-hit-{backend}",
        section=f"result cache (SQLite file): {n} items, limit {LIMIT}",
        scenario=f"executor {backend}: re-run, every item a hit",
        kind="time",
        unit="batch",
        contenders=[
            Contender("hit", "pocketcore, every item in the cache", _timed(backend, hit), 1),
            Contender(
                "changed",
                "pocketcore, every item in the cache but one new one",
                _timed(backend, changed),
                1,
            ),
            Contender(
                "compute",
                f"pocketcore, no cache: each item sleeps {HIT_ITEM_SECONDS * 1000:g} ms",
                _timed(backend, _batch(cls(executor=backend, max_concurrency=LIMIT), n)),
                1,
            ),
        ],
        rows=[
            Row("hit", "compute", HIT_TARGET),
            Row("changed", "compute", label=f"executor {backend}: re-run with one new item"),
        ],
        repeats=repeats,
    )


def _per_item_cost(n: int) -> Callable[[Group], list[str]]:
    def notes(g: Group) -> list[str]:
        costs = sorted(
            (miss - none) / n * 1e6
            for miss, none in zip(
                g.contender("miss").samples, g.contender("none").samples, strict=True
            )
        )
        median = statistics.median(costs)
        verdict = "met" if median <= MISS_TARGET_US else "MISSED"
        return [
            f"cache miss path, {g.scenario}: {median:.1f} µs per item (range {costs[0]:.1f} - "
            f"{costs[-1]:.1f}); target <= {MISS_TARGET_US:g} µs: {verdict}."
        ]

    return notes


def _miss_group(n: int, backend: str, repeats: int) -> Group:
    cls = PcAsyncioValue if backend == "asyncio" else PcTrioValue

    def make(path: str | None) -> Any:
        return cls(executor=backend, max_concurrency=LIMIT, cache=path)

    return Group(
        key=f"cache-miss-{backend}",
        section=f"result cache (SQLite file): {n} items, limit {LIMIT}",
        scenario=f"executor {backend}: every item a miss, items do no work",
        kind="time",
        unit="item",
        contenders=[
            Contender(
                "miss",
                "pocketcore, a new cache file (lookup + write per item)",
                _timed(backend, _fresh_each_time(make, n)),
                n,
            ),
            Contender("none", "pocketcore, no cache", _timed(backend, _batch(make(None), n)), n),
        ],
        rows=[Row("miss", "none")],
        repeats=repeats,
        notes=_per_item_cost(n),
    )


def cache_groups(items: int, repeats: int) -> list[Group]:
    """The result cache's time groups, on asyncio and trio (memory is in the memory groups)."""
    groups = []
    for backend in ("asyncio", "trio"):
        groups += [_hit_group(items, backend, repeats), _miss_group(items, backend, repeats)]
    return groups


def fresh_cache_batch(make: Callable[[str], Any], n: int) -> w.Body:
    """A batch of ``make(path)`` on a new cache file each time: every item misses and is written."""
    return _fresh_each_time(make, n)
