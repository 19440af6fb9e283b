"""One batch on the cluster, from the client's side: submit lazily, collect in order, stop cleanly.

Each item is one dask task (see :mod:`pocketcore_dask._worker`). With a
limit ``k``, at most ``k`` tasks are submitted and unfinished, and the next
item is pulled from the input only when one of them finishes. When an item
fails, the input is not pulled any further, the batch's stop flag is set,
the running async items are interrupted, and ``map`` waits until every task
it submitted has finished (the ones that had not started finish at once,
doing nothing) before it raises. Cancelling the caller does the same.

Each result is handed to the kernel's ``on_result`` as soon as it is back
(the result cache writes it then, in this process, so a run killed later
loses none that came back). What ``on_result`` raises stops the batch like
an item's failure.

With the kernel's ``gate`` (the batch's limiters: ``max_per_second``, a
shared limiter), each item, once pulled, enters the gate before it is
submitted, and leaves it when its task settles: from the small task that
awaits the task's future, not from the loop that submits, so a slot comes
back even while that loop waits at the gate for the next item. That wait is
one more thing the loop waits for, beside the tasks: results are taken, and
a failure stops the batch, while an item waits for its turn.

While the batch waits, it says so on stderr when the scheduler has no worker
to run its tasks: dask would wait for one forever, in silence.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import anyio
from distributed import Client, Event, Future
from distributed.scheduler import KilledWorker

from pocketcore import Gate, attach_failures

from ._worker import Exited, Stopped, Unsendable, forget, interrupt

__all__ = ["OnResult", "SchedulerLost", "run_batch"]

_END = object()
_Outcome = tuple[bool, Any]
#: The kernel's callback for each result that came back: its position and value.
OnResult = Callable[[int, Any], None]


def _name(fn: Callable[..., Any]) -> str:
    """What the items run: the node class, when there is one."""
    owner = getattr(fn, "__self__", None)
    if owner is None and isinstance(fn, functools.partial) and fn.args:
        owner = fn.args[0]
    return type(owner).__name__ if owner is not None else getattr(fn, "__name__", "item")


def _unwrap(exc: BaseException, index: int, name: str) -> BaseException:
    """The item's own exception: a ``SystemExit`` the worker wrapped is raised as itself.

    A result that could not travel back is one line naming the node and the item.
    """
    if isinstance(exc, Unsendable):
        from pocketcore import PocketcoreError

        return PocketcoreError(
            f"cannot send back the result of item {index} of node {name} from executor "
            f"'dask' ({exc})"
        )
    if not isinstance(exc, Exited):
        return exc
    own = exc.exit.with_traceback(exc.__traceback__)
    _note(own, f"raised by item {index} of {name} on a dask worker")
    return own


def _note(exc: BaseException, note: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10: same attribute that 3.11's add_note fills
        notes = getattr(exc, "__notes__", None)
        if notes is None:
            notes = []
            exc.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)


class SchedulerLost(ConnectionError):
    """The client lost its scheduler while a batch ran: the batch's results cannot come back."""


def _lost_scheduler(exc: BaseException) -> bool:
    """Whether ``exc`` is dask's cancellation of a task whose client lost the scheduler."""
    return (
        isinstance(exc, concurrent.futures.CancelledError)
        and getattr(exc, "reason", None) == "scheduler-connection-lost"
    )


async def _settle(future: Future[Any], leave: Callable[[], None] | None) -> _Outcome:
    """Wait for one task; ``(True, result)`` or ``(False, exception)``, never raising its error.

    ``leave``, the gate's, is called as the task settles, whatever its
    outcome: from this waiter of the one task, before anyone sees it done,
    and never from the loop that submits (which may be waiting at the gate).
    """
    try:
        return True, await future
    except asyncio.CancelledError:
        raise  # the waiting was cancelled, not the task
    except BaseException as exc:  # the item's own exception, as the worker raised it
        return False, exc
    finally:
        if leave is not None:
            leave()


class _Reporter:
    """Hands each result that came back to the kernel's ``on_result``, in this process.

    What the callback raises (a cache store that failed) is given back, to be
    treated as a failure of the batch. After that the callback is not called
    again: the batch is stopping, and a store that failed once would only
    fail again, adding nothing but notes.
    """

    __slots__ = ("broken", "on_result")

    def __init__(self, on_result: OnResult | None) -> None:
        self.on_result, self.broken = on_result, False

    def __call__(self, index: int, value: Any) -> Exception | None:
        if self.on_result is None or self.broken:
            return None
        try:
            self.on_result(index, value)
        except Exception as exc:
            self.broken = True
            return exc
        return None


