"""One batch on Ray, from the driver's side: submit lazily, collect in order, stop cleanly.

Each item is one Ray task (:func:`pocketcore_ray._worker.run_item`). With a
limit ``k``, at most ``k`` tasks are submitted and unfinished, and the next
item is pulled only when one of them settles. With the kernel's ``gate`` (the
batch's limiters), each item, once pulled, enters it before it is submitted
and leaves it when its task settles; while an item waits at the gate the
batch keeps taking results, and a failure stops it.

When an item fails, nothing more is pulled or submitted, the batch's stop
flag is set (one not started never starts; one running is interrupted by its
worker, which ends an async item at its next ``await`` and a sync one at its
next Python line), and ``map`` raises only once each task has settled. A
cancelled caller does the same; on the process's own local instance the
workers of items still running a few seconds later kill themselves, so that
Ctrl-C does not wait for a long computation.

Not ``ray.cancel``: Ray 2.60's driver aborts (a failed internal check,
``Tried to complete task that was not pending``, exit status 1, nothing
printed) when it cancels a task whose result is arriving at that moment,
a window nothing here can see. It is used only for a batch without a flag.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._worker import RemoteTraceback, Unsendable, kept_failures, stop

if TYPE_CHECKING:
    from pocketcore import Gate

__all__ = ["WorkerDied", "item_name", "run_batch"]

_END = object()
OnResult = Callable[[int, Any], None]
#: What a submitted task's ``ObjectRef.future()`` is: settled in Ray's own thread.
Settling = concurrent.futures.Future[Any]
#: How deep :func:`item_name` looks through the layers of the kernel's work.
_DEPTH = 12


def _node_error() -> type[Exception]:
    from pocketcore import PocketcoreError

    return PocketcoreError


class WorkerDied(RuntimeError):
    """The Ray worker process running an item died (killed, or crashed) before it ended."""


def item_name(fn: Callable[..., Any]) -> str:
    """The class name of the node whose items ``fn`` runs (``"item"`` when none is found).

    ``fn`` is the kernel's per-item work: layers of closures and bound
    methods around the node's ``exec``. Used for error messages only.
    """
    seen: set[int] = set()
    todo: list[tuple[Any, int]] = [(fn, 0)]
    while todo:
        obj, depth = todo.pop(0)
        if id(obj) in seen or depth > _DEPTH:
            continue
        seen.add(id(obj))
        if hasattr(obj, "successors") and hasattr(obj, "params"):
            return type(obj).__name__
        inner: list[Any] = []
        for name in ("__self__", "func", "fn", "__wrapped__"):
            value = getattr(obj, name, None)
            if value is not None:
                inner.append(value)
        inner.extend(getattr(obj, "args", ()) if isinstance(obj, functools.partial) else ())
        for cell in getattr(obj, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                inner.append(cell.cell_contents)
        todo.extend((value, depth + 1) for value in inner if callable(value) or _is_node(value))
    return "item"


def _is_node(value: Any) -> bool:
    return hasattr(value, "successors") and hasattr(value, "params")


class _Batch:
    """The tasks of one batch: submitted in input order, each settled into its place."""

    def __init__(
        self,
        submit: Callable[[int, Any], Any],
        name: str,
        gate: Gate | None,
        on_result: OnResult | None,
        batch: str | None,
    ) -> None:
        self.submit_one, self.name, self.gate, self.on_result = submit, name, gate, on_result
        self.batch = batch
        #: Items whose tasks came back cancelled after the batch stopped: one
        #: may have failed first (see :meth:`recover`).
        self.unheard: list[int] = []
        #: The future awaiting each unsettled task -> (position, the task's ObjectRef).
        self.waiting: dict[Settling, tuple[int, Any]] = {}
        #: Tasks sent and not watched yet (see :meth:`watch`): (position, ObjectRef).
        self.sent: list[tuple[int, Any]] = []
        self.results: list[Any] = []
        self.failures: list[BaseException] = []
        #: An item pulled and waiting at the gate, and its entry.
        self.held: Any = _END
        self.entering: asyncio.Future[None] | None = None
        self.stopped = False
        #: Settled futures not taken yet (appended from Ray's thread), the event
        #: that says there are some, and whether setting it is on its way.
        self.done: collections.deque[Settling] = collections.deque()
        self.wake = asyncio.Event()
        self.waking = False
        self.loop = asyncio.get_running_loop()

    def fill(self, source: Iterator[Any], limit: int | None) -> None:
        """Submit items while there is room and no item waits at the gate; then watch them."""
        try:
            while not self.stopped and self.entering is None:
                if limit is not None and len(self.waiting) + len(self.sent) >= limit:
                    return
                item = next(source, _END)
                if item is _END:
                    return
                gate = self.gate
                if gate is not None and not gate.try_enter():
                    self.held = item
                    self.entering = asyncio.ensure_future(gate.enter())
                    return
                self.submit(item)
        finally:
            self.watch()

    def submit(self, item: Any) -> None:
        """Send an item (its gate entered, if any) to Ray; :meth:`watch` then waits for it."""
        index = len(self.results)
        self.results.append(None)
        try:
            ref = self.submit_one(index, item)
        except BaseException:
            if self.gate is not None:
                self.gate.leave()
            raise
        self.sent.append((index, ref))

    def watch(self) -> None:
        """Have each task sent since the last call report when it settles.

        Once the items at hand are all sent, not as each is: a completion
        reported through its future runs Python code in Ray's own thread,
        which would contend with the submitting thread for the GIL (and
        make each submission several times slower) while tasks sent first
        complete.
        """
        for index, ref in self.sent:
            future = ref.future()
            self.waiting[future] = (index, ref)
            future.add_done_callback(self._settled)
        self.sent.clear()

    def _settled(self, future: Settling) -> None:
        """A task settled (in Ray's thread): queue it, and wake the loop unless that is on its way.

        One wake-up for however many results arrive meanwhile: a batch of
        short items would otherwise wake the event loop once per item.
        """
        self.done.append(future)
        if not self.waking:
            self.waking = True
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                self.loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        self.waking = False
        self.wake.set()

    def _arrived(self) -> list[Settling]:
        """The settled tasks not taken yet, in input order."""
        arrived = []
        while self.done:
            future = self.done.popleft()
            if future in self.waiting:
                arrived.append(future)
        return sorted(arrived, key=self._index)

    async def step(self) -> None:
        """Wait until a task settles or the held item enters the gate; take what came.

        Settled tasks are queued by their futures' callbacks, so a wait costs
        the same with ten tasks unsettled or ten thousand.
        """
        entering = self.entering
        if not self.done:
            self.wake.clear()
            if entering is None:
                await self.wake.wait()
            else:
                woken = asyncio.ensure_future(self.wake.wait())
                either: list[asyncio.Future[Any]] = [woken, entering]
                try:
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
        for future in self._arrived():
            self.take(future)
        if entering is not None and entering.done():
            self.entering = None
            item, self.held = self.held, _END
            entering.result()  # what the gate raised, raised here
            if self.stopped:
                self.leave()
            else:
                self.submit(item)
                self.watch()

    def _index(self, future: Settling) -> int:
        return self.waiting[future][0]

    def leave(self) -> None:
        if self.gate is not None:
            self.gate.leave()

    def take(self, future: Settling, *, late: bool = False) -> None:
        """Record one settled task: its result in place (and reported), or its failure."""
        index, _ = self.waiting.pop(future)
        self.leave()
        ok, value = _outcome(future, index, self.name)
        if ok is None:  # cancelled or skipped by the batch's own stop: not a failure
            # Skipped before the batch knew: a failure is on its way to it.
            self.stopped = True
            if late:
                self.unheard.append(index)
            return
        if late and isinstance(value, (KeyboardInterrupt, asyncio.CancelledError)):
            # Ray's cancellation, as it reached a running item: not its failure
            self.unheard.append(index)
            return
        if ok:
            if not late:
                self.results[index] = value
            if self.on_result is not None and not self.reporting_broken:
                try:
                    self.on_result(index, value)
                except Exception as exc:  # a cache store that failed: the batch fails
                    self.reporting_broken = True
                    self.fail(exc)
            return
        self.fail(value)

    reporting_broken = False

    def fail(self, exc: BaseException) -> None:
        self.failures.append(exc)
        self.stopped = True

    async def halt(self, *, kill_after: float | None = None) -> None:
        """Stop: drop the item at the gate, stop every unsettled task, and await them all.

        Stopped, a task not started never starts, and a running one is
        interrupted (see :mod:`pocketcore_ray._worker`). ``kill_after``:
        seconds after which the workers of the tasks still running are
        killed, for a sync item inside a long blocking call, which no
        interrupt ends.

        Shielded from the caller's cancellation: nothing of the batch may
        still run once ``map`` has raised.
        """
        self.stopped = True
        entering, self.entering, self.held = self.entering, None, _END
        if entering is not None:
            entering.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(asyncio.wait([entering]))
            if not entering.cancelled() and entering.exception() is None:
                self.leave()  # it had entered just before it was cancelled
        flagged = self._stop(kill_after)
        loop = asyncio.get_running_loop()
        deadline = None if kill_after is None or flagged else loop.time() + kill_after
        while self.waiting:
            if not self.done:
                self.wake.clear()
                with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=0.25)
            for future in self._arrived():
                self.take(future, late=True)
            if deadline is not None and self.waiting and loop.time() >= deadline:
                deadline = None
                self._cancel(force=True)
        self.recover()

    def recover(self) -> None:
        """Add the failures of items that Ray reported cancelled although they had failed first.

        Ray turns the outcome of a task it was asked to cancel into a
        cancellation even when the item had already ended in its own
        failure; the worker keeps each failure beside the batch's flag, and
        it is asked for here, once every task has settled.
        """
        if self.batch is None or not self.unheard:
            return
        kept = kept_failures(self.batch, sorted(self.unheard))
        self.unheard.clear()
        for index, sent in sorted(kept.items()):
            ok, value = _decoded(sent, index, self.name)
            if ok is False and not isinstance(value, (KeyboardInterrupt, asyncio.CancelledError)):
                self.failures.append(value)

    def _stop(self, kill_after: float | None) -> bool:
        """Set the batch's stop flag; ``ray.cancel`` its tasks where it has none (False)."""
        if self.batch is not None:
            try:
                stop(self.batch, kill_after=kill_after)
            except Exception:  # no store to set it in: Ray's own cancellation
                pass
            else:
                return True
        self._cancel(force=False)
        return False

    def _cancel(self, *, force: bool) -> None:
        import ray

        for _, ref in list(self.waiting.values()):
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=force)


