"""Nodes: the steps of a flow, with PocketFlow's lifecycle and API.

``prep`` reads the shared store, ``exec`` does the work (retried up to
``max_retries`` times, with ``wait`` seconds between attempts, then handed to
``exec_fallback``), and ``post`` writes results back and returns the action
that picks the next node. Batch variants run ``exec`` once per item of what
``prep`` returned; the *Parallel* variant hands the items to the run's executor.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

from pocketcore._core.executor import Executor
from pocketcore._core.store import Store
from pocketcore._dispatch.attempts import reraise, reraise_async
from pocketcore._dispatch.batch import each, each_async, fan_out, fan_out_blocking
from pocketcore._dispatch.step import exec_step, exec_step_async
from pocketcore._runtime import observe
from pocketcore._runtime.backoff import Backoff
from pocketcore._runtime.cache import default_cache_key
from pocketcore._runtime.context import CUR_RETRY, RUN, TIMING, current_config
from pocketcore._runtime.limits import Limiter
from pocketcore._runtime.settings import SettingKeywords, configure, step_settings

if TYPE_CHECKING:
    # The keywords' names and types, as type checkers and IDEs see them (PEP 692).
    from typing_extensions import Unpack

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
        max_per_second: Keyword only. The most items of one parallel batch
            started per second, spaced evenly (a positive number).
        limiter: Keyword only. A :class:`~pocketcore.Limiter`, or the name of
            one declared in the configuration file, whose budget every item
            of every node naming it shares.
        on_error: Keyword only. ``"raise"`` (fail fast, the default) or
            ``"collect"``: every item of a parallel batch node runs, and one
            that fails becomes a :class:`~pocketcore.Failed` in its slot.
        timeout: Keyword only. Seconds each attempt of ``exec_async`` may
            take (a plain async node's, or each item's of an async batch); a
            longer one is cancelled and fails with ``TimeoutError`` (so
            retries, wait and the fallback apply). Refused on a class whose
            ``exec`` blocks, which nothing could stop.
        cache: Keyword only. Whether and where to keep the results of
            ``exec``, so that a later run with the same input skips it. The
            items of batch nodes are kept in the run's store unless the node
            says ``False`` (for an ``exec`` with side effects); a plain node
            only when it says ``True`` (the run's store) or names a store of
            its own: a store specification (``"memory"``, a file path,
            ``"sqlite:///path"``, ``"NAME:..."`` for a plugin's store) or a
            :class:`~pocketcore.Store`. See "Resuming and caching" in the docs.
        cache_ttl: Keyword only. Seconds a cached result is used for after
            it was computed; an older one is computed again.

        Each is also settable as a class attribute. On a flow, it applies to
        every node inside that does not set its own. ``max_per_second``,
        ``limiter`` and ``on_error`` are about the items of parallel batches:
        a plain node or a sequential batch node refuses them.

        pocketcore reads a setting from these keywords and from class
        attributes (of a type the setting takes), never from attributes a
        program sets on its own instances: ``self.timeout = 30`` in a
        PocketFlow node's ``__init__`` is left alone.

    Raises:
        ConfigError: A value has the wrong type or is out of range, or the
            setting does nothing for this class.

    Attributes:
        params: The node's parameters, set by :meth:`set_params` (a flow sets
            the same dict on every node of one pass).
        successors: Action name -> next node.
    """

    executor: str | Executor | None = None
    max_concurrency: int | None = None
    max_per_second: float | None = None
    limiter: str | Limiter | None = None
    on_error: str | None = None
    timeout: float | None = None
    cache: str | os.PathLike[str] | Store | bool | None = None
    cache_ttl: float | None = None
    #: Bump it to invalidate what the cache holds for this class (any
    #: picklable value; part of every key).
    cache_version: Any = None
    #: Whether the class fans its items out through an executor (the
    #: *Parallel* classes). A run whose graph has none never needs an executor,
    #: so it never reads the executor settings.
    fans_out: ClassVar[bool] = False
    #: Whether the class runs other nodes (the flows): its settings are in
    #: force for the nodes inside it.
    holds_nodes: ClassVar[bool] = False
    #: Whether the class's work is an awaited ``exec_async`` (the async
    #: nodes), which a ``timeout`` can stop; a blocking ``exec`` cannot be.
    async_exec: ClassVar[bool] = False
    # Whether a step of this node must look up a cache or a timeout of the
    # node's own, or runs an ``_exec`` other than the plain step's (a batch
    # node's, a subclass's own): decided once per class here, and per node by
    # its constructor's keywords (pocketcore._runtime.settings.STEP_SETTINGS).
    _step_settings: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own_exec = getattr(cls, "_exec", exec_step) not in (exec_step, exec_step_async)
        cls._step_settings = step_settings(cls) or own_exec

    def __init__(self, **settings: Unpack[SettingKeywords]) -> None:
        self.params: dict[str, Any] = {}
        self.successors: dict[str, BaseNode] = {}
        configure(self, settings)

    # Defined beside the cache, which tells an override from it by identity.
    cache_key = default_cache_key

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
        return observe.whole_run(current_config(), self, shared, lambda: self._run(shared))

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
        wait: Seconds to sleep between attempts (default 0), or a
            :class:`~pocketcore.Backoff`: exponential waits with jitter, and
            the server's ``retry-after`` when a failure carries one.
        executor, max_concurrency, max_per_second, limiter, on_error, timeout, cache,
        cache_ttl:
            Keyword only; see :class:`BaseNode`.

    Attributes:
        cur_retry: The 0-based attempt of the item being executed. Inside
            ``exec`` it belongs to the current item, even when several items of
            the same node run concurrently.
    """

    def __init__(
        self,
        max_retries: int = 1,
        wait: float | Backoff = 0,
        **settings: Unpack[SettingKeywords],
    ) -> None:
        super().__init__(**settings)
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

    #: Called with the last exception once every attempt failed; re-raises it by default.
    exec_fallback = reraise

    # The per-item pipeline (attempts, waits, fallback, the cache) lives in
    # dispatch; the function is the method, so a step runs it with no frame in between.
    _exec = exec_step


class BatchNode(Node):
    """A node whose ``prep`` returns an iterable of items; ``exec`` runs once per item.

    Items run one after another, in order, whatever the executor. ``exec_res``
    given to ``post`` is the list of per-item results.
    """

    def _exec(self, items: Any) -> Any:
        return each(self, items or [])


class AsyncNode(Node):
    """A node with async ``prep_async`` / ``exec_async`` / ``post_async``.

    Run it with ``await node.run_async(shared)`` or :func:`pocketcore.run`;
    calling :meth:`run` raises ``RuntimeError``.

    A ``timeout`` (keyword, class attribute, or in force from a flow or the
    run) bounds each attempt of ``exec_async``: a longer one is cancelled and
    fails with ``TimeoutError``, and retries, ``wait`` and the fallback apply.
    """

    async_exec = True

    async def prep_async(self, shared: Any) -> Any:
        """Async :meth:`~BaseNode.prep`. Returns ``None`` by default."""

    async def exec_async(self, prep_res: Any) -> Any:
        """Async :meth:`~BaseNode.exec`. Returns ``None`` by default."""

    #: Async :meth:`~Node.exec_fallback`; re-raises ``exc`` by default.
    exec_fallback_async = reraise_async

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        """Async :meth:`~BaseNode.post`. Returns ``None`` (the default action)."""

    # The async pipeline, in dispatch, as the method itself (see Node._exec).
    _exec = exec_step_async

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
        return await observe.whole_run_async(
            current_config(), self, shared, lambda: self._run_async(shared)
        )

    async def _run_async(self, shared: Any) -> Any:
        p = await self.prep_async(shared)
        if self._step_settings or TIMING[0] or self.max_retries != 1:
            e = await self._exec(p)
        else:
            # The usual step (one attempt, nothing to look up), with no
            # coroutine between it and exec_async: what exec_step_async does.
            self.__dict__["cur_retry"] = 0
            try:
                e = await self.exec_async(p)
            except Exception as exc:
                e = await self.exec_fallback_async(p, exc)
        return await self.post_async(shared, p, e)

    def _run(self, shared: Any) -> Any:
        raise RuntimeError("Use run_async.")


class AsyncBatchNode(AsyncNode, BatchNode):
    """An async batch node: ``exec_async`` runs once per item, one after another.

    ``None`` from ``prep_async`` is an empty batch.
    """

    async def _exec(self, items: Any) -> Any:
        return await each_async(self, items)


class AsyncParallelBatchNode(AsyncNode, BatchNode):
    """An async batch node whose items run concurrently, through the run's executor.

    The executor (``asyncio``, ``trio``, ``sequential`` or a plugin's) and the
    limit come from the node's own ``executor`` / ``max_concurrency``, else the
    run's configuration. Results reach ``post_async`` in input order. When an
    item fails, the others are cancelled and awaited before the exception
    (the item's own) propagates. ``None`` from ``prep_async`` is an empty batch.
    """

    fans_out = True

    async def _exec(self, items: Any) -> Any:
        return await fan_out(self, items)


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

    fans_out = True

    def _exec(self, items: Any) -> Any:
        return fan_out_blocking(self, items)

    async def _run_async(self, shared: Any) -> Any:
        # Inside an async flow: awaited on the flow's loop, which it does not block.
        p = self.prep(shared)
        e = await fan_out(self, p, blocking=True)
        return self.post(shared, p, e)