class _Gated:
    """The batch's side of the kernel's gate: the item waiting to enter it, and its entry.

    Without a gate every item is admitted at once. With one, an item that
    cannot enter at once is held here while a task enters for it, which the
    batch waits for beside its running tasks; only one item waits at a time.
    """

    __slots__ = ("dropped", "entering", "gate", "item")

    def __init__(self, gate: Gate | None) -> None:
        self.gate = gate
        self.entering: asyncio.Future[None] | None = None
        self.item: Any = _END
        self.dropped: asyncio.Future[None] | None = None  # an entry given up, until it is over

    def admit(self, item: Any) -> bool:
        """Whether ``item`` may be submitted now; else it waits (see :meth:`waits`)."""
        if self.gate is None or self.gate.try_enter():
            return True
        self.item = item
        self.entering = asyncio.ensure_future(self.gate.enter())
        return False

    @property
    def busy(self) -> bool:
        """Whether an item waits to enter the gate."""
        return self.entering is not None

    def waits(self) -> list[asyncio.Future[None]]:
        """What to wait for beside the tasks: the waiting item's entry, if any."""
        return [] if self.entering is None else [self.entering]

    def admitted(self) -> Any:
        """The waiting item, now that it has entered (what entering raised is raised)."""
        entering, self.entering = self.entering, None
        assert entering is not None
        entering.result()
        item, self.item = self.item, _END
        return item

    @property
    def leave(self) -> Callable[[], None] | None:
        """What leaves an admitted item's entry (``None`` without a gate)."""
        return None if self.gate is None else self.gate.leave

    def never_started(self) -> None:
        """Leave the entry of an item that was admitted but never submitted."""
        if self.gate is not None:
            self.gate.leave()

    def drop(self) -> None:
        """The batch stops: the waiting item never starts, and an entry it got is left."""
        entering, self.entering, self.item = self.entering, None, _END
        if entering is not None:
            entering.cancel()  # a no-op if it entered meanwhile; then it is left
            entering.add_done_callback(self._leave_if_entered)
            self.dropped = entering

    async def settled(self) -> None:
        """Wait until an entry given up is over (and left, if it had entered)."""
        if self.dropped is not None:
            # Its callback was added first: it has run when this wait returns.
            await asyncio.wait([self.dropped])

    def _leave_if_entered(self, entering: asyncio.Future[None]) -> None:
        if self.gate is not None and not entering.cancelled() and entering.exception() is None:
            self.gate.leave()


class _Batch:
    """The tasks of one batch: submitted in input order, each settled into its place.

    ``waiting`` maps the task awaiting each submitted future to the item's
    position; ``futures`` holds the futures not settled yet. ``stopped`` is
    set when a task reports that the batch has stopped (a failure elsewhere
    set the flag, and its report is on the way) or a failure is taken: no
    further item is submitted.
    """

    def __init__(
        self,
        client: Client,
        work: Callable[..., Any],
        prefix: str,
        name: str,
        report: _Reporter,
        gate: Gate | None,
    ) -> None:
        self.client, self.work, self.prefix, self.name = client, work, prefix, name
        self.report = report
        self.gated = _Gated(gate)
        self.waiting: dict[asyncio.Future[_Outcome], int] = {}
        self.futures: dict[int, Future[Any]] = {}
        self.results: list[Any] = []
        self.failures: list[BaseException] = []
        self.stopped = False

    @property
    def busy(self) -> bool:
        """Whether a task is unsettled, or an item waits at the gate."""
        return bool(self.waiting) or self.gated.busy

    def fill(self, source: Iterator[Any], limit: int | None) -> None:
        """Submit items while there is room (``limit``) and none waits at the gate."""
        gated, waiting = self.gated, self.waiting
        while not self.stopped and not gated.busy and (limit is None or len(waiting) < limit):
            item = next(source, _END)
            if item is _END:
                return
            if gated.admit(item):
                self.submit(item)

    def submit(self, item: Any) -> None:
        """Send an admitted item to the cluster; its entry is left when its task settles."""
        index = len(self.results)
        self.results.append(None)
        try:
            future = self.client.submit(self.work, item, key=(self.prefix, index), pure=False)
        except BaseException:
            self.gated.never_started()
            raise
        self.futures[index] = future
        self.waiting[asyncio.ensure_future(_settle(future, self.gated.leave))] = index

    async def step(self) -> None:
        """Wait until a task settles, or the item at the gate enters; take what came."""
        entering = self.gated.waits()
        pending: list[asyncio.Future[Any]] = [*self.waiting, *entering]
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        entered = bool(entering) and entering[0] in done
        done.difference_update(entering)
        taken = _take(
            done, self.waiting, self.futures, self.results, self.failures, self.name, self.report
        )
        self.stopped = taken or self.stopped
        if self.stopped:
            self.gated.drop()
        elif entered:
            self.submit(self.gated.admitted())