def _outcome(future: Settling, index: int, name: str) -> tuple[bool | None, Any]:
    """``(True, result)``, ``(False, exception)``, or ``(None, None)`` for a cancelled task."""
    import ray.exceptions as rex

    try:
        sent = future.result()
    except (rex.TaskCancelledError, concurrent.futures.CancelledError):
        return None, None
    except rex.RayTaskError as exc:
        if isinstance(exc.cause, rex.TaskCancelledError):
            return None, None
        return False, exc.as_instanceof_cause()  # type: ignore[no-untyped-call]
    except (rex.WorkerCrashedError, rex.NodeDiedError, rex.ActorDiedError) as exc:
        return False, WorkerDied(
            f"the Ray worker process running item {index} of node {name} died before the "
            f"item ended (killed by a signal, out of memory, or crashed): {type(exc).__name__}"
        )
    except rex.RayError as exc:
        text = str(exc).strip().splitlines()
        detail = text[0] if text else "(no message)"
        return False, _node_error()(
            f"item {index} of node {name} failed in Ray: {type(exc).__name__}: {detail}"
        )
    return _decoded(sent, index, name)


def _decoded(sent: bytes, index: int, name: str) -> tuple[bool | None, Any]:
    """The outcome a worker pickled (see :func:`pocketcore_ray._worker.run_item`)."""
    ok, value, text = pickle.loads(sent)
    if text is not None and isinstance(value, BaseException):
        value.__cause__ = RemoteTraceback(text)
    if isinstance(value, Unsendable):
        return False, _node_error()(
            f"cannot send back the {value.what} of item {index} of node {name} from executor "
            f"'ray' (a {value.kind}, which cannot be pickled): {value.error}"
        )
    if not ok and isinstance(value, (SystemExit, KeyboardInterrupt)):
        note = f"raised by item {index} of node {name} in a Ray worker"
        if hasattr(value, "add_note"):
            value.add_note(note)
    return ok, value


