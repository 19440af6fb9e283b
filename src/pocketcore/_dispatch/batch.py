"""Running a batch: its plan, its inputs through the cache, its items through the executor.

Every batch of every class runs through here: :func:`each` / :func:`each_async`
for the sequential ones (``BatchNode``, ``AsyncBatchNode``, the passes of
``BatchFlow`` and ``AsyncBatchFlow``), :func:`fan_out` for the four
*Parallel* classes. Each resolves the batch's :class:`~pocketcore._dispatch.plan.Plan`
once, builds the item's trip from it (:mod:`pocketcore._dispatch.stack`),
and runs the items: in a loop here, or through the executor's ``map``.
Local, blocking and remote executors take the same path; where the plan
says the executor calls the items itself, the trip travels to it and the
items' ends are reported once their results are back. A remote batch with
limiters sends one attempt per item at a time, and its attempts are
decided here (:mod:`pocketcore._dispatch.resend`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from pocketcore._core.executor import Gate
from pocketcore._dispatch import govern, report
from pocketcore._dispatch.cached import BareItems, CachedBatch, Keyed, Storing, group_for
from pocketcore._dispatch.collect import number_failures
from pocketcore._dispatch.plan import Plan, plan_batch
from pocketcore._dispatch.remote import metered, metering, shippable
from pocketcore._dispatch.resend import Resending
from pocketcore._dispatch.stack import Stack, core, remote_core, trip, with_report
from pocketcore._dispatch.threads import call_sync, on_threads, run_blocking
from pocketcore._runtime.gate import gate_of
from pocketcore._runtime.observe import batch_size
from pocketcore._runtime.usage import USAGE

__all__ = ["each", "each_async", "fan_out", "fan_out_blocking"]

Work = Callable[[Any], Any]


def _inputs(plan: Plan, batch: Iterable[Any], keyed: bool, group: int) -> tuple[Any, Any]:
    """The inputs handed to the trip, and the cached batch they come through (if any)."""
    if plan.cache is not None:
        hit = report.on_hit(plan.events, plan.owner)
        cached = CachedBatch(plan.cache, batch, group, hit)
        return cached.misses(), cached
    if keyed:
        return (Keyed(index, None, item) for index, item in enumerate(batch)), None
    return batch, None


# --- sequential batches ---------------------------------------------------------


def each(owner: Any, items: Iterable[Any] | None, work: Work | None = None) -> list[Any]:
    """Run ``owner``'s batch one item after another (sync).

    ``work`` runs one pass of a batch flow; without it, each item goes
    through the node's ``exec`` pipeline (and the run's cache).
    """
    plan = plan_batch(owner, parallel=False, blocking=True, passes=work is not None)
    stack = trip(plan, work)
    stack = with_report(plan, stack, sync=True)
    batch: Iterable[Any] = () if items is None else items

    def run() -> list[Any]:
        inputs, cached = _inputs(plan, batch, stack.keyed, 1)
        results = [stack.call(one) for one in inputs]
        return results if cached is None else cached.merge(results)

    ev = plan.events
    return run() if ev is None else report.batch_reported(plan, ev, batch_size(batch), run)


async def each_async(
    owner: Any, items: Iterable[Any] | None, work: Callable[[Any], Awaitable[Any]] | None = None
) -> list[Any]:
    """:func:`each` for async items (or passes)."""
    plan = plan_batch(owner, parallel=False, blocking=False, passes=work is not None)
    stack = trip(plan, work)
    stack = with_report(plan, stack, sync=False)
    batch: Iterable[Any] = () if items is None else items

    async def run() -> list[Any]:
        inputs, cached = _inputs(plan, batch, stack.keyed, 1)
        results = [await stack.call(one) for one in inputs]
        return results if cached is None else cached.merge(results)

    ev = plan.events
    if ev is None:
        return await run()
    return await report.batch_reported_async(plan, ev, batch_size(batch), run)


# --- parallel batches --------------------------------------------------------------


async def fan_out(
    owner: Any,
    items: Iterable[Any] | None,
    *,
    blocking: bool = False,
    work: Work | None = None,
    plan: Plan | None = None,
) -> list[Any]:
    """Run every item of ``owner``'s parallel batch through the run's executor.

    Args:
        owner: The parallel node or batch flow; its own settings win over the run's.
        items: The batch (``None`` is an empty one), pulled lazily.
        blocking: The per-item work is sync: it runs on worker threads, or
            through the executor's own ``map_blocking``.
        work: One pass of a batch flow, which reads and writes the shared
            store and so stays in this process. By default each item goes
            through the node's ``exec`` pipeline.
        plan: The batch's plan, when it was resolved already.

    Returns:
        The results in input order.

    Raises:
        ConfigError: The plan is unusable (see :func:`~pocketcore._dispatch.plan.plan_batch`).
        PocketcoreError: The work or an item cannot be sent to a remote executor.
        BaseException: The first item's failure, unchanged.
    """
    if plan is None:
        plan = plan_batch(owner, parallel=True, blocking=blocking, passes=work is not None)
    batch: Iterable[Any] = () if items is None else items
    ev = plan.events
    run = functools.partial(_elsewhere if plan.runs_elsewhere else _here, plan, batch, work)
    if ev is None:
        results = await run()
    else:
        results = await report.batch_reported_async(plan, ev, batch_size(batch), run)
    return number_failures(results) if plan.collect else results


def _map(plan: Plan, *, blocking: bool) -> Callable[..., Awaitable[list[Any]]]:
    """The executor's ``map`` (or its own ``map_blocking``): both take the same keywords."""
    own = plan.caps.map_blocking if blocking else None
    run = plan.caps.map if own is None else own
    assert run is not None  # a parallel plan's
    return run


