"""What a timeline records: attempts, spans (its bars) and batches, as plain values.

The recorder (:mod:`.record`) makes them from the lifecycle hooks; the page
(:mod:`.render`) draws them. Times are ``time.perf_counter()`` readings.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["Attempt", "Batch", "Span"]


@attrs.frozen
class Attempt:
    """One attempt of a batch item's ``exec``: a segment of the item's bar.

    Attributes:
        start: ``time.perf_counter()`` when it started.
        end: ``time.perf_counter()`` when it ended.
        outcome: ``"ok"``, ``"failed"``, ``"cancelled"`` or ``"unfinished"``.
        error: ``"Type: message"`` of what it raised, or ``""``.
    """

    start: float
    end: float
    outcome: str
    error: str = ""


@attrs.frozen
class Span:
    """One bar: a run, a step of a flow or a batch item, from start to end.

    Attributes:
        label: The class name of the node (or of the run's target).
        start: ``time.perf_counter()`` when it started.
        end: ``time.perf_counter()`` when it ended.
        outcome: ``"ok"``, ``"failed"``, ``"cancelled"`` (stopped because a
            sibling failed, or the run was interrupted), ``"fallback"`` (the
            last attempt failed and the node's fallback gave the result) or
            ``"unfinished"`` (no end was reported before the page was made).
        error: ``"Type: message"`` of what it raised (for ``"fallback"``,
            the failure the fallback replaced), or ``""``.
        index: The item's position in its batch (``None`` for runs and steps).
        attempts: The attempts of an item's ``exec``, in order (empty when
            they were not reported: a batch flow's passes, items an executor
            ran itself).
        usage: What it reported using (:func:`pocketcore.report_usage`), by
            unit, every attempt counted; empty when nothing was.
        cached: A step of a plain node whose result came from the result
            cache (its ``exec`` did not run).
    """

    label: str
    start: float
    end: float
    outcome: str
    error: str = ""
    index: int | None = None
    attempts: tuple[Attempt, ...] = ()
    usage: Mapping[str, float] = attrs.field(factory=dict)
    cached: bool = False


@attrs.define
class Batch:
    """The record of one batch: its node's class, its size and its items.

    Attributes:
        label: The class name of the batch node or batch flow.
        size: The number of items, or ``None`` when unknown.
        start: When the batch started.
        items: The items that reported a start and an end.
        unstarted: Items reported done without a start (an executor that
            runs the calls itself reports them only when the results are
            back): counted, not drawn.
        executor: The name of the executor its items were handed to
            (``None`` for the classes that run their items one after another).
        limit: The most items in flight at once (``None``: no limit).
        hits: ``(time, index)`` of each item found in the result cache.
        end: When the batch ended (``None`` until it has).
        usage: What its items reported using, by unit (known once it ended).
        bounds: For a limiter with ``max_concurrency="auto"``: ``(time,
            bound)`` each time the bound in force was seen to change, from
            the batch's start; empty for any other batch.
        ceiling: That limiter's ceiling (``None`` for any other batch).
    """

    label: str
    size: int | None
    start: float
    items: list[Span] = attrs.field(factory=list)
    unstarted: int = 0
    executor: str | None = None
    limit: int | None = None
    hits: list[tuple[float, int]] = attrs.field(factory=list)
    end: float | None = None
    usage: Mapping[str, float] = attrs.field(factory=dict)
    bounds: list[tuple[float, int]] = attrs.field(factory=list)
    ceiling: int | None = None
