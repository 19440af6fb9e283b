"""One item's trip: the layers of the per-item pipeline, stacked once per batch from its plan.

From the outside in (a layer the plan does not need is not there)::

    gate        its limiters, before it starts      (govern.py; the executor's, if remote;
                                                     for each attempt, if loop_gated)
    report      its start and end, its fallback     (report.py)
    counted     its own cur_retry and outcome       (attempts.py)
    stored      the cache's write, if exec returned (cached.py; marked on a worker)
    collected   a failure kept as a Failed          (collect.py)
    retried     attempts, waits, fallback           (attempts.py)
    governed    each further attempt's limiters     (govern.py; on its thread, if blocking;
                                                     each attempt's, with no gate, if unticketed)
    attempt     each attempt's start and end        (report.py)
    timed       each attempt's timeout              (attempts.py)
    exec        the node's exec / exec_async

The cache's lookup happens before the trip, as the inputs are pulled
(:class:`~pocketcore._dispatch.cached.CachedBatch`); a hit never starts one.
A batch flow's passes have only the gate and the report around the pass.

A remote item's trip from ``counted`` down runs on the worker. When its
batch has limiters, the worker's trip is one attempt per send instead
(``once``, around ``timed`` and ``exec``), and the layers from ``counted``
to ``governed`` are :class:`~pocketcore._dispatch.resend.Resending`, here,
around the executor's ``map``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from pocketcore._dispatch import attempts, cached, collect, govern, report, resend
from pocketcore._dispatch.plan import Plan
from pocketcore._dispatch.remote import detached

__all__ = ["Stack", "core", "remote_core", "trip", "with_report"]

Call = Callable[[Any], Any]


class Stack:
    """An item's trip as built for one batch.

    Attributes:
        call: What runs one item.
        keyed: ``call`` takes a :class:`~pocketcore._dispatch.cached.Keyed`
            input (its position, its cache key), not the bare item.
    """

    __slots__ = ("call", "keyed")

    def __init__(self, call: Call, keyed: bool) -> None:
        self.call, self.keyed = call, keyed


def _stateful(plan: Plan, single: bool) -> bool:
    """Whether each item needs a state of its own (see :func:`attempts.counted`).

    Concurrent items (and collected ones) need their own counter, unless
    every item makes exactly one attempt. The cache needs to know whether
    ``exec`` returned, unless nothing else can make a result: one attempt,
    the default fallback, no collecting, and no sequential sync loop (which
    an ``exec`` assigning ``cur_retry`` can end without a result).
    """
    loops = plan.blocking and not plan.parallel
    if plan.cache is not None and (plan.collect or not single or loops):
        return True
    return not single and (plan.parallel or plan.collect)


@attrs.frozen
class _Forms:
    """The layers in one form, sync or async (the same layers, the same order)."""

    exec_name: str
    attempts_reported: Callable[..., Call]
    retried: Callable[..., Call]
    collected: Callable[..., Call]
    stored: Callable[..., Call]
    marked: Callable[..., Call]
    counted: Callable[[Any, Call], Call]


_SYNC = _Forms(
    "exec",
    report.attempts_reported,
    attempts.retried,
    collect.collected,
    cached.stored,
    cached.marked,
    attempts.counted,
)
_ASYNC = _Forms(
    "exec_async",
    report.attempts_reported_async,
    attempts.retried_async,
    collect.collected_async,
    cached.stored_async,
    cached.marked_async,
    attempts.counted_async,
)


def core(plan: Plan, node: Any, *, store: bool = True) -> Stack:
    """The layers of ``node``'s items from ``counted`` down, sync or async as the plan says.

    ``store``: the cache's write happens here (not on a worker, see
    :func:`remote_core`).
    """
    forms = _SYNC if plan.blocking else _ASYNC
    single = attempts.single(node, blocking=plan.blocking)
    stateful = _stateful(plan, single)
    call: Call = getattr(node, forms.exec_name)
    if not plan.blocking:
        call = attempts.timed(plan.timeout, call)
    ev = plan.events
    if ev is not None and ev.attempts:
        call = forms.attempts_reported(ev, node, call)
    if plan.governed and not plan.loop_gated:  # else the executor's loop gates each attempt
        if not plan.ticketed:
            call = govern.gated(plan.limiters, call)
        else:
            call = (govern.governed_blocking if plan.blocking else govern.governed)(node, call)
    # A sync loop decides on cur_retry read back, so a sequential sync item
    # always loops, as PocketFlow's does (and the cache then asks its state).
    if single and not stateful and (plan.parallel or not plan.blocking):
        node.__dict__["cur_retry"] = 0  # every item's; none needs its own
    else:
        call = forms.retried(node, call, stateful=stateful)
    if plan.collect:
        call = forms.collected(call, stateful=stateful)
    keyed = False
    if plan.cache is not None:
        if store:
            call = forms.stored(plan.cache, call, concurrent=plan.parallel, checked=stateful)
            keyed = True
        else:
            call = forms.marked(call, checked=stateful)
    if stateful:
        call = forms.counted(node, call)
    return Stack(call, keyed)


def trip(plan: Plan, work: Call | None) -> Stack:
    """The trip of one item of ``plan``'s batch here: a pass of ``work``, or the node's core."""
    return core(plan, plan.owner) if work is None else Stack(work, keyed=False)


def remote_core(plan: Plan) -> Call:
    """What a worker in another process runs for each item: the trip on a detached node.

    The attempts, their timeout and the collect layer travel with the item;
    the cache's write stays here (the worker marks what ``exec`` returned).
    When the batch has limiters (the plan's ``resent``), only one attempt
    travels per send, timed: the attempts are decided here, each passing
    the limiters (:mod:`~pocketcore._dispatch.resend`).
    """
    home = detached(plan.owner)
    if plan.resent:
        if plan.blocking:
            return resend.once(home, home.exec, blocking=True)
        return resend.once(home, attempts.timed(plan.timeout, home.exec_async), blocking=False)
    # No observer travels: the items are reported here, once they are back.
    return core(attrs.evolve(plan, events=None), home, store=False).call


def with_report(plan: Plan, stack: Stack, *, sync: bool) -> Stack:
    """``stack`` under the report layer, when someone hears single items."""
    ev = plan.events
    if ev is None or not ev.items:
        return stack
    layer = report.reported if sync else report.reported_async
    return Stack(layer(ev, plan.owner, stack.call, whole=stack.keyed), keyed=True)
