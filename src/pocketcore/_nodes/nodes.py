"""Nodes: the steps of a flow, with PocketFlow's lifecycle and API.

``prep`` reads the shared store, ``exec`` does the work (retried up to
``max_retries`` times, with ``wait`` seconds between attempts, then handed to
``exec_fallback``), and ``post`` writes results back and returns the action
that picks the next node. Batch variants run ``exec`` once per item of what
``prep`` returned; the *Parallel* variant hands the items to the run's executor.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from pocketcore._core.executor import Executor
from pocketcore._core.remote import detached, is_remote, shippable
from pocketcore._dispatch.threads import map_on_threads, run_blocking
from pocketcore._runtime.config import RunConfig, check_executor_value, check_limit
from pocketcore._runtime.context import (
    CUR_RETRY,
    RUN,
    THREAD_STOP,
    Attempt,
    ambient_config,
    current_observer,
    executor_for,
    node_source,
    observed_after,
    observed_items,
    observed_items_async,
    observed_parallel,
    observed_run,
    observed_run_async,
    own_executor,
)

__all__ = [
    "AsyncBatchNode",
    "AsyncNode",
    "AsyncParallelBatchNode",
    "BaseNode",
    "BatchNode",
    "Node",
    "ParallelBatchNode",
]


# The warnings PocketFlow emits are emitted with the same text and category,
# and (stacklevel=1) from inside the library as PocketFlow does, so the
# default filter shows each once per process, not once per calling line.


class BaseNode:
    """The smallest unit of a flow: ``prep`` -> ``exec`` -> ``post``.

    Args:
        executor: Keyword only. The executor this node (or flow) fans its items
            out with, by name or as an executor object; overrides the run's.
            Also settable as a class attribute.
        max_concurrency: Keyword only. The most items of this node in flight at
            once (an int >= 1, or ``None`` for the run's setting).

    Raises:
        ConfigError: ``executor`` or ``max_concurrency`` has the wrong type or
            ``max_concurrency`` is < 1.

    Attributes:
        params: The node's parameters, set by :meth:`set_params` (a flow sets
            the same dict on every node of one pass).
        successors: Action name -> next node.
    """

    executor: str | Executor | None = None
    max_concurrency: int | None = None

    def __init__(
        self, *, executor: str | Executor | None = None, max_concurrency: int | None = None
    ) -> None:
        self.params: dict[str, Any] = {}
        self.successors: dict[str, BaseNode] = {}
        if executor is not None:
            self.executor = check_executor_value(
                executor, f"argument executor= of {type(self).__name__}()"
            )
        if max_concurrency is not None:
            self.max_concurrency = check_limit(
                max_concurrency, f"argument max_concurrency= of {type(self).__name__}()"
            )

    def set_params(self, params: dict[str, Any]) -> None:
        """Replace this node's parameters with ``params`` (the dict itself, not a copy)."""
        self.params = params

    def next(self, node: BaseNode, action: str = "default") -> BaseNode:
        """Make ``node`` the successor for ``action`` and return ``node``.

        Warns (``UserWarning``) when a successor for ``action`` is replaced.
        """
        if action in self.successors:
            warnings.warn(f"Overwriting successor for action '{action}'", stacklevel=1)
        self.successors[action] = node
        return node

    def prep(self, shared: Any) -> Any:
        """Read what ``exec`` needs from the shared store. Returns ``None`` by default."""

    def exec(self, prep_res: Any) -> Any:
        """Do the node's work on the result of ``prep``. Returns ``None`` by default."""

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        """Write results to the shared store and return the next action (``None``: default)."""

    def _exec(self, prep_res: Any) -> Any:
        return self.exec(prep_res)

    def _run(self, shared: Any) -> Any:
        p = self.prep(shared)
        e = self._exec(p)
        return self.post(shared, p, e)

    def run(self, shared: Any) -> Any:
        """Run this node alone and return what ``post`` returns.

        Successors are not followed; a node that has some warns, as a reminder
        that a :class:`~pocketcore.Flow` is what follows them.
        """
        if self.successors:
            warnings.warn("Node won't run successors. Use Flow.", stacklevel=1)
        if RUN.get() is not None or type(self)._run is AsyncNode._run:
            # Nested in a run: part of it. Or an async node, whose _run raises
            # "Use run_async." as PocketFlow's does, before any config is read.
            return self._run(shared)
        # A run of its own: resolve its configuration once, as run_async does.
        cfg = ambient_config()
        token = RUN.set(cfg)
        try:
            if cfg.observer is None:
                return self._run(shared)
            return observed_run(self, shared, cfg.observer, lambda: self._run(shared))
        finally:
            RUN.reset(token)

    def __rshift__(self, other: BaseNode) -> BaseNode:
        return self.next(other)

    def __sub__(self, action: str) -> _ConditionalTransition:
        if isinstance(action, str):
            return _ConditionalTransition(self, action)
        raise TypeError("Action must be a string")


