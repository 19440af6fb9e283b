"""The ``dask`` executor: the client side, and the cluster a run connects to or starts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from pocketcore import BaseExecutor

from . import _cluster
from ._settings import SETTINGS, Settings, check_arguments

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from pocketcore import Gate

__all__ = ["DaskExecutor"]

T = TypeVar("T")
R = TypeVar("R")

_END = object()


class _Session:
    """The cluster connection of one ``run``: opened by its first batch, closed when it ends.

    A run without a parallel batch never connects (nor starts a cluster). A
    batch outside a run has a session of its own. Either way, without an
    address the session connects to the process's ``LocalCluster``, which
    outlives it (see :mod:`pocketcore_dask._cluster`).
    """

    def __init__(self, settings: Settings, given: Client | None = None) -> None:
        self.settings = settings
        self.given = given
        self.loop = asyncio.get_running_loop()
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()

    async def client(self) -> Client:
        async with self._lock:  # batches running side by side share one connection
            if self._client is None:
                opened = _open(self.settings, self.given)
                client, cluster = await self._stack.enter_async_context(opened)
                self._client, self._cluster = client, cluster
                return client
            return self._client

    async def guard(self, work: Awaitable[T]) -> T:
        """Await ``work``; cancelled (Ctrl-C), first kill the process's cluster if it used it.

        A cancelled batch waits for its running items, and sync items cannot
        be interrupted: a long one would hold Ctrl-C up for as long as it
        computes. Killing the worker processes of the process's own
        ``LocalCluster`` stops every item at once, and the batches then have
        nothing left to wait for (the next run starts a new cluster). A
        cluster of someone else's (an address, a client handed in) is not the
        session's to kill: its batches stop as any cancelled batch does.
        """
        task = asyncio.ensure_future(work)
        try:
            # Shielded: when the session is cancelled it must act before the
            # work learns of it, not after its batches have waited.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():  # else the work itself was cancelled: nothing to do
                with anyio.CancelScope(shield=True):
                    await self._kill_cluster()
                    task.cancel()
                    await asyncio.wait([task])
            if not task.cancelled():
                task.exception()  # seen: what ends the session is the cancellation
            raise

    async def _kill_cluster(self) -> None:
        if self._cluster is None or self._client is None:
            return
        _cluster.kill(self._cluster)
        # Closing the client cancels the futures the batches wait for; then
        # the cluster, dead, is closed (a client left open would try to
        # reconnect to its scheduler, and say so).
        await _close(self._client)
        await anyio.to_thread.run_sync(_cluster.close, self._cluster)

    async def aclose(self) -> None:
        await self._stack.aclose()


_SESSION: ContextVar[_Session | None] = ContextVar("pocketcore_dask_session", default=None)


async def _close(closable: Any) -> None:
    # Shielded: a run cancelled by a timeout still closes its client and
    # cluster (unclosed, the client warns at exit, the cluster's worker
    # processes outlive the run).
    with anyio.CancelScope(shield=True):
        await closable.close()


async def _started(startable: Any) -> None:
    """Start a client or cluster; on any failure (cancellation too), close what it began."""
    try:
        await startable
    except BaseException:
        await _close(startable)
        raise


#: The connect timeout when none is configured: a few seconds, not dask's 30.
CONNECT_TIMEOUT = 5.0


def _connect_timeout(settings: Settings) -> tuple[float, str]:
    """The connect timeout, and what set it: the setting, else at most a few seconds.

    Without the setting, dask's own (``distributed.comm.timeouts.connect``)
    applies when it is shorter than :data:`CONNECT_TIMEOUT`.
    """
    if settings.connect_timeout is not None:
        return settings.connect_timeout, "the connect_timeout setting"
    import dask
    from dask.utils import parse_timedelta

    configured = float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s"))
    if configured < CONNECT_TIMEOUT:
        return configured, "dask's connect timeout, distributed.comm.timeouts.connect"
    return CONNECT_TIMEOUT, "the default connect_timeout"


def _refused(address: str, timeout: float) -> OSError | None:
    """Whether a TCP connection to ``address`` is refused (or cannot be made at all), and how.

    dask retries a refused connection until its connect timeout; a refusal
    is final (nothing listens there), so the run can fail at once. Blocking:
    run it in a thread. Only ``tcp://`` addresses are tried; a silent one is
    left to the connect timeout.
    """
    split = urllib.parse.urlsplit(address)
    try:
        host, port = split.hostname, split.port
    except ValueError:
        return None  # malformed: dask says how
    if split.scheme != "tcp" or not host or port is None:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except (ConnectionRefusedError, socket.gaierror) as exc:
        return exc
    except OSError:
        return None  # unreachable or silent: dask's own error, within the timeout


@contextlib.asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Client]:
    """An asynchronous client of the configured scheduler, or of the process's ``LocalCluster``.

    The client is closed on exit; the ``LocalCluster`` is not (it serves later runs).

    Raises:
        ConfigError: The address is malformed, or no scheduler answers there
            within the connect timeout; the message names the address
            and where it came from.
    """
    async with _open(settings) as (client, _):
        yield client


@contextlib.asynccontextmanager
async def _open(
    settings: Settings, given: Client | None = None
) -> AsyncIterator[tuple[Client, LocalCluster | None]]:
    """:func:`connect`, also yielding the process's ``LocalCluster`` when it is used."""
    # distributed leaves these constructors unannotated: hence the ignores.
    from distributed import Client

    here = asyncio.get_running_loop()
    if given is not None and given.asynchronous and getattr(given.loop, "asyncio_loop", 0) is here:
        yield given, None  # the caller's own, on this very loop: used as it is, not closed
        return
    cluster: LocalCluster | None = None
    if given is not None:
        # Bound to another loop (a synchronous client runs its own): connect
        # to its scheduler with its security, from this run's loop.
        address = getattr(given.scheduler, "address", None)
        if not address:
            from pocketcore import ConfigError

            raise ConfigError(f"the client handed to DaskExecutor() has no scheduler: {given!r}")
        where = f"{address!r} (from argument client= of DaskExecutor())"
        client = Client(  # type: ignore[no-untyped-call]
            address,
            asynchronous=True,
            set_as_default=False,
            security=given.security,
            timeout=_connect_timeout(settings)[0],
        )
    elif settings.address is None:
        if settings.processes:
            _check_main_module()
        cluster = await anyio.to_thread.run_sync(_cluster.get, settings)
        address = cluster.scheduler_address
        where = f"{address!r} (the process's LocalCluster)"
        timeout = _connect_timeout(settings)[0]
        client = Client(address, asynchronous=True, set_as_default=False, timeout=timeout)  # type: ignore[no-untyped-call]
    else:
        where = f"{settings.address!r} (from {settings.sources['address']})"
        timeout = _connect_timeout(settings)[0]
        refused = await anyio.to_thread.run_sync(_refused, settings.address, timeout)
        if refused is not None:
            from pocketcore import ConfigError

            raise ConfigError(
                f"cannot reach the dask scheduler at {where}: {refused.strerror or refused} "
                "(is a dask scheduler listening there?)"
            ) from None
        client = Client(settings.address, asynchronous=True, set_as_default=False, timeout=timeout)  # type: ignore[no-untyped-call]
    try:
        await _reached(client, settings, where)
        yield client, cluster
    finally:
        await _close(client)
        if cluster is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_cluster.release, cluster)


