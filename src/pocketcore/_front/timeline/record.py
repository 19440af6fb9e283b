"""Recording a timeline: the :class:`Timeline` observer and its lifecycle hooks.

The observer only records (a ``time.perf_counter()`` reading and a few fields
per event, under a lock) into the values of :mod:`.spans`; the page is made
by :mod:`.render`, after the run, from a copy of what was recorded.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from pocketcore._core.limiter import LimiterLike
from pocketcore._core.results import Failed
from pocketcore._nodes.flows import Flow
from pocketcore._plugins.registry import Registry, get_registry
from pocketcore.hookspecs import hookimpl

from .render import MAX_BARS, MAX_LANES, render_page
from .spans import Attempt, Batch, Span

__all__ = ["Timeline"]


class _Running:
    """An item that has started and not ended: its batch, start and attempts so far."""

    __slots__ = ("attempt_start", "attempts", "batch", "fallback", "start")

    def __init__(self, batch: Batch, start: float) -> None:
        self.batch, self.start = batch, start
        self.attempts: list[Attempt] = []
        self.attempt_start: float | None = None  # of the attempt in progress
        self.fallback = ""  # the failure the fallback replaced, once it has

    def attempts_until(self, now: float) -> tuple[Attempt, ...]:
        """The attempts, the one in progress (if any) ending ``now``, unfinished."""
        if self.attempt_start is None:
            return tuple(self.attempts)
        return (*self.attempts, Attempt(self.attempt_start, now, "unfinished"))


def _outcome(exception: BaseException | None) -> tuple[str, str]:
    if exception is None:
        return "ok", ""
    error = f"{type(exception).__name__}: {exception}"
    error = error if len(error) <= 200 else error[:199] + "\u2026"
    # Cancellations (asyncio.CancelledError, trio.Cancelled) and interrupts
    # are BaseExceptions only: the item did not fail, it was stopped.
    return ("failed" if isinstance(exception, Exception) else "cancelled"), error


class Timeline:
    """An observer that records runs and writes them as a timeline in one HTML file.

    Time runs left to right. The page shows each run, the steps of its flows
    (packed into as few lanes as overlap needs) and, for each batch node
    class, its batches' items on lanes packed by concurrency: the number of
    busy lanes is the number of items in flight, so a concurrency limit shows
    as a ceiling. Failed items are red, cancelled ones grey; hovering a bar
    shows its node, item index, duration and error. An item that made more
    than one attempt, or whose fallback gave its result, has a segment per
    attempt (failed ones red) and an amber one for the fallback; cache hits
    are green ticks above their group. The header has the totals: wall
    time, items, peak and mean concurrency and the slowest items, and what
    the run reported using (:func:`pocketcore.report_usage`), which items'
    tooltips and groups' titles show too. The bound of a limiter with
    ``max_concurrency="auto"`` is a step line over its group's lanes. A group
    that needs more than ``max_lanes`` lanes, or has more than ``max_bars``
    bars, is drawn as a density: how many were in flight over time, stacked
    by outcome, with its failures, its fallbacks and its slowest items still
    a bar each; the page says so.

    Use it as a context manager, which registers it with the registry for the
    body and writes ``path`` at the end, also when the body raises::

        with pocketcore.Timeline("run.html"):
            pocketcore.run(flow, shared)

    or register it yourself and write when you like::

        timeline = pocketcore.Timeline()
        pocketcore.get_registry().register(timeline, name="timeline")
        pocketcore.run(flow, shared)
        timeline.write("run.html")

    Everything observed while registered is on one page, several runs included.

    Args:
        path: Where the context manager writes the page (``None``: it does not).
        registry: The registry the context manager registers with (default:
            :func:`pocketcore.get_registry`).
        max_bars: Groups with more bars than this are drawn as a density.
        max_lanes: Groups that need more lanes than this are drawn as a density.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        registry: Registry | None = None,
        max_bars: int = MAX_BARS,
        max_lanes: int = MAX_LANES,
    ) -> None:
        self.path = path
        self.max_bars = max_bars
        self.max_lanes = max_lanes
        self.runs: list[Span] = []
        """The runs, in the order they ended."""
        self.steps: list[Span] = []
        """The steps of flows, in the order they ended."""
        self.batches: list[Batch] = []
        """The batches, in the order they started."""
        self._registry = registry
        # Hooks come from worker threads too (the steps inside the passes of a
        # ParallelBatchFlow): every record is kept under this lock.
        self._lock = threading.Lock()
        self._runs: dict[int, float] = {}  # id(target) -> start, while it runs
        self._steps: dict[int, tuple[str, float]] = {}  # id(node copy) -> (label, start)
        self._hit_steps: set[int] = set()  # steps whose result came from the cache
        self._items: dict[tuple[int, int], _Running] = {}  # (id(node), index)
        self._batch_of: dict[int, Batch] = {}  # id(batch node) -> its latest batch
        # id(batch node) -> its limiter with max_concurrency="auto", while its batch runs
        self._auto: dict[int, LimiterLike] = {}

    # --- registering -------------------------------------------------------

    def __enter__(self) -> Timeline:
        """Register with the registry; the page is written when the block ends.

        Raises:
            PluginError: This timeline is registered already.
        """
        (self._registry or get_registry()).register(self, name=f"pocketcore-timeline-{id(self)}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Unregister, and write the page to ``path`` (when given).

        Raises:
            OSError: The page cannot be written.
        """
        (self._registry or get_registry()).unregister(self)
        if self.path is not None:
            self.write(self.path)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the page (see :meth:`html`) to ``path``, in UTF-8.

        Raises:
            OSError: The file cannot be written.
        """
        Path(path).write_text(self.html(), encoding="utf-8")

    def html(self, title: str | None = None) -> str:
        """The page: one self-contained HTML document of what was recorded so far."""
        with self._lock:
            now = time.perf_counter()
            runs = list(self.runs)
            # An interrupted run, or a page made mid-run: show how far things got.
            steps = [
                *self.steps,
                *(Span(label, start, now, "unfinished") for label, start in self._steps.values()),
            ]
            copies = {
                id(b): attrs.evolve(
                    b, items=list(b.items), hits=list(b.hits), bounds=list(b.bounds)
                )
                for b in self.batches
            }
            for (_, index), running in self._items.items():
                copies[id(running.batch)].items.append(
                    Span(
                        running.batch.label,
                        running.start,
                        now,
                        "unfinished",
                        index=index,
                        attempts=running.attempts_until(now),
                    )
                )
        batches = list(copies.values())
        return render_page(runs, steps, batches, self.max_bars, title, self.max_lanes)

    # --- the lifecycle hooks -----------------------------------------------

    @hookimpl
    def pocketcore_run_start(self, target: Any) -> None:
        """Note when the run started."""
        with self._lock:
            self._runs[id(target)] = time.perf_counter()

    @hookimpl
    def pocketcore_run_end(
        self, target: Any, exception: BaseException | None, usage: Mapping[str, float]
    ) -> None:
        """Record the run, with what it reported using."""
        end = time.perf_counter()
        with self._lock:
            start = self._runs.pop(id(target), end)
            label = type(target).__name__
            self.runs.append(Span(label, start, end, *_outcome(exception), usage=usage))

    @hookimpl
    def pocketcore_node_start(self, node: Any) -> None:
        """Note when the step started (keyed by its node copy, unique to the step)."""
        with self._lock:
            self._steps[id(node)] = (type(node).__name__, time.perf_counter())

    @hookimpl
    def pocketcore_node_cache_result(self, node: Any, hit: bool) -> None:
        """Note a step of a cached plain node whose result came from the cache."""
        if hit:
            with self._lock:
                self._hit_steps.add(id(node))

    @hookimpl
    def pocketcore_node_end(
        self, node: Any, exception: BaseException | None, usage: Mapping[str, float]
    ) -> None:
        """Record the step, with what it reported using (and whether the cache gave it)."""
        end = time.perf_counter()
        with self._lock:
            _, start = self._steps.pop(id(node), ("", end))
            label = type(node).__name__
            # A flow's step holds its nodes' usage, which their own steps show.
            usage = {} if isinstance(node, Flow) else usage
            cached = id(node) in self._hit_steps
            self._hit_steps.discard(id(node))
            self.steps.append(
                Span(label, start, end, *_outcome(exception), usage=usage, cached=cached)
            )

    @hookimpl
    def pocketcore_batch_start(
        self,
        node: Any,
        size: int | None,
        executor: Any,
        limit: int | None,
        limiters: Sequence[LimiterLike],
    ) -> None:
        """Start the record of a batch (and of its auto concurrency, if it has one)."""
        name = None if executor is None else str(executor.name)
        now = time.perf_counter()
        batch = Batch(type(node).__name__, size, now, executor=name, limit=limit)
        auto = next((lim for lim in limiters if lim.max_concurrency == "auto"), None)
        with self._lock:
            self.batches.append(batch)
            self._batch_of[id(node)] = batch
            if auto is not None:
                batch.ceiling = auto.ceiling
                self._auto[id(node)] = auto
                self._bound(node, now)

    def _bound(self, node: Any, now: float) -> None:
        """Note the auto bound of ``node``'s batch, when it has moved (under the lock)."""
        limiter = self._auto.get(id(node))
        if limiter is None:
            return
        bound = limiter.concurrency
        bounds = self._batch_of[id(node)].bounds
        if bound is not None and (not bounds or bounds[-1][1] != bound):
            bounds.append((now, bound))

    @hookimpl
    def pocketcore_batch_end(self, node: Any, usage: Mapping[str, float]) -> None:
        """Note when the batch ended, and what its items reported using."""
        end = time.perf_counter()
        with self._lock:
            self._bound(node, end)
            self._auto.pop(id(node), None)
            batch = self._batch_of.get(id(node))
            if batch is not None:
                batch.end = end
                batch.usage = usage

    @hookimpl
    def pocketcore_batch_item_start(self, node: Any, index: int) -> None:
        """Note when the item started."""
        with self._lock:
            # None: registered after the batch started (while another observer
            # kept the run's hooks live); its items are not recorded.
            batch = self._batch_of.get(id(node))
            if batch is not None:
                now = time.perf_counter()
                self._items[(id(node), index)] = _Running(batch, now)
                self._bound(node, now)

    @hookimpl
    def pocketcore_batch_item_attempt_start(self, node: Any, index: int) -> None:
        """Note when the attempt started."""
        now = time.perf_counter()
        with self._lock:
            running = self._items.get((id(node), index))
            if running is not None:
                running.attempt_start = now

    @hookimpl
    def pocketcore_batch_item_attempt_done(
        self, node: Any, index: int, exception: BaseException | None
    ) -> None:
        """Record the attempt in its item."""
        end = time.perf_counter()
        with self._lock:
            self._bound(node, end)
            running = self._items.get((id(node), index))
            if running is not None and running.attempt_start is not None:
                attempt = Attempt(running.attempt_start, end, *_outcome(exception))
                running.attempts.append(attempt)
                running.attempt_start = None

    @hookimpl
    def pocketcore_batch_item_fallback(self, node: Any, index: int, exception: Exception) -> None:
        """Note that the item's fallback gave its result, in place of ``exception``."""
        with self._lock:
            running = self._items.get((id(node), index))
            if running is not None:
                running.fallback = _outcome(exception)[1]

    @hookimpl
    def pocketcore_batch_item_cached(self, node: Any, index: int) -> None:
        """Record a cache hit: a tick in its batch's group."""
        now = time.perf_counter()
        with self._lock:
            batch = self._batch_of.get(id(node))
            if batch is not None:
                batch.hits.append((now, index))

    @hookimpl
    def pocketcore_batch_item_done(
        self,
        node: Any,
        index: int,
        result: Any,
        exception: BaseException | None,
        usage: Mapping[str, float],
    ) -> None:
        """Record the item in its batch (a failure collected by ``on_error="collect"`` too)."""
        end = time.perf_counter()
        if type(result) is Failed:
            exception = result.exception
        with self._lock:
            self._bound(node, end)
            running = self._items.pop((id(node), index), None)
            if running is None:
                batch = self._batch_of.get(id(node))
                if batch is not None:  # run by the executor itself: reported afterwards
                    batch.unstarted += 1
                return
            outcome, error = _outcome(exception)
            if running.fallback and outcome == "ok":
                outcome, error = "fallback", running.fallback
            batch = running.batch
            batch.items.append(
                Span(
                    batch.label,
                    running.start,
                    end,
                    outcome,
                    error,
                    index,
                    running.attempts_until(end),
                    usage,
                )
            )
