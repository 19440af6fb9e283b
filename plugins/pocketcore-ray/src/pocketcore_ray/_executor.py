"""The ``ray`` executor: each item of a parallel batch as a task on a Ray cluster."""

from __future__ import annotations

import asyncio
import functools
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from pocketcore import BaseExecutor

from . import _cluster, _worker
from ._settings import SETTINGS, Settings, check_arguments

if TYPE_CHECKING:
    from pocketcore import Gate

__all__ = ["RayExecutor"]

T = TypeVar("T")
R = TypeVar("R")

_END = object()
#: The settings of the run in progress (resolved before its loop started).
_RUN: ContextVar[Settings | None] = ContextVar("pocketcore_ray_run", default=None)
#: Seconds a cancelled batch on the process's own instance waits for its
#: running items to end before it kills their workers (Ctrl-C must be prompt):
#: a sync item inside a blocking call ignores the interrupt until the call
#: returns; an async one ends at once, unless it blocks its event loop.
KILL_AFTER = {True: 2.0, False: 10.0}


def _kill_after(blocking: bool) -> float:
    return KILL_AFTER[blocking]


#: Bytes of pickled work sent with each task; a larger work goes to the object store once.
INLINE = 16 * 1024
#: The remote function of the items, made once per process (per max_retries-free options).
_REMOTE: list[Any] = []


def _remote() -> Any:
    """``run_item`` as a Ray remote function: one CPU each, never retried by Ray."""
    if not _REMOTE:
        import ray

        from ._worker import run_item

        # Retries are the kernel's (max_retries, wait, fallback), made in the
        # worker around exec; Ray's own would run a failed item again unasked.
        _REMOTE.append(ray.remote(max_retries=0, retry_exceptions=False)(run_item))
    return _REMOTE[0]