class _ConditionalTransition:
    """The half-built edge of ``node - "action" >> other``."""

    __slots__ = ("action", "src")

    def __init__(self, src: BaseNode, action: str) -> None:
        self.src, self.action = src, action

    def __rshift__(self, tgt: BaseNode) -> BaseNode:
        return self.src.next(tgt, self.action)


class Node(BaseNode):
    """A node whose ``exec`` is retried and can fall back.

    Args:
        max_retries: How many times ``exec`` is attempted in all (default 1).
        wait: Seconds to sleep between attempts (default 0).
        executor: See :class:`BaseNode`.
        max_concurrency: See :class:`BaseNode`.

    Attributes:
        cur_retry: The 0-based attempt of the item being executed. Inside
            ``exec`` it belongs to the current item, even when several items of
            the same node run concurrently.
    """

    def __init__(
        self,
        max_retries: int = 1,
        wait: float = 0,
        *,
        executor: str | Executor | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        super().__init__(executor=executor, max_concurrency=max_concurrency)
        self.max_retries, self.wait = max_retries, wait

    @property
    def cur_retry(self) -> int:
        """The attempt number (0-based) of the item executing in this context."""
        attempt = CUR_RETRY.get()
        if attempt is not None and attempt.node is self:
            return attempt.n
        try:
            return self.__dict__["cur_retry"]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute 'cur_retry'"
            ) from None

    @cur_retry.setter
    def cur_retry(self, value: int) -> None:
        attempt = CUR_RETRY.get()
        if attempt is not None and attempt.node is self:
            attempt.n = value
        else:
            self.__dict__["cur_retry"] = value

    def exec_fallback(self, prep_res: Any, exc: Exception) -> Any:
        """Called with the last exception once every attempt failed; re-raises it by default."""
        raise exc

    def _exec(self, prep_res: Any, attempt: Attempt | None = None) -> Any:
        # The per-item pipeline, sync: attempts, waits, fallback. ``attempt``
        # is given when items of this node run concurrently (see Attempt).
        # As in PocketFlow, the counter lives in the instance dict (so a class
        # attribute ``cur_retry`` is shadowed, not used), and whether to give
        # up is decided on ``cur_retry`` after the attempt, so an ``exec`` that
        # assigns it steers the loop.
        d = self.__dict__
        for n in range(self.max_retries):
            d["cur_retry"] = n
            if attempt is not None:
                attempt.n = n
            try:
                return self.exec(prep_res)
            except Exception as exc:
                cur = d["cur_retry"] if attempt is None else attempt.n
                if cur == self.max_retries - 1:
                    return self.exec_fallback(prep_res, exc)
                stop = THREAD_STOP.get()
                if stop is None:
                    if self.wait > 0:
                        time.sleep(self.wait)
                # On a worker thread of a batch that has failed or been
                # cancelled, make no further attempt (and cut the wait short):
                # the result would be dropped, and the caller is waiting.
                elif stop.is_set() or (self.wait > 0 and stop.wait(self.wait)):
                    raise
        return None


class BatchNode(Node):
    """A node whose ``prep`` returns an iterable of items; ``exec`` runs once per item.

    Items run one after another, in order, whatever the executor. ``exec_res``
    given to ``post`` is the list of per-item results.
    """

    def _exec(self, items: Any, attempt: Attempt | None = None) -> Any:
        obs = current_observer()
        if obs is not None:
            return observed_items(self, obs, items or [], lambda item: Node._exec(self, item))
        return [Node._exec(self, item) for item in (items or [])]


