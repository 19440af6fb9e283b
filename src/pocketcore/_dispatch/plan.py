"""The batch plan: everything a batch runs with, resolved once when it starts.

A batch is a node's items (each through ``exec``) or a batch flow's passes
(each a run of the flow). When it starts, :func:`plan_batch` resolves one
immutable :class:`Plan`: the executor and what it declares it can do, the
limit, the limiters, the error policy, the per-attempt timeout, the cache,
whether the items are blocking, and who listens. Every layer of the item's
trip (:mod:`pocketcore._dispatch.stack`) and the fan-out
(:mod:`pocketcore._dispatch.batch`) read the plan; none resolves a setting
again or asks the executor anything.
"""

from __future__ import annotations

from typing import Any

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._core.executor import Capabilities, Executor, capabilities
from pocketcore._dispatch.attempts import single
from pocketcore._runtime.cache import NodeCache, node_cache
from pocketcore._runtime.context import batch_controls, executor_for, step_timeout
from pocketcore._runtime.limits import Limiter
from pocketcore._runtime.observe import Events, events

__all__ = ["LOCAL", "Plan", "plan_batch", "refuse_timeout"]

#: What a batch that no executor runs (a sequential batch) can do: nothing optional.
LOCAL = Capabilities(remote=False, map_blocking=None)


@attrs.frozen
class Plan:
    """How one batch runs: resolved once, read by every layer.

    Attributes:
        owner: The batch node, or the batch flow whose passes these are.
        passes: The items are a batch flow's passes (its own function runs
            each one), not ``exec`` calls: no limiter, attempts, timeout,
            cache or collecting applies to them (the nodes inside have theirs).
        blocking: Each item's work is sync (it runs on a worker thread, by
            the executor's own ``map_blocking``, or inline in a sequential
            batch).
        parallel: The items fan out through :attr:`executor`; else they run
            one after another, here.
        executor: The executor of a parallel batch (``None`` otherwise).
        caps: What :attr:`executor` declares it can do.
        limit: The most items in flight (``1`` for a sequential batch).
        limiters: What every item passes before it starts (its pacing, a
            shared limiter).
        collect: ``on_error="collect"``: a failed item is a
            :class:`~pocketcore.Failed` in its slot.
        timeout: Seconds each attempt of an async ``exec`` may take.
        cache: The node's result cache in this run, if any.
        events: The lifecycle hooks someone implements, or ``None``.
        single: Each item makes one attempt and keeps the default fallback
            (see :func:`~pocketcore._dispatch.attempts.single`).
    """

    owner: Any
    passes: bool
    blocking: bool
    parallel: bool
    executor: Executor | None = None
    caps: Capabilities = LOCAL
    limit: int | None = 1
    limiters: tuple[Limiter, ...] = ()
    collect: bool = False
    timeout: float | None = None
    cache: NodeCache | None = None
    events: Events | None = None
    single: bool = False

    @property
    def governed(self) -> bool:
        """Every attempt passes the limiters here (see :mod:`pocketcore._dispatch.govern`).

        For the items of a batch that run here: the kernel enters the
        limiters itself and hands the executor no gate; each attempt of an
        async item, and each attempt of a blocking item on its worker thread
        (waiting for its turn on the batch's event loop), its charge
        corrected by what ``exec`` reports there. Items the executor runs
        itself pass its gate before they start: once (a local executor's
        ``map_blocking``), or once per attempt (:attr:`resent`).
        """
        return bool(self.limiters) and not self.runs_elsewhere

    @property
    def resent(self) -> bool:
        """Each attempt of a remote item is a send of its own, through the limiters here.

        For a remote executor's batch with limiters: the worker makes one
        attempt per send, and the attempts (retries, waits, rate-limit
        refusals, the fallback) are decided here
        (:mod:`~pocketcore._dispatch.resend`), so that every attempt waits
        its turn at the gate and pays. The executor must report each result
        as it comes back (``reports_results``, as dask and ray do): a failed
        attempt is a result, and the item's fate, which may stop the batch,
        is decided then. Another remote executor's items make their attempts
        where they run, having passed the gate once.
        """
        return bool(self.limiters) and self.caps.remote and self.caps.reports_results

    @property
    def ticketed(self) -> bool:
        """Governed items carry a ticket: they are admitted first, then each attempt passes.

        Needed where an attempt is priced and charged (a limiter has a
        budget), where an item must enter before it is reported started (a
        listener hears single items), and for blocking items (they enter
        before a worker thread takes them). Otherwise each attempt enters
        the limiters alone (:func:`~pocketcore._dispatch.govern.gated`).
        """
        listens = self.events is not None and self.events.items
        return self.blocking or listens or any(limiter.paced for limiter in self.limiters)

    @property
    def loop_gated(self) -> bool:
        """The executor's own loop passes each attempt through the limiters, as a gate.

        For governed items that carry no ticket (async items nobody hears
        start, limiters with no rate or budget), when the executor declares
        ``gates_attempts`` and nothing would sit between the gate and the
        call that must not hold a slot or would hide a refusal: each item
        makes one attempt with the default fallback (no retry waits while
        holding a slot), its failures are not collected (the gate must see
        a refusal to try it again) and no cache writes its result (the
        write happens once the slot is given back). The gate is then what
        :func:`~pocketcore._dispatch.govern.gated` would do around each
        item, with no coroutine of its own.
        """
        return (
            self.governed
            and self.caps.gates_attempts
            and self.single
            and not self.collect
            and self.cache is None
            and not self.ticketed
        )

    @property
    def runs_elsewhere(self) -> bool:
        """The executor calls the items itself: in other processes, or its own ``map_blocking``."""
        return self.caps.remote or (self.blocking and self.caps.map_blocking is not None)