async def run_batch(
    client: Client,
    task: Callable[..., Any],
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    limit: int | None,
    *,
    warn_after: float,
    on_result: OnResult | None = None,
    gate: Gate | None = None,
) -> list[Any]:
    """Run ``task(fn, stop_name, item)`` on the cluster for every item; results in input order.

    ``warn_after``: seconds without a worker at the scheduler after which the
    batch says on stderr that it is waiting for one. ``on_result``: called
    here with each item's position and result as soon as it is back (also
    for items that finish while a failed batch winds down), before this
    returns or raises. ``gate``: entered by each item before it is
    submitted, left when its task settles (see the module's docstring).

    Raises:
        BaseException: The first failure the client learned of (the item's own
            exception, a ``SystemExit`` included), with the others as notes;
            or whatever pulling the input raised; or the caller's
            cancellation. In every case only once no task of the batch is
            running any more.
    """
    token = uuid.uuid4().hex
    # (distributed leaves Event unannotated.)
    stop = Event(f"pocketcore-stop-{token}", client=client)  # type: ignore[no-untyped-call]
    # One function object for the whole batch: dask serializes it once.
    work = functools.partial(task, fn, stop.name)
    name = _name(fn)
    batch = _Batch(client, work, f"pocketcore-{name}-{token}", name, _Reporter(on_result), gate)
    source: Iterator[Any] = iter(items)
    halt = functools.partial(
        _halt, client, stop, batch.waiting, batch.futures, name, batch.report, batch.gated
    )
    watch = asyncio.ensure_future(_warn_without_workers(client, warn_after))
    try:
        while True:
            batch.fill(source, limit)
            if batch.failures or not batch.busy:
                break
            await batch.step()
    except BaseException as exc:
        # The caller was cancelled, or pulling the input raised (the kernel
        # names an item that cannot be pickled there), or the gate did.
        batch.gated.drop()
        batch.failures.extend(await halt())
        attach_failures(exc, batch.failures)
        raise
    finally:
        watch.cancel()
    failures, stopped, results = batch.failures, batch.stopped, batch.results
    if failures:
        failures.extend(await halt())
        attach_failures(failures[0], failures[1:])
        raise failures[0]
    if stopped:
        # Only a failing item sets the flag, and its failure then arrives
        # too, unless dask re-ran it elsewhere (its worker died) and it passed.
        late = await halt()
        lost = RuntimeError(
            "the batch was stopped by an item that failed on a worker which then died; "
            "dask re-ran it elsewhere, but the items it had stopped did not run"
        )
        attach_failures(lost, late)
        raise lost
    return results


def _take(
    done: Iterable[asyncio.Future[_Outcome]],
    waiting: dict[asyncio.Future[_Outcome], int],
    futures: dict[int, Future[Any]],
    results: list[Any],
    failures: list[BaseException],
    name: str,
    report: _Reporter,
) -> bool:
    """Record settled tasks in input order: each result in its place, and reported.

    Each failure is recorded unwrapped, and so is what reporting a result
    raised. Returns whether one of them stopped the batch: a failure, or a
    task that found the stop flag set by a failure whose report is still on
    the way.
    """
    stopped = False
    for settled in sorted(done, key=waiting.__getitem__):
        index = waiting.pop(settled)
        del futures[index]
        ok, value = settled.result()
        if not ok:
            stopped = True
            failure = _failure(value, index, name, failures)
            if failure is not None:
                failures.append(failure)
        elif isinstance(value, Stopped):
            stopped = True
        else:
            results[index] = value
            failed = report(index, value)
            if failed is not None:
                stopped = True
                failures.append(failed)
    return stopped


def _failure(
    exc: BaseException, index: int, name: str, failures: list[BaseException]
) -> BaseException | None:
    """What the batch raises for item ``index``'s failure; ``None`` when already said."""
    if _lost_scheduler(exc):
        # One error for the one cause, not one per item in flight.
        if any(isinstance(f, SchedulerLost) for f in failures):
            return None
        return SchedulerLost(
            f"lost the connection to the dask scheduler while item {index} of {name} "
            "was on the cluster: its result, and those of the batch's other unfinished "
            "items, cannot come back (was the scheduler stopped, or the network cut?)"
        )
    if isinstance(exc, KilledWorker):
        _note(exc, f"item {index} of {name}: the dask workers running it died each time")
    return _unwrap(exc, index, name)