def _gate(plan: Plan) -> Gate | None:
    """The gate the executor enters before each item it runs itself (it declares ``gates_items``).

    For items that run here, the gate of their attempts when the executor's
    loop gates them (the plan's ``loop_gated``); otherwise none: the kernel
    enters their limiters in the item's trip (govern.py).
    """
    if not plan.limiters:
        return None
    if plan.loop_gated:
        return govern.attempt_gate(plan.limiters)
    if plan.caps.gates_items and not plan.governed:
        return gate_of(plan.limiters)
    return None


async def _here(plan: Plan, batch: Iterable[Any], work: Work | None) -> list[Any]:
    """A batch whose items run in this process, each in a call the executor schedules."""
    stack = trip(plan, work)
    limit = plan.limit
    if plan.blocking:
        call, limit = on_threads(stack.call, limit)
        stack = Stack(call, stack.keyed)
    stack = with_report(plan, stack, sync=False)
    call = stack.call
    if plan.governed and plan.ticketed:
        call = govern.admitted(
            plan.limiters, plan.owner, call, keyed=stack.keyed, blocking=plan.blocking
        )
    inputs, cached = _inputs(plan, batch, stack.keyed, group_for(limit))
    results = await _map(plan, blocking=False)(
        call, inputs, limit=limit, gate=_gate(plan), on_result=None
    )
    return results if cached is None else cached.merge(results)


async def _elsewhere(plan: Plan, batch: Iterable[Any], work: Work | None) -> list[Any]:
    """A batch whose calls the executor makes itself: in other processes, or its ``map_blocking``.

    The kernel does not see each item start there: the trip travels with
    the items (on a detached copy of the node, checked to pickle, for a
    remote executor), hits and the cache's writes stay here, and the items
    are reported once their results are back.
    """
    cached = None
    if plan.cache is not None:
        hit = report.on_hit(plan.events, plan.owner)
        cached = CachedBatch(plan.cache, batch, group_for(plan.limit), hit, keep_missed=True)
    index_of = None if cached is None else _miss_index(cached)
    # Usage reported on the workers comes back with the results, when someone
    # listens, or when the limiters here learn from it what to charge a send.
    usages: list[Mapping[str, float]] | None = None
    if plan.caps.remote:
        call = remote_core(plan)
        listened = plan.events is not None and (plan.events.item_usage or USAGE.get() is not None)
        if listened or (plan.resent and any(limiter.units() for limiter in plan.limiters)):
            call = metered(call, blocking=plan.blocking)
        if listened:
            usages = []
        inputs: Iterable[Any] = batch if cached is None else BareItems(cached)
        inputs, call = report.sending(plan, inputs, call, index_of)
        inputs = shippable(plan.owner, plan.executor, call, inputs)  # type: ignore[arg-type]
        if plan.blocking and plan.caps.map_blocking is None:
            call = functools.partial(call_sync, call)
    else:
        call = work if work is not None else core(plan, plan.owner).call
        inputs = batch if cached is None else cached.misses()
    run_map = _map(plan, blocking=plan.blocking and plan.caps.map_blocking is not None)
    results = await _handed_over(plan, run_map, call, inputs, cached, usages)
    if plan.events is not None:
        report.report_after(plan.events, plan.owner, results, index_of, usages)
    return results if cached is None else cached.merge(results)


async def _handed_over(
    plan: Plan,
    run_map: Callable[..., Awaitable[list[Any]]],
    call: Work,
    inputs: Iterable[Any],
    cached: CachedBatch | None,
    usages: list[Mapping[str, float]] | None,
) -> list[Any]:
    """The results of the items handed to the executor (the misses, for a cached batch)."""
    if plan.resent:
        # Every attempt of a remote item passes the limiters here: one send each.
        resending = Resending(plan, run_map, call, cached, report.sends_contexts(plan))
        return await resending.run(inputs, usages)
    if usages is not None:
        run_map = metering(run_map, usages)
    if cached is None or not plan.caps.remote:
        return await run_map(call, inputs, limit=plan.limit, gate=_gate(plan), on_result=None)
    return await _storing(plan, cached, run_map, call, inputs)


async def _storing(
    plan: Plan,
    cached: CachedBatch,
    run_map: Callable[..., Awaitable[list[Any]]],
    call: Work,
    inputs: Iterable[Any],
) -> list[Any]:
    """Run a remote batch's misses, storing each result ``exec`` returned as it comes back."""
    store = Storing(cached)
    reports = plan.caps.reports_results
    on_result = store.one if reports else None
    results = await run_map(call, inputs, limit=plan.limit, gate=_gate(plan), on_result=on_result)
    return store.unwrap(results if reports else store.all(results))


def _miss_index(cached: CachedBatch) -> Callable[[int], int]:
    """The input position of each miss handed over, by its position among them."""
    missed = cached.missed
    return lambda position: missed[position].index  # type: ignore[return-value]


def fan_out_blocking(
    owner: Any, items: Iterable[Any] | None, *, work: Work | None = None
) -> list[Any]:
    """:func:`fan_out` of sync work, from sync code: on the loop the executor starts."""
    plan = plan_batch(owner, parallel=True, blocking=True, passes=work is not None)
    assert plan.executor is not None
    return run_blocking(
        plan.executor, lambda: fan_out(owner, items, blocking=True, work=work, plan=plan)
    )
