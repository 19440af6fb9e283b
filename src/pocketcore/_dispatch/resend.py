"""Every attempt of a remote item passes the limiters here: one attempt per send.

For a batch that a remote executor runs (``dask``, ``ray``) and that has
limiters (:attr:`~pocketcore._dispatch.plan.Plan.resent`), the limiters
live in this process, so the attempts are decided here, not on the worker:

- on the worker, :func:`once` makes one attempt of the item (the attempt
  number travels with a re-sent item, :class:`Again`, and is the item's
  ``cur_retry`` there) and hands an attempt that failed back as a value, a
  :class:`FailedAttempt` carrying its exception, instead of failing the
  executor's ``map``. A ``BaseException`` that is not an ``Exception`` still
  fails the batch;
- here, :class:`Resending` runs the batch through the executor's ``map``,
  its gate holding the batch's limiters (and its limit, across the sends),
  and decides for each attempt that failed, as :mod:`.attempts` and
  :mod:`.govern` do for items that run here: a provider's rate-limit
  refusal pauses the limiters and is sent again without spending one of
  ``max_retries``, until the limiters' ``patience`` runs out; another
  failure is sent again after the node's ``wait`` (holding no slot while it
  waits) until ``max_retries`` are spent, and then the node's fallback runs
  here, and the collect policy applies. Each send is one more ``map`` of
  the one item, so each passes the gate again: it waits its turn and pays.

A send's result that ``exec`` returned is stored in the result cache here
as it comes back; what the item reported using comes back with each
attempt (:func:`~pocketcore._dispatch.remote.metered`) and adds up, and
the limiters learn from it what to charge the next sends (their estimate:
the mean reported). A send is not corrected to what it reported using: its
gate charged it the estimate and keeps no record of the charge.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import attrs

from pocketcore._core.errors import attach_failures
from pocketcore._core.executor import Gate
from pocketcore._core.results import Failed
from pocketcore._dispatch.cached import CachedBatch
from pocketcore._dispatch.govern import calm, try_again
from pocketcore._dispatch.plan import Plan
from pocketcore._dispatch.remote import Used
from pocketcore._runtime.backoff import pause_before
from pocketcore._runtime.context import CUR_RETRY, ItemState
from pocketcore._runtime.gate import gate_of
from pocketcore._runtime.limits import Limiter
from pocketcore._runtime.usage import NOTHING

__all__ = ["Again", "FailedAttempt", "Resending", "WorkerTraceback", "bounded_gate", "once"]

Call = Callable[[Any], Any]
RunMap = Callable[..., Awaitable[list[Any]]]


# --- on the worker ---------------------------------------------------------------


@attrs.frozen
class FailedAttempt:
    """An attempt of a remote item that failed, sent back as its result.

    Attributes:
        exception: What the attempt raised.
        cur_retry: The item's ``cur_retry`` once the attempt ended (an
            ``exec`` may assign it: a sync node's attempts stop on it).
        trace: The exception's traceback on the worker, as text (a
            traceback does not pickle).
    """

    exception: Exception
    cur_retry: int
    trace: str = ""

    def raised(self) -> Exception:
        """The exception, its worker's traceback as its cause (unless it has one)."""
        exc = self.exception
        if self.trace and exc.__cause__ is None:
            exc.__cause__ = WorkerTraceback(self.trace)
        return exc


class WorkerTraceback(Exception):
    """Where a remote item's failed attempt raised, on its worker: the cause of its exception."""

    def __str__(self) -> str:
        return f"on the worker:\n{self.args[0]}"


@attrs.frozen
class Again:
    """An item sent again, with the number of the attempt it is (from 0)."""

    attempt: int
    item: Any


def once(node: Any, call: Call, *, blocking: bool) -> Call:
    """``call`` (``exec``, timed) making one attempt of an item, or of an :class:`Again`.

    The attempt's number is the item's ``cur_retry`` (an item state of its
    own: a worker may run several items of the node at once); an
    ``Exception`` comes back as a :class:`FailedAttempt`.
    """
    return functools.partial(_once if blocking else _once_async, node, call)


def _state(node: Any, sent: Any) -> tuple[Any, ItemState]:
    attempt, item = (sent.attempt, sent.item) if type(sent) is Again else (0, sent)
    state = ItemState(node)
    state.n = node.__dict__["cur_retry"] = attempt
    return item, state