def _known_workers(client: Client) -> int:
    """How many workers the scheduler had when the client last asked (it asks every few seconds)."""
    info = client.scheduler_info()
    # Newer versions of distributed count the workers without listing them.
    return int(info.get("n_workers", len(info.get("workers", {}))))


async def _no_workers(client: Client) -> bool:
    """Whether the scheduler has no worker now: asked afresh when the client's last word says so."""
    if _known_workers(client) or client.scheduler is None:
        return False
    info = await client.scheduler.identity()
    return not info.get("n_workers", len(info.get("workers", {})))


async def _warn_without_workers(client: Client, after: float) -> None:
    """Say on stderr when the scheduler has had no worker for ``after`` seconds.

    dask keeps the tasks until a worker connects, however long that takes,
    so a scheduler started without workers (or whose workers all went away)
    looks like a hang. Said once each time the workers are gone, not repeated
    while they stay away. Runs until the batch cancels it.
    """
    address = client.scheduler.address if client.scheduler is not None else "the scheduler"
    since: float | None = None  # when the scheduler was first seen without workers
    said = False
    while True:
        now = time.monotonic()
        if _known_workers(client):
            since, said = None, False
        elif since is None:
            since = now
        elif not said and now - since >= after:
            said = True
            print(
                f"pocketcore-dask: no dask workers connected to {address} after {after:g} s; "
                "waiting",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.sleep(min(after / 4, 1.0))


async def _halt(
    client: Client,
    stop: Event,
    waiting: dict[asyncio.Future[_Outcome], int],
    futures: dict[int, Future[Any]],
    name: str,
    report: _Reporter,
    gated: _Gated,
) -> list[BaseException]:
    """Stop the batch and wait until none of its tasks runs; return the failures seen meanwhile.

    The results of items that finish meanwhile are reported, not kept: the
    batch fails, but a cache can still keep what they computed.

    Shielded: the contract says nothing of the batch may still run once
    ``map`` has raised, so a cancellation arriving now is absorbed here and
    the caller's own exception is raised afterwards. Failing to reach the
    scheduler only makes the wait longer (tasks that did not see the flag run
    to completion), never shorter.

    Tasks are not cancelled (dask cannot stop one that runs: cancelling it
    would only stop the wait), except when the scheduler has no worker: its
    tasks are then all queued, none runs, and they would wait forever. A
    cancelled task is not a failure of its item.
    """
    failures: list[BaseException] = []
    with anyio.CancelScope(shield=True):
        for step in (
            stop.set,
            functools.partial(client.run, interrupt, stop.name, on_error="ignore"),
        ):
            with contextlib.suppress(Exception):
                await _absorbing(step)
        while waiting:
            with contextlib.suppress(asyncio.CancelledError):
                # A native task.cancel() (asyncio.timeout, TaskGroup) is not
                # held off by anyio's shield: absorb it and keep waiting.
                await asyncio.wait(list(waiting), timeout=1.0)
            for settled in [w for w in waiting if w.done()]:
                index = waiting.pop(settled)
                del futures[index]
                failure = _late(settled.result(), index, name, report)
                if failure is not None:
                    failures.append(failure)
            if waiting:
                with contextlib.suppress(Exception):
                    await _absorbing(functools.partial(_drop_if_no_workers, client, futures))
        # Each settled task has left the gate as it settled; an item that was
        # waiting to enter leaves once its entry is over.
        await _absorbing(gated.settled)
        for step in (
            functools.partial(client.run, forget, stop.name, on_error="ignore"),
            stop.clear,  # frees the flag on the scheduler
        ):
            with contextlib.suppress(Exception):
                await _absorbing(step)
    return failures


def _late(outcome: _Outcome, index: int, name: str, report: _Reporter) -> BaseException | None:
    """A task that settled while the batch stopped: its result reported, or its failure."""
    ok, value = outcome
    if ok:
        return None if isinstance(value, Stopped) else report(index, value)
    if isinstance(value, concurrent.futures.CancelledError):
        return None  # cancelled by the halt itself: not a failure of its item
    return _unwrap(value, index, name)


async def _drop_if_no_workers(client: Client, futures: dict[int, Future[Any]]) -> None:
    """Cancel the tasks when the scheduler has no worker: then none of them runs."""
    if await _no_workers(client):
        await client.cancel(list(futures.values()))  # type: ignore[no-untyped-call]


async def _absorbing(call: Callable[[], Any]) -> None:
    """Await ``call()``, retrying when a native cancellation interrupts it."""
    while True:
        try:
            await call()
        except asyncio.CancelledError:
            continue
        return