def _check_main_module() -> None:
    """Refuse, with a ``ConfigError``, to start worker processes from an unguarded script."""
    import dask

    from ._main_guard import check_main_module

    check_main_module(dask.config.get("distributed.worker.multiprocessing-method", "spawn"))


async def _reached(client: Client, settings: Settings, where: str) -> None:
    """Start a client of the scheduler at ``where``, within the connect timeout.

    dask bounds the TCP connection by that timeout, but not what follows: a
    listener that accepts and never answers (a frozen or stopped scheduler,
    or another program) would hold the client's start forever. So the whole
    start is bounded here, by the same timeout.

    Raises:
        ConfigError: The address is malformed, or no scheduler answers there.
    """
    from pocketcore import ConfigError

    bound, which = _connect_timeout(settings)
    try:
        # A second more than dask's own deadline, so that a scheduler that
        # cannot be reached at all gets dask's more precise error.
        with anyio.fail_after(bound + 1):
            await _started(client)
    except ValueError as exc:  # distributed's word for an address it cannot parse
        raise ConfigError(f"bad dask scheduler address {where}: {exc}") from None
    except TimeoutError:
        raise ConfigError(
            f"cannot reach the dask scheduler at {where}: no answer within {bound:g} s "
            f"({which}); is a dask scheduler listening there, and running?"
        ) from None
    except Exception as exc:
        # Refused or unreachable (OSError, whose text says so), or something
        # else answered (its garbage fails the handshake anyhow).
        if isinstance(exc, OSError):
            detail = str(exc)
        else:
            raw = f"{type(exc).__name__}: {exc}".rstrip(": ")
            detail = f"{raw} (is a dask scheduler listening there?)"
        raise ConfigError(f"cannot reach the dask scheduler at {where}: {detail}") from None


