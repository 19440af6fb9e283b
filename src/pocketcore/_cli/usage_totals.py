"""What each node reported using (tokens, any unit), said per node class when the run ends.

``pocketcore run`` ends with a line per node class that reported usage with
:func:`pocketcore.report_usage` (or a limiter's event hooks), on stderr:
``pocketcore: Summarize: 600 items, 1,234,567 tokens``. Whether a run will
report usage cannot be known before it runs, so the observer is registered
for every run that is not ``--quiet``; it hears only the ends of runs, steps
and batches, never a single item, so it adds nothing to an item's trip.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from pocketcore._nodes.flows import Flow
from pocketcore._plugins.registry import Registry
from pocketcore._runtime.usage import amounts
from pocketcore.hookspecs import hookimpl

from .observing import reported
from .output import PROG

__all__ = ["USAGE_PLUGIN", "UsageCounter", "count_usage"]

USAGE_PLUGIN = "pocketcore-cli-usage"


@contextlib.contextmanager
def count_usage(registry: Registry, *, report: bool) -> Iterator[None]:
    """Total the usage each node class reports; say so per class at the end (also on failure)."""
    with reported(registry, UsageCounter(), USAGE_PLUGIN, when=report):
        yield


class _Node:
    """One node class's totals: its items (or steps) and what they reported."""

    __slots__ = ("batches", "items", "steps", "usage")

    def __init__(self) -> None:
        self.batches = 0
        self.items: int | None = 0  # None: a batch of unknown size
        self.steps = 0
        self.usage: dict[str, float] = {}


class UsageCounter:
    """A lifecycle-hook plugin totalling, per node class, the usage its ``exec`` reported.

    A report counts for the node whose ``exec`` made it: a batch node's at
    its batch's end, a plain node's at its step's end (or its run's, when it
    is the target). Flows are left out: their nodes have the totals. Steps
    may end on worker threads, so the totals are kept under a lock.
    """

    def __init__(self) -> None:
        #: Node class name -> its totals, in the order first seen.
        self.nodes: dict[str, _Node] = {}
        self._sizes: dict[int, int | None] = {}  # id(batch node) -> its size, while it runs
        self._batched: set[int] = set()  # the batch nodes whose step is still to end
        self._lock = threading.Lock()

    @hookimpl
    def pocketcore_batch_start(self, node: Any, size: int | None) -> None:
        """Note the batch's size."""
        with self._lock:
            self._sizes[id(node)] = size

    @hookimpl
    def pocketcore_batch_end(self, node: Any, usage: Mapping[str, float]) -> None:
        """Count a batch node's batch: its items and their usage."""
        with self._lock:
            size = self._sizes.pop(id(node), None)
            if isinstance(node, Flow):
                return  # a batch flow's passes: its nodes count for themselves
            self._batched.add(id(node))
            totals = self._add(node, usage)
            totals.batches += 1
            totals.items = None if totals.items is None or size is None else totals.items + size

    @hookimpl
    def pocketcore_node_end(self, node: Any, usage: Mapping[str, float]) -> None:
        """Count a plain node's step (a batch node's was counted with its batch)."""
        self._step(node, usage)

    @hookimpl
    def pocketcore_run_end(self, target: Any, usage: Mapping[str, float]) -> None:
        """Count the run's target, when it is a plain node."""
        self._step(target, usage)

    def _step(self, node: Any, usage: Mapping[str, float]) -> None:
        with self._lock:
            if id(node) in self._batched:
                self._batched.discard(id(node))
                return
            if not isinstance(node, Flow):
                self._add(node, usage).steps += 1

    def _add(self, node: Any, usage: Mapping[str, float]) -> _Node:
        totals = self.nodes.setdefault(type(node).__name__, _Node())
        for unit, amount in usage.items():
            totals.usage[unit] = totals.usage.get(unit, 0.0) + amount
        return totals

    def lines(self) -> list[str]:
        """One line per node class that reported usage: ``pocketcore: NAME: N items, AMOUNTS``."""
        lines = []
        for name, totals in self.nodes.items():
            if not totals.usage:
                continue
            counted = []
            if totals.batches:
                items = totals.items
                counted.append(
                    f"{items:,} item{'' if items == 1 else 's'}"
                    if items is not None
                    else f"{totals.batches:,} batch{'' if totals.batches == 1 else 'es'}"
                )
            if totals.steps:
                counted.append(f"{totals.steps:,} step{'' if totals.steps == 1 else 's'}")
            lines.append(f"{PROG}: {name}: {', '.join([*counted, amounts(totals.usage)])}")
        return lines