class AsyncNode(Node):
    """A node with async ``prep_async`` / ``exec_async`` / ``post_async``.

    Run it with ``await node.run_async(shared)`` or :func:`pocketcore.run`;
    calling :meth:`run` raises ``RuntimeError``.
    """

    async def prep_async(self, shared: Any) -> Any:
        """Async :meth:`~BaseNode.prep`. Returns ``None`` by default."""

    async def exec_async(self, prep_res: Any) -> Any:
        """Async :meth:`~BaseNode.exec`. Returns ``None`` by default."""

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        """Async :meth:`~Node.exec_fallback`; re-raises ``exc`` by default."""
        raise exc

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        """Async :meth:`~BaseNode.post`. Returns ``None`` (the default action)."""

    async def _exec(self, prep_res: Any, attempt: Attempt | None = None) -> Any:
        # The per-item pipeline, async: attempts, waits, fallback. PocketFlow's
        # async loop neither sets cur_retry nor reads it back; pocketcore sets
        # it (so exec_async can read it) and, like PocketFlow, decides on the
        # loop's own counter.
        d = self.__dict__
        if self.max_retries == 1:  # the usual case, without the loop's overhead
            d["cur_retry"] = 0
            try:
                return await self.exec_async(prep_res)
            except Exception as exc:
                return await self.exec_fallback_async(prep_res, exc)
        for n in range(self.max_retries):
            d["cur_retry"] = n
            if attempt is not None:
                attempt.n = n
            try:
                return await self.exec_async(prep_res)
            except Exception as exc:
                if n == self.max_retries - 1:
                    return await self.exec_fallback_async(prep_res, exc)
                if self.wait > 0:
                    await anyio.sleep(self.wait)
        return None

    async def run_async(self, shared: Any) -> Any:
        """Run this node (or flow) on the running event loop; return ``post_async``'s result.

        Outside :func:`pocketcore.run`, the run's executor and limit come from
        the environment, then the configuration file, then the default for the
        running backend (``asyncio`` or ``trio``). Node settings are checked
        when each node fans out (:func:`pocketcore.run` checks them all first).

        Raises:
            ConfigError: The configuration is unusable on this event loop.
        """
        if self.successors:
            warnings.warn("Node won't run successors. Use AsyncFlow.", stacklevel=1)
        if RUN.get() is not None:
            return await self._run_async(shared)
        cfg = ambient_config()
        token = RUN.set(cfg)
        try:
            if cfg.observer is None:
                return await self._run_async(shared)
            return await observed_run_async(
                self, shared, cfg.observer, lambda: self._run_async(shared)
            )
        finally:
            RUN.reset(token)

    async def _run_async(self, shared: Any) -> Any:
        p = await self.prep_async(shared)
        e = await self._exec(p)
        return await self.post_async(shared, p, e)

    def _run(self, shared: Any) -> Any:
        raise RuntimeError("Use run_async.")


def _item_function(node: AsyncNode) -> Callable[[Any], Awaitable[Any]]:
    """What the executor awaits for each item of ``node``'s parallel batch.

    In the usual case (one attempt, the default fallback, which re-raises)
    the per-item pipeline is just ``exec_async`` itself: every item's
    ``cur_retry`` is 0, so no per-item counter is needed, and handing the
    executor the bound method saves two coroutine frames per item. Otherwise
    each item runs the full pipeline with its own counter.
    """
    if node.max_retries == 1 and type(node).exec_fallback_async is _default_fallback_async:
        node.__dict__["cur_retry"] = 0
        return node.exec_async
    return functools.partial(_parallel_item, node)


