"""Per-run and per-item state, carried in context variables.

Context variables are copied into every task an executor starts, so each
concurrently running item sees its own retry counter and every task of a run
sees the run's configuration, on asyncio and trio alike.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar, Token
from typing import Any

import sniffio

from pocketcore._core.executor import Executor
from pocketcore._plugins.registry import Observer, get_registry

from .config import RunConfig, check_limit, resolve_run, run_level_settings

__all__ = [
    "CUR_RETRY",
    "RUN",
    "THREAD_STOP",
    "Attempt",
    "ambient_config",
    "enter_scope",
    "executor_for",
    "node_source",
    "observed_after",
    "own_executor",
]

RUN: ContextVar[RunConfig | None] = ContextVar("pocketcore_run", default=None)
"""The configuration of the run in progress, if any."""


class Attempt:
    """The attempt counter of one item of a concurrently running batch.

    Items of a parallel batch share one node object, so ``node.cur_retry``
    cannot live on the node alone: each item's task carries its own counter in
    :data:`CUR_RETRY`, and ``Node.cur_retry`` reads it when it belongs to that
    node. Sequential paths skip this and keep the counter on the node, as
    PocketFlow does.
    """

    __slots__ = ("n", "node")

    def __init__(self, node: object) -> None:
        self.node = node
        self.n = 0


CUR_RETRY: ContextVar[Attempt | None] = ContextVar("pocketcore_cur_retry", default=None)

THREAD_STOP: ContextVar[threading.Event | None] = ContextVar("pocketcore_thread_stop", default=None)
"""Set on a worker thread running a batch item: tells the item's retry loop the
batch is over (failed or cancelled), so it makes no further attempts."""
"""The :class:`Attempt` of the batch item executing in this context, if any."""


def ambient_config() -> RunConfig:
    """Resolve a run configuration for the event loop running now.

    Used when a flow is started with ``await flow.run_async(shared)`` rather
    than through :func:`pocketcore.run`: arguments do not exist there, so the
    environment, then the configuration file, then the backend's default
    decide.
    """
    try:
        backend: str | None = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        backend = None
    executor, limit = run_level_settings()
    return resolve_run(backend, executor, limit, get_registry())


def node_source(node: Any, attr: str) -> str:
    """Describe a node attribute as the source of a setting, for error messages."""
    return f"attribute {attr} of {type(node).__name__}"


def own_executor(node: Any) -> str | Executor | None:
    """The node's own executor setting: a name or an executor object, else ``None``.

    A PocketFlow program may already use an attribute called ``executor`` for
    its own purposes (a ``ThreadPoolExecutor``, say). Only names and objects
    that satisfy :class:`~pocketcore.Executor` are taken as pocketcore's;
    anything else is left alone, so such programs run unchanged.
    """
    own: Any = node.executor
    if own is None or isinstance(own, str):
        return own
    return own if isinstance(own, Executor) else None


def executor_for(node: Any) -> tuple[Executor, int | None]:
    """The executor and limit ``node`` fans out with in the current run.

    The node's own ``executor`` / ``max_concurrency`` win over the run's.

    Raises:
        ConfigError: The node names an unknown executor, one that cannot run on
            this run's backend, or a bad limit.
    """
    cfg = RUN.get()
    if cfg is None:
        cfg = ambient_config()
    own = own_executor(node)
    executor = cfg.executor if own is None else cfg.lookup(own, node_source(node, "executor"))
    limit = node.max_concurrency
    if limit is None:
        return executor, cfg.limit
    return executor, check_limit(limit, node_source(node, "max_concurrency"))


def enter_scope(flow: Any) -> Token[RunConfig | None] | None:
    """Put a flow's own executor / limit in force for the nodes inside it.

    Returns the token to reset :data:`RUN` with, or ``None`` (and costs next
    to nothing) when the flow has no settings of its own.

    Raises:
        ConfigError: The flow's settings are unusable in this run.
    """
    own = own_executor(flow)
    limit = flow.max_concurrency
    if own is None and limit is None:
        return None
    cfg = RUN.get()
    if cfg is None:
        cfg = ambient_config()
    source = type(flow).__name__
    return RUN.set(cfg.scoped(own, limit, source))


def current_observer() -> Observer | None:
    """Where lifecycle events of the current run go; ``None`` when nobody listens."""
    cfg = RUN.get()
    return get_registry().observer if cfg is None else cfg.observer


def batch_size(items: Any) -> int | None:
    """The number of items, when the iterable knows it."""
    try:
        return len(items)
    except TypeError:
        return None


def observed_items(
    node: Any, obs: Observer, items: Iterable[Any], run_one: Callable[[Any], Any]
) -> list[Any]:
    """Run ``run_one`` on each item in order, reporting the batch and each item."""
    obs.batch_start(node=node, size=batch_size(items))
    results = []
    for index, item in enumerate(items):
        try:
            result = run_one(item)
        except BaseException as exc:
            obs.batch_item_done(node=node, index=index, result=None, exception=exc)
            raise
        obs.batch_item_done(node=node, index=index, result=result, exception=None)
        results.append(result)
    return results


async def observed_items_async(
    node: Any,
    obs: Observer,
    items: Iterable[Any],
    run_one: Callable[[Any], Awaitable[Any]],
) -> list[Any]:
    """:func:`observed_items` for an async ``run_one``."""
    obs.batch_start(node=node, size=batch_size(items))
    results = []
    for index, item in enumerate(items):
        try:
            result = await run_one(item)
        except BaseException as exc:
            obs.batch_item_done(node=node, index=index, result=None, exception=exc)
            raise
        obs.batch_item_done(node=node, index=index, result=result, exception=None)
        results.append(result)
    return results


def observed_parallel(
    node: Any, obs: Observer, items: Iterable[Any], run_one: Callable[[Any], Awaitable[Any]]
) -> tuple[Iterable[Any], Callable[[Any], Awaitable[Any]]]:
    """Wrap the items and the per-item function of a parallel batch to report them.

    Returns what to hand the executor instead: ``(index, item)`` pairs and a
    function that runs one pair and reports it from the item's own task.
    """
    obs.batch_start(node=node, size=batch_size(items))

    async def run_indexed(pair: tuple[int, Any]) -> Any:
        index, item = pair
        try:
            result = await run_one(item)
        except BaseException as exc:
            obs.batch_item_done(node=node, index=index, result=None, exception=exc)
            raise
        obs.batch_item_done(node=node, index=index, result=result, exception=None)
        return result

    return enumerate(items), run_indexed


async def observed_after(
    node: Any,
    obs: Observer,
    items: Iterable[Any],
    run_batch: Callable[[Iterable[Any]], Awaitable[list[Any]]],
) -> list[Any]:
    """Report a batch whose calls run elsewhere: its items once the results are back.

    A remote executor cannot carry an observer to its workers, so the batch
    is announced here and each item reported when ``run_batch`` returns. When
    the batch fails, which of its items finished is not known here, and none
    is reported.
    """
    obs.batch_start(node=node, size=batch_size(items))
    results = await run_batch(items)
    for index, result in enumerate(results):
        obs.batch_item_done(node=node, index=index, result=result, exception=None)
    return results


def observed_step(node: Any, shared: Any, obs: Observer) -> Any:
    """Run one flow step, reporting its start and end."""
    obs.node_start(node=node, shared=shared)
    try:
        action = node._run(shared)
    except BaseException as exc:
        obs.node_end(node=node, shared=shared, action=None, exception=exc)
        raise
    obs.node_end(node=node, shared=shared, action=action, exception=None)
    return action


async def observed_step_async(node: Any, shared: Any, obs: Observer) -> Any:
    """Run one async node's step, reporting its start and end."""
    obs.node_start(node=node, shared=shared)
    try:
        action = await node._run_async(shared)
    except BaseException as exc:
        obs.node_end(node=node, shared=shared, action=None, exception=exc)
        raise
    obs.node_end(node=node, shared=shared, action=action, exception=None)
    return action


def observed_run(target: Any, shared: Any, obs: Observer, run: Callable[[], Any]) -> Any:
    """Run a whole run, reporting its start and end."""
    obs.run_start(target=target, shared=shared)
    try:
        result = run()
    except BaseException as exc:
        obs.run_end(target=target, shared=shared, result=None, exception=exc)
        raise
    obs.run_end(target=target, shared=shared, result=result, exception=None)
    return result


async def observed_run_async(
    target: Any, shared: Any, obs: Observer, run: Callable[[], Awaitable[Any]]
) -> Any:
    """:func:`observed_run` for an async run."""
    obs.run_start(target=target, shared=shared)
    try:
        result = await run()
    except BaseException as exc:
        obs.run_end(target=target, shared=shared, result=None, exception=exc)
        raise
    obs.run_end(target=target, shared=shared, result=result, exception=None)
    return result