def plan_batch(owner: Any, *, parallel: bool, blocking: bool, passes: bool) -> Plan:
    """Resolve the plan of ``owner``'s batch in the current run.

    A sequential batch reads only the cache and the timeout (for a node's
    items) and who listens. A parallel one also resolves its executor, limit and controls,
    and refuses what cannot work before any item starts.

    Raises:
        ConfigError: A setting is unusable; a timeout on blocking items; a
            remote executor for a batch flow's passes; limiters on items an
            executor runs itself without gating them.
    """
    if not parallel:
        cache = None if passes else node_cache(owner, batch=True)
        # The items of an async sequential batch are timed as a plain async node's input is.
        timeout = None if passes or blocking else step_timeout(owner)
        return Plan(
            owner,
            passes,
            blocking,
            parallel=False,
            timeout=timeout,
            cache=cache,
            events=events(),
        )
    executor, limit = executor_for(owner)
    controls = batch_controls(owner)
    collect = timeout = None
    limiters: tuple[Limiter, ...] = ()
    if controls is not None and not passes:
        # A batch flow's passes are not gated: a limiter bounds the calls of
        # the nodes inside them, which take their turns themselves. A pass
        # holding a slot while its items wait for one could wait forever.
        limiters, collect, timeout = controls.limiters, controls.collect, controls.timeout
    if timeout is not None and blocking:
        raise refuse_timeout(owner, timeout)
    cache = None if passes else node_cache(owner, batch=True)
    plan = Plan(
        owner,
        passes,
        blocking,
        parallel=True,
        executor=executor,
        caps=capabilities(executor),
        limit=limit,
        limiters=limiters,
        collect=bool(collect),
        timeout=timeout,
        cache=cache,
        events=events(),
        single=not passes and single(owner, blocking=blocking),
    )
    _refuse(plan, executor)
    return plan


def _refuse(plan: Plan, executor: Executor) -> None:
    """Refuse a plan the executor cannot honour."""
    if plan.limiters and plan.runs_elsewhere and not plan.caps.gates_items:
        raise ConfigError(
            f"{type(plan.owner).__name__} has max_per_second or a limiter, but executor "
            f"{executor.name!r} runs the items itself (in other processes, or with its own "
            "map_blocking) and does not declare gates_items, so pocketcore cannot pace or "
            "limit their starts; use an executor that does (asyncio, trio, sequential, dask, ray), "
            "or drop the limiter"
        )
    if plan.caps.remote and plan.passes:
        raise ConfigError(
            f"executor {executor.name!r} runs items in other processes, but the passes of "
            f"{type(plan.owner).__name__} run prep and post against the shared store, which "
            "stays here; give the flow a local executor of its own (executor='asyncio', say) "
            "and let the batch nodes inside it use the remote one"
        )


def refuse_timeout(node: Any, timeout: float) -> ConfigError:
    """The error for a timeout on items whose ``exec`` blocks: it could not stop them."""
    return ConfigError(
        f"{type(node).__name__} has a timeout ({timeout:g} s), but its exec is blocking and "
        "runs on a worker thread (or a remote worker), where a timeout cannot stop it: the "
        "attempt would go on running after the batch ends. Make exec async (an "
        "AsyncParallelBatchNode), or bound the call inside exec itself"
    )