class DaskExecutor(BaseExecutor):
    """Runs each item of a parallel batch as a task on a ``dask.distributed`` cluster.

    Only ``exec`` travels (with its retries, waits and fallback): ``prep`` and
    ``post`` stay in the calling process, and the kernel sends a copy of the
    node without its successors. Async items run as ``asyncio.run(...)`` on a
    worker thread, sync items (``ParallelBatchNode``) directly.

    :meth:`run` starts asyncio and, at the run's first batch, connects to the
    configured scheduler, to the scheduler of the client handed in, or to the
    process's ``LocalCluster``: started by the first batch that needs it,
    reused by the runs after it, closed by :func:`pocketcore_dask.shutdown`
    or at interpreter exit. ``map`` called outside :meth:`run` (``await
    flow.run_async(shared)`` in your own loop) connects for that one batch.

    Args:
        address: The scheduler address; overrides the environment and file.
        client: A ``distributed.Client`` of your own, whose scheduler the runs
            use (instead of ``address``). An asynchronous client on the
            run's own loop is used as it is; any other is connected to by
            its scheduler's address and security. It is never closed here.
        n_workers: Workers of the ``LocalCluster`` (default: one per CPU).
        threads_per_worker: Threads of each of its workers (default 1).
        processes: Its workers are processes (default ``True``), or threads
            of this process (for items that release the GIL, or to debug).
        connect_timeout: Seconds to wait for a scheduler to answer (default
            5, or dask's ``distributed.comm.timeouts.connect`` if shorter); a
            refused connection fails at once.
        no_workers_warning: Seconds a batch waits at a scheduler without
            workers before it says so on stderr (default 10).
        log_failures: Keep dask's "Compute Failed" log (with the worker's
            traceback) of a failing item in the ``LocalCluster``'s output
            (default ``False``: the caller gets the error anyway).

    Raises:
        ConfigError: An argument has the wrong type or is out of range, or
            both ``address`` and ``client`` are given.
    """

    name = "dask"
    backend: str | None = "asyncio"
    #: Items run in other processes: the kernel sends a detached copy of the
    #: node, checks that the work and the items pickle, and refuses batch flows.
    remote = True
    #: ``map`` and ``map_blocking`` take ``on_result``, called here as each
    #: result comes back: a result cache writes it then, not at the batch's end.
    reports_results = True
    #: ``map`` and ``map_blocking`` take ``gate``: each item enters it before
    #: it is submitted and leaves it when its task settles, so pacing and
    #: limiters apply to the items sent to the cluster.
    gates_items = True

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Client | None = None,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        processes: bool | None = None,
        connect_timeout: float | None = None,
        no_workers_warning: float | None = None,
        log_failures: bool | None = None,
    ) -> None:
        # Checked here, so that a wrong one is reported where it is written.
        self.arguments = check_arguments(
            address=address,
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            connect_timeout=connect_timeout,
            no_workers_warning=no_workers_warning,
            log_failures=log_failures,
        )
        if client is not None and address is not None:
            from pocketcore import ConfigError

            raise ConfigError("DaskExecutor() takes an address or a client, not both")
        self.client = client

    def settings(self) -> Settings:
        """Resolve what a run connects to now (arguments, environment, file).

        Raises:
            ConfigError: A configured value is unusable; the message names its source.
        """
        return SETTINGS.build(Settings, self.arguments)

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on a new asyncio loop; batches of the run share one cluster connection.

        The settings are checked before the loop starts. The connection is
        opened by the run's first batch (starting the process's
        ``LocalCluster`` if there is no address and none runs yet) and closed
        when ``fn`` returns or raises; the ``LocalCluster`` stays for the next
        run. Interrupted (Ctrl-C), a run on the process's ``LocalCluster``
        kills its worker processes at once rather than wait for the items
        running there.

        Raises:
            ConfigError: A configured value is unusable.
        """
        settings = self.settings()

        async def main() -> T:
            session = _Session(settings, self.client)
            token = _SESSION.set(session)
            try:
                return await session.guard(fn())
            finally:
                _SESSION.reset(token)
                await session.aclose()

        return asyncio.run(main())

    async def map(
        self,
        fn: Callable[[Any], Awaitable[R]],
        items: Iterable[Any],
        *,
        limit: int | None,
        on_result: Callable[[int, Any], None] | None = None,
        gate: Gate | None = None,
    ) -> list[R]:
        """Run ``fn(item)`` for every item as a dask task; results in input order.

        With ``limit=k`` at most ``k`` tasks are submitted and unfinished, and
        items are pulled only as tasks finish. When an item fails (or the
        caller is cancelled) no further item starts, running items are
        cancelled at their next ``await``, and the exception (the item's own,
        other failures as notes) is raised once no task of the batch runs.

        ``on_result(position, result)`` (see ``pocketcore.ReportingExecutor``)
        is called in this process for each item that succeeded, as its result
        comes back, before ``map`` returns or raises. What it raises stops
        the batch like an item's failure, and is raised.

        With a ``gate`` (``pocketcore.Gate``, the batch's limiters), each
        item, once pulled, enters it before it is submitted, and leaves it
        when its task settles: starts are paced, and limited, where they are
        sent to the cluster.
        """
        from . import _worker

        return await self._batch(_worker.run_async_item, fn, items, limit, on_result, gate)

    async def map_blocking(
        self,
        fn: Callable[[Any], R],
        items: Iterable[Any],
        *,
        limit: int | None,
        on_result: Callable[[int, Any], None] | None = None,
        gate: Gate | None = None,
    ) -> list[R]:
        """:meth:`map` for a sync ``fn`` (the items of ``ParallelBatchNode``).

        A sync item that has started cannot be interrupted: after a failure
        it runs to completion before ``map_blocking`` raises; its result is
        dropped, but still handed to ``on_result``.
        """
        from . import _worker

        return await self._batch(_worker.run_sync_item, fn, items, limit, on_result, gate)

    async def _batch(
        self,
        task: Callable[..., Any],
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        limit: int | None,
        on_result: Callable[[int, Any], None] | None,
        gate: Gate | None,
    ) -> list[Any]:
        from ._batch import run_batch

        # An empty batch (prep returned [] or None) needs no cluster: look at
        # the first item before connecting to one, or starting one.
        source = iter(items)
        first = next(source, _END)
        if first is _END:
            return []
        items = itertools.chain((first,), source)

        async def on(session: _Session) -> list[Any]:
            client = await session.client()
            warn_after = session.settings.no_workers_warning
            return await run_batch(
                client,
                task,
                fn,
                items,
                limit,
                warn_after=warn_after,
                on_result=on_result,
                gate=gate,
            )

        session = _SESSION.get()
        if session is not None and session.loop is asyncio.get_running_loop():
            return await on(session)
        # A batch outside run() has a session, and a cluster, of its own.
        session = _Session(self.settings(), self.client)
        try:
            return await session.guard(on(session))
        finally:
            await session.aclose()

    def __getstate__(self) -> dict[str, Any]:
        # A node given this executor (Square(executor=DaskExecutor(client=...)))
        # is pickled to the workers with it; a client cannot travel, nor is it
        # of use there.
        return {**self.__dict__, "client": None}

    def __repr__(self) -> str:
        arguments = dict(self.arguments)
        args = [repr(arguments.pop("address"))] if "address" in arguments else []
        if self.client is not None:
            args.append(f"client={self.client}")
        args.extend(f"{key}={value}" for key, value in arguments.items())
        return f"DaskExecutor({', '.join(args)})"