async def _parallel_item(node: AsyncNode, item: Any) -> Any:
    """One item of a parallel batch: the async pipeline with its own ``cur_retry``."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return await AsyncNode._exec(node, item, attempt)
    finally:
        CUR_RETRY.reset(token)


_default_fallback_async = AsyncNode.exec_fallback_async


class AsyncBatchNode(AsyncNode, BatchNode):
    """An async batch node: ``exec_async`` runs once per item, one after another.

    ``None`` from ``prep_async`` is an empty batch.
    """

    async def _exec(self, items: Any, attempt: Attempt | None = None) -> Any:
        items = () if items is None else items
        obs = current_observer()
        if obs is not None:
            return await observed_items_async(
                self, obs, items, lambda item: AsyncNode._exec(self, item)
            )
        return [await AsyncNode._exec(self, item) for item in items]


class AsyncParallelBatchNode(AsyncNode, BatchNode):
    """An async batch node whose items run concurrently, through the run's executor.

    The executor (``asyncio``, ``trio``, ``sequential`` or a plugin's) and the
    limit come from the node's own ``executor`` / ``max_concurrency``, else the
    run's configuration. Results reach ``post_async`` in input order. When an
    item fails, the others are cancelled and awaited before the exception
    (the item's own) propagates. ``None`` from ``prep_async`` is an empty batch.
    """

    async def _exec(self, items: Any, attempt: Attempt | None = None) -> Any:
        executor, limit = executor_for(self)
        items = () if items is None else items
        obs = current_observer()
        if is_remote(executor):
            remote_fn = _item_function(detached(self))
            items = shippable(self, executor, remote_fn, items)
            if obs is not None:  # the observer stays here; see observed_after
                return await observed_after(
                    self, obs, items, lambda its: executor.map(remote_fn, its, limit=limit)
                )
            return await executor.map(remote_fn, items, limit=limit)
        run_one = _item_function(self)
        if obs is not None:
            items, run_one = observed_parallel(self, obs, items, run_one)
        return await executor.map(run_one, items, limit=limit)


class ParallelBatchNode(BatchNode):
    """A sync batch node whose items run concurrently on worker threads.

    ``prep`` / ``exec`` / ``post`` are ordinary (blocking) methods, as in
    :class:`BatchNode`; each item's ``exec`` (with its retries, waits and
    fallback, and its own ``cur_retry``) runs on a worker thread, scheduled by
    the run's executor: at most ``max_concurrency`` items at once, which is
    also the number of threads. Results reach ``post`` in input order.

    Threads cannot be interrupted: when an item fails, items not yet started
    never start, the items already running finish their current attempt and
    make no further one (a wait between attempts is cut short; their results
    are dropped), and then the first failure is raised. The same holds when
    the run is cancelled.

    Run directly (``node.run(shared)``, a sync :class:`~pocketcore.Flow`,
    :func:`pocketcore.run`), the node starts the executor's event loop for
    the batch; inside an async flow it is awaited on the flow's loop, which
    it does not block. ``None`` from ``prep`` is an empty batch.
    """

    def _exec(self, items: Any, attempt: Attempt | None = None) -> Any:
        executor, _ = executor_for(self)
        return run_blocking(executor, lambda: self._exec_on_threads(items))

    async def _exec_on_threads(self, items: Any) -> list[Any]:
        executor, limit = executor_for(self)
        items = () if items is None else items
        if is_remote(executor):
            work = _sync_item_function(detached(self))
            items = shippable(self, executor, work, items)
        else:
            work = _sync_item_function(self)
        return await map_on_threads(self, work, items, executor=executor, limit=limit)

    async def _run_async(self, shared: Any) -> Any:
        p = self.prep(shared)
        e = await self._exec_on_threads(p)
        return self.post(shared, p, e)


def _sync_item_function(node: Node) -> Callable[[Any], Any]:
    """What a worker thread runs for each item (see :func:`_item_function`)."""
    if node.max_retries == 1 and type(node).exec_fallback is _default_fallback:
        node.__dict__["cur_retry"] = 0
        return node.exec
    return functools.partial(_sync_parallel_item, node)


def _sync_parallel_item(node: Node, item: Any) -> Any:
    """One item of a threaded batch: the sync pipeline with its own ``cur_retry``."""
    attempt = Attempt(node)
    token = CUR_RETRY.set(attempt)
    try:
        return Node._exec(node, item, attempt)
    finally:
        CUR_RETRY.reset(token)


_default_fallback = Node.exec_fallback


def validate_graph(target: BaseNode, cfg: RunConfig) -> None:
    """Check every reachable node's own executor and limit before anything runs.

    Walks successors and nested flows once each (loops are fine); successors
    that are not nodes end a flow, as in PocketFlow, and are skipped.

    Raises:
        ConfigError: For the first node whose settings are unusable in ``cfg``.
    """
    seen = {id(target)}
    stack = [target]
    while stack:
        node = stack.pop()
        own = own_executor(node)
        if own is not None:
            cfg.lookup(own, node_source(node, "executor"))
        if node.max_concurrency is not None:
            check_limit(node.max_concurrency, node_source(node, "max_concurrency"))
        inner = getattr(node, "start_node", None)
        for nxt in (*node.successors.values(), inner):
            if isinstance(nxt, BaseNode) and id(nxt) not in seen:
                seen.add(id(nxt))
                stack.append(nxt)