def _once(node: Any, call: Call, sent: Any) -> Any:
    item, state = _state(node, sent)
    token = CUR_RETRY.set(state)
    try:
        return call(item)
    except Exception as exc:
        return _failed(exc, state)
    finally:
        CUR_RETRY.reset(token)


def _failed(exc: Exception, state: ItemState) -> FailedAttempt:
    return FailedAttempt(exc, state.n, "".join(traceback.format_exception(exc)))


async def _once_async(node: Any, call: Callable[[Any], Awaitable[Any]], sent: Any) -> Any:
    item, state = _state(node, sent)
    token = CUR_RETRY.set(state)
    try:
        return await call(item)
    except Exception as exc:
        return _failed(exc, state)
    finally:
        CUR_RETRY.reset(token)


# --- here --------------------------------------------------------------------------


def _unwrapped(outcome: Any) -> tuple[Any, Mapping[str, float]]:
    """A send's outcome without its usage, and the usage (see ``metered``)."""
    if type(outcome) is Used:
        return outcome.value, outcome.usage
    return outcome, NOTHING


def bounded_gate(plan: Plan) -> Gate:
    """The gate of every send of ``plan``'s batch: its limit first, then its limiters.

    The executor's ``limit`` bounds one ``map``; a re-send is another, so
    the batch's limit is a slot of the gate too, taken before any shared
    limiter's (an item waiting for the batch's own room holds none of them).
    """
    limiters = plan.limiters
    if plan.limit is not None:
        limiters = (Limiter(max_concurrency=plan.limit, name="max_concurrency"), *limiters)
    return gate_of(limiters)


class _Kept:
    """The inputs as the executor pulls them, each kept until its item is settled."""

    def __init__(self, items: Iterable[Any], sent: dict[int, Any]) -> None:
        self.items, self.sent = items, sent

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]  # TypeError when unsized, as wanted

    def __iter__(self) -> Iterator[Any]:
        sent = self.sent
        for position, payload in enumerate(self.items):
            sent[position] = payload
            yield payload