async def run_batch(
    submit: Callable[[int, Any], Any],
    name: str,
    items: Iterable[Any],
    limit: int | None,
    *,
    gate: Gate | None,
    on_result: OnResult | None,
    kill_after: float | None,
    batch_name: str | None = None,
) -> list[Any]:
    """Run every item as a Ray task made by ``submit(position, item)``; results in input order.

    ``kill_after``: when the caller is cancelled, seconds after which the
    workers of items still running are killed (``None``: never). ``batch_name``:
    the name the workers keep the batch's failures under (see
    :func:`pocketcore_ray._worker.kept_failures`).

    Raises:
        BaseException: The first failure (the item's own exception), others
            as notes; or what pulling the input or the gate raised; or the
            caller's cancellation. In every case only once no task of the
            batch is running any more.
    """
    from pocketcore import attach_failures

    batch = _Batch(submit, name, gate, on_result, batch_name)
    source = iter(items)
    try:
        while True:
            batch.fill(source, limit)
            if batch.failures or (not batch.waiting and batch.entering is None):
                break
            await batch.step()
    except asyncio.CancelledError:
        await batch.halt(kill_after=kill_after)
        raise
    except BaseException as exc:  # pulling the input (an item that cannot be sent) or the gate
        await batch.halt()
        attach_failures(exc, batch.failures)
        raise
    if batch.stopped and not batch.failures:  # pragma: no cover - a failure always follows
        batch.fail(RuntimeError(f"the batch of {name} was stopped, but no failure came back"))
    if batch.failures:
        await batch.halt()
        first = batch.failures[0]
        attach_failures(first, batch.failures[1:])
        raise first
    return batch.results