class RayExecutor(BaseExecutor):
    """Runs each item of a parallel batch as a task on a Ray cluster.

    Only ``exec`` travels (with its retries, waits, timeout and fallback):
    ``prep`` and ``post`` stay in the calling process, and the kernel sends a
    copy of the node without its successors. Async items run as
    ``asyncio.run(...)`` in the worker, sync items (``ParallelBatchNode``)
    directly.

    The cluster: a program that initialised Ray itself (``ray.init(...)``)
    keeps its own. Otherwise the first batch attaches to ``address`` (the
    argument, ``POCKETCORE_RAY_ADDRESS``, or ``address`` in
    ``[tool.pocketcore.ray]``), or starts a local instance, which later runs
    of the process reuse; :func:`pocketcore_ray.shutdown` or the end of the
    interpreter shuts it down.

    Args:
        address: ``"auto"``, ``"host:port"`` of a head node, or
            ``"ray://host:port"`` (Ray Client); overrides the environment
            and the file.
        num_cpus: CPUs of the local instance (default: every CPU).
        runtime_env: The Ray runtime environment of the items' tasks (a
            dict: ``pip``, ``env_vars``, ``working_dir``...).
        connect_timeout: Seconds to wait for a cluster at ``address`` to
            answer (default 10).
        log: Keep Ray's own logging (its startup lines, the workers' output
            forwarded here, worker deaths); off by default.

    Raises:
        ConfigError: An argument has the wrong type or is out of range.
    """

    name = "ray"
    backend: str | None = "asyncio"
    #: Items run in other processes: the kernel sends a detached copy of the
    #: node, checks that the work and the items pickle, and refuses batch flows.
    remote = True
    #: ``map`` calls ``on_result`` here as each result comes back: a result
    #: cache writes it then, not at the batch's end.
    reports_results = True
    #: ``map`` enters the ``gate`` before submitting each item and leaves it
    #: when its task settles: pacing and limiters apply to what is sent to Ray.
    gates_items = True

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        connect_timeout: float | None = None,
        log: bool | None = None,
    ) -> None:
        # Checked here, so that a wrong one is reported where it is written.
        self.arguments = check_arguments(
            address=address,
            num_cpus=num_cpus,
            runtime_env=runtime_env,
            connect_timeout=connect_timeout,
            log=log,
        )

    def settings(self) -> Settings:
        """Resolve what a run uses now (arguments, environment, file).

        Raises:
            ConfigError: A configured value is unusable; the message names its source.
        """
        return SETTINGS.build(Settings, self.arguments)

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new asyncio loop; its batches use the settings resolved now.

        Ray is attached or started by the run's first batch (not before:
        a run without a parallel batch never touches it).

        Raises:
            ConfigError: A configured value is unusable.
        """
        settings = self.settings()

        async def main() -> T:
            token = _RUN.set(settings)
            try:
                return await fn()
            finally:
                _RUN.reset(token)

        return asyncio.run(main())

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[R]:
        """Run ``fn(item)`` for every item as a Ray task; results in input order.

        With ``limit=k`` at most ``k`` tasks are submitted and unfinished,
        and items are pulled only as tasks settle. When an item fails (or the
        caller is cancelled) nothing more starts, the unfinished tasks are
        cancelled, and the exception (the item's own, others as notes) is
        raised once none of them runs. ``on_result(position, result)`` is
        called here as each result comes back; with a ``gate``, each item
        enters it before it is submitted and leaves it when its task settles.

        Raises:
            ConfigError: Ray cannot be started or reached.
            PocketcoreError: An item's result cannot be sent back, or its
                worker died; the message names the node and the item.
        """
        return await self._batch(False, fn, items, limit, gate, on_result)

    async def map_blocking(
        self,
        fn: Callable[[Any], R],
        items: Iterable[Any],
        *,
        limit: int | None,
        gate: Gate | None = None,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[R]:
        """:meth:`map` for a sync ``fn`` (the items of ``ParallelBatchNode``), called in the worker.

        A sync item running when the batch stops is interrupted at its next
        line of Python (Ray's ``KeyboardInterrupt``); a blocking call it is in
        (``time.sleep``, I/O) ends first.
        """
        return await self._batch(True, fn, items, limit, gate, on_result)

    async def _batch(
        self,
        blocking: bool,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        limit: int | None,
        gate: Gate | None,
        on_result: Callable[[int, Any], None] | None,
    ) -> list[Any]:
        from ._batch import item_name, run_batch

        # An empty batch needs no cluster: look at the first item before
        # attaching to one, or starting one.
        source = iter(items)
        first = next(source, _END)
        if first is _END:
            return []
        settings = _RUN.get() or self.settings()
        instance = await _cluster.leased(settings)
        # A batch that submits items as others end needs the stop flag (see _worker.is_stopped).
        flagged = limit is not None or gate is not None
        batch = f"pocketcore-{uuid.uuid4().hex}"
        # The process's own local workers are killed at Ctrl-C if an item does
        # not end soon; a cluster of others' is not ours to kill.
        kill_after = _kill_after(blocking) if instance.ours and not settings.address else None
        # Failures are kept under the batch's name too (see _worker.kept_failures).
        failed = False
        try:
            submit = _submitter(fn, blocking, settings, flagged, batch)
            return await run_batch(
                submit,
                item_name(fn),
                itertools.chain((first,), source),
                limit,
                gate=gate,
                on_result=on_result,
                kill_after=kill_after,
                batch_name=batch,
            )
        except BaseException:
            failed = True
            raise
        finally:
            if flagged or failed:
                _worker.forget(batch)
            _cluster.release(instance)

    def __repr__(self) -> str:
        arguments = dict(self.arguments)
        args = [repr(arguments.pop("address"))] if "address" in arguments else []
        args.extend(f"{key}={value!r}" for key, value in arguments.items())
        return f"RayExecutor({', '.join(args)})"


def _submitter(
    fn: Callable[[Any], Any], blocking: bool, settings: Settings, flagged: bool, batch: str
) -> Callable[[int, Any], Any]:
    """``submit(index, item)``: the item as a Ray task (a large work sent to the store once)."""
    import ray
    import ray.cloudpickle as cloudpickle

    remote = _remote()
    if settings.runtime_env is not None:
        remote = remote.options(runtime_env=dict(settings.runtime_env))
    # Inline, a small work costs each task less than a reference would; the
    # worker unpickles it once per batch either way (see _worker).
    sent: bytes = cloudpickle.dumps(fn)  # type: ignore[no-untyped-call]
    payload: Any = sent if len(sent) <= INLINE else [ray.put(sent)]
    holder = (payload, batch, flagged, batch)
    return functools.partial(_submit, remote.remote, holder, blocking)


def _submit(remote: Callable[..., Any], holder: Any, blocking: bool, index: int, item: Any) -> Any:
    # One argument: Ray serializes each argument of a task on its own, and
    # four of them cost each submission about half as much again as one.
    # (An item that is an ObjectRef reaches exec as itself, as it does on
    # every other executor, not resolved by Ray as a top-level argument is.)
    return remote((holder, blocking, item, index))