class Resending:
    """A remote batch whose every attempt passes its limiters here (see the module's docstring).

    Args:
        plan: The batch's plan (``resent``).
        run_map: The executor's ``map`` (or ``map_blocking``).
        call: What the worker runs for each send (:func:`once`, perhaps
            metered and carrying observers' contexts).
        cached: The batch's cache lookup, whose misses these are, if any.
        paired: Each input is a ``(contexts, item)`` pair (see
            :func:`~pocketcore._dispatch.report.sending`).
    """

    def __init__(
        self, plan: Plan, run_map: RunMap, call: Call, cached: CachedBatch | None, paired: bool
    ) -> None:
        self.plan, self.run_map, self.call = plan, run_map, call
        self.cached, self.paired = cached, paired
        self.node = plan.owner
        self.gate = bounded_gate(plan)
        self.sent: dict[int, Any] = {}  # what was sent for each item not settled yet
        self.settled: dict[int, Any] = {}  # the results decided here, after a failed attempt
        self.used: dict[int, dict[str, float]] = {}
        self.failure: BaseException | None = None
        self.group: anyio.abc.TaskGroup | None = None

    async def run(
        self, inputs: Iterable[Any], usages: list[Mapping[str, float]] | None
    ) -> list[Any]:
        """Every item's result, in input order; ``usages`` gets what each reported using.

        Raises:
            BaseException: An item's failure once its attempts and fallback
                are over (others as notes), or the ``map``'s own; only once
                no send of the batch runs any more.
        """
        outcomes: list[Any] = []
        cancelled = anyio.get_cancelled_exc_class()
        async with anyio.create_task_group() as group:
            self.group = group
            try:
                # The executor reports each outcome as it comes back (the
                # plan's resent asks for it): an item's further attempts start then.
                outcomes = await self.run_map(
                    self.call,
                    _Kept(inputs, self.sent),
                    limit=self.plan.limit,
                    gate=self.gate,
                    on_result=self.take,
                )
            except cancelled:
                raise  # the caller's, or the group's own after a failure
            except BaseException as exc:
                self.fail(exc)
        if self.failure is not None:
            raise self.failure
        settled = self.settled
        if usages is not None:
            usages.extend(self.used.get(p, NOTHING) for p in range(len(outcomes)))
        return [
            settled[p] if p in settled else _unwrapped(outcome)[0]
            for p, outcome in enumerate(outcomes)
        ]

    def fail(self, exc: BaseException) -> None:
        """Stop the batch for ``exc`` (the first failure is raised, the others noted on it)."""
        if self.failure is None:
            self.failure = exc
        else:
            attach_failures(self.failure, [exc])
        assert self.group is not None
        self.group.cancel_scope.cancel()

    def take(self, position: int, outcome: Any) -> None:
        """The outcome of an item's first send: its result, or a failed attempt to decide on."""
        value = self._count(position, outcome)
        if type(value) is FailedAttempt:
            # A refusal pauses the limiters now, before the executor admits
            # another item; the rest is decided in a task of the item's own.
            since = try_again(self.plan.limiters, value.raised(), None)
            assert self.group is not None
            self.group.start_soon(self._decide, position, value, since)
        else:
            self._done(position, value)

    def _count(self, position: int, outcome: Any) -> Any:
        value, usage = _unwrapped(outcome)
        if usage:
            total = self.used.setdefault(position, {})
            for unit, amount in usage.items():
                total[unit] = total.get(unit, 0.0) + amount
            for limiter in self.plan.limiters:
                # The estimate the next sends are charged is the mean reported.
                learned = {unit: usage[unit] for unit in limiter.units() if unit in usage}
                if learned:
                    limiter.learn(learned)
        return value

    def _done(self, position: int, value: Any) -> None:
        """An attempt returned ``value``: the limiters ease off, the cache keeps it."""
        self.sent.pop(position, None)
        calm(self.plan.limiters)
        cached = self.cached
        if cached is not None:
            one = cached.missed[position]
            if one.key is not None:
                cached.cache.save(one.key, value, one.index)

    async def _decide(self, position: int, failed: FailedAttempt, since: float | None) -> None:
        try:
            self.settled[position] = await self._attempts(position, failed, since)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            self.fail(exc)
        finally:
            self.sent.pop(position, None)

    async def _attempts(self, position: int, failed: FailedAttempt, since: float | None) -> Any:
        """The item's further attempts, after ``failed`` (its first), and its result.

        ``since``: when the item's run of refusals began, while it lasts
        (see :func:`~pocketcore._dispatch.govern.try_again`).
        """
        node, plan = self.node, self.plan
        last = node.max_retries - 1
        attempt = 0
        while True:
            exc = failed.raised()
            if since is None:  # not a refusal (or patience ran out): it spends an attempt
                # A sync node's attempts stop on cur_retry read back, as PocketFlow's do.
                if (failed.cur_retry if plan.blocking else attempt) == last:
                    return await self._fall_back(position, exc, failed.cur_retry)
                if attempt >= last:
                    return None  # a sync exec moved cur_retry past its fallback
                pause = pause_before(node.wait, attempt, exc) if node.wait else 0.0
                if pause > 0:
                    await anyio.sleep(pause)  # holding no slot
                attempt += 1
            outcome = await self._send(position, attempt)
            value = self._count(position, outcome)
            if type(value) is not FailedAttempt:
                self._done(position, value)
                return value
            failed = value
            since = try_again(plan.limiters, failed.raised(), since)

    async def _send(self, position: int, attempt: int) -> Any:
        """Send the item again, as attempt ``attempt``: through the gate, like any item."""
        payload = self.sent[position]
        if self.paired:
            contexts, item = payload
            again: Any = (contexts, Again(attempt, item))
        else:
            again = Again(attempt, payload)
        outcomes = await self.run_map(
            self.call, [again], limit=None, gate=self.gate, on_result=None
        )
        return outcomes[0]

    async def _fall_back(self, position: int, exc: Exception, cur_retry: int) -> Any:
        """The node's fallback, here, once the item's attempts are spent; collected if it fails."""
        node, plan = self.node, self.plan
        payload = self.sent[position]
        item = payload[1] if self.paired else payload
        state = ItemState(node)
        state.n = cur_retry
        token = CUR_RETRY.set(state)
        try:
            if plan.blocking:  # on a thread: it may block, and the loop serves the batch
                return await anyio.to_thread.run_sync(node.exec_fallback, item, exc)
            return await node.exec_fallback_async(item, exc)
        except Exception as failure:
            if not plan.collect:
                raise
            return Failed(failure, item, -1, cur_retry + 1)  # its index: number_failures
        finally:
            CUR_RETRY.reset(token)
