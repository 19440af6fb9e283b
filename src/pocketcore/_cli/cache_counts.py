"""How many results of each batch node came from the cache, and how many were computed.

``pocketcore run`` with a cache ends with a line per batch node class on
stderr (``pocketcore: Summarize: 99 from cache, 1 computed``), kept by a
lifecycle observer registered only for runs that may use a cache. The
count is of batch items, as the progress bars and the timeline count them,
and of the steps of plain nodes that opt in (``cache = True``); a node
that opts out (``cache = False``) is not counted.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from pocketcore._core.results import Failed
from pocketcore._nodes.flows import Flow, reachable
from pocketcore._nodes.nodes import BaseNode
from pocketcore._plugins.registry import Registry
from pocketcore._runtime.config import Setting
from pocketcore._runtime.context import own_cache
from pocketcore.hookspecs import hookimpl

from .controls import run_level
from .observing import reported
from .output import PROG

__all__ = ["CACHE_COUNT_PLUGIN", "CacheCounter", "count_cached"]

CACHE_COUNT_PLUGIN = "pocketcore-cli-cache-count"


@contextlib.contextmanager
def count_cached(
    registry: Registry, target: BaseNode, given: dict[str, Setting], *, report: bool
) -> Iterator[None]:
    """Count the batch items served by the cache and computed; say so per node class at the end.

    The observer is registered only when a cache may be in force: for the
    run, or on a node or flow reachable from ``target``. Otherwise the
    lifecycle hooks stay free. The lines are printed also when the run fails.
    """
    may_cache = report and _may_cache(target, given)
    with reported(registry, CacheCounter(), CACHE_COUNT_PLUGIN, when=may_cache):
        yield


def _may_cache(target: BaseNode, given: dict[str, Setting]) -> bool:
    value = run_level(given, "cache")
    if value is not None and value is not False:
        return True
    return any(own_cache(node) not in (None, False, True) for node in reachable(target))


class CacheCounter:
    """A lifecycle-hook plugin counting, per batch node class, items from the cache and computed.

    Computed items are those that ended with a result (a failure is not
    one). Items may finish on worker threads, so the counts are kept under
    a lock.
    """

    def __init__(self) -> None:
        #: Node class name -> [from the cache, computed], in the order first seen.
        self.counts: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    @hookimpl
    def pocketcore_batch_item_cached(self, node: Any) -> None:
        """Count one item whose result came from the cache."""
        self._count(node, 0)

    @hookimpl
    def pocketcore_node_cache_result(self, node: Any, hit: bool) -> None:
        """Count a cached plain node's step: its result from the cache, or computed."""
        self._count(node, 0 if hit else 1)

    @hookimpl
    def pocketcore_batch_item_done(self, node: Any, result: Any, exception: Any) -> None:
        """Count one item that was computed (and did not fail)."""
        if exception is None and not isinstance(result, Failed):
            self._count(node, 1)

    def _count(self, node: Any, which: int) -> None:
        if isinstance(node, Flow) or own_cache(node) is False:
            return  # a batch flow's passes are not items of work; an opted-out node is not cached
        with self._lock:
            self.counts.setdefault(type(node).__name__, [0, 0])[which] += 1

    def lines(self) -> list[str]:
        """One line per node class: ``pocketcore: NAME: N from cache, M computed``."""
        return [
            f"{PROG}: {name}: {hits:,} from cache, {computed:,} computed"
            for name, (hits, computed) in self.counts.items()
        ]
