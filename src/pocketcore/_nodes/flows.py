"""Flows: graphs of nodes joined by actions, themselves usable as nodes."""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any

from pocketcore._dispatch.batch import each, each_async, fan_out, fan_out_blocking
from pocketcore._nodes.nodes import AsyncNode, BaseNode, ParallelBatchNode
from pocketcore._runtime import observe
from pocketcore._runtime.context import enter_scope, leave_scope
from pocketcore._runtime.settings import SettingKeywords

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "AsyncBatchFlow",
    "AsyncFlow",
    "AsyncParallelBatchFlow",
    "BatchFlow",
    "Flow",
    "ParallelBatchFlow",
    "reachable",
]

# The node classes copy.copy would copy as a new instance with a copy of the
# __dict__ (most), and those it would not: each class is asked once.
_plain: set[type] = set()
_custom: set[type] = set()
_new = object.__new__


_COPY_HOOKS = frozenset(
    {
        "__slots__",
        "__new__",
        "__copy__",
        "__reduce__",
        "__reduce_ex__",
        "__getstate__",
        "__setstate__",
        "__getnewargs__",
        "__getnewargs_ex__",
    }
)


def _copies_plainly(cls: type) -> bool:
    """Whether ``copy.copy`` of a ``cls`` instance is just new object + dict copy.

    True unless a class of its MRO (other than ``object``) customises creation,
    copying or pickling, or keeps state in ``__slots__``; then ``copy.copy`` is
    used as is.
    """
    return not any(_COPY_HOOKS & vars(c).keys() for c in cls.__mro__[:-1])


def _copy(node: BaseNode | None) -> Any:
    """``copy.copy(node)``, without its generic machinery for plain node classes.

    PocketFlow copies every node before running it; ``copy.copy`` spends most
    of a step's time finding out how to copy. For the classes users write (no
    copy or pickle hooks), a new instance with a copy of the ``__dict__`` is
    exactly what ``copy.copy`` produces.
    """
    if node is None:
        return None
    cls = type(node)
    if cls not in _plain:
        if cls in _custom:
            return copy.copy(node)
        (_plain if _copies_plainly(cls) else _custom).add(cls)
        return _copy(node)
    new = _new(cls)
    new.__dict__ = node.__dict__.copy()
    return new


class _Pass:
    """One pass of a flow: its own settings in force, and where the walk starts.

    Entered, it gives how steps are run (``None``: nobody listens, the
    flow calls each step itself), a copy of the first node, and the params
    every node of the pass shares.
    """

    __slots__ = ("flow", "params", "scope")

    def __init__(self, flow: Flow, params: dict[str, Any] | None) -> None:
        self.flow, self.params = flow, params

    def __enter__(self) -> tuple[Any, Any, dict[str, Any]]:
        flow = self.flow
        self.scope = enter_scope(flow)
        try:
            return observe.steppers(), _copy(flow.start_node), self.params or {**flow.params}
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if self.scope is not None:
            leave_scope(self.scope)


class Flow(BaseNode):
    """Runs nodes from ``start``, following the action each ``post`` returns.

    Every step runs a shallow copy of the node, so one node object can appear
    in several flows (or several passes of a batch flow) at once. All nodes of
    one pass share one params dict: the flow's params, or a batch flow's
    merged params. A flow is a node: it can be the successor of a node, or a
    node inside another flow. Its ``post`` returns the last action by default.

    Args:
        start: The first node (also settable later with :meth:`start`).
        executor, max_concurrency, max_per_second, limiter, on_error, timeout, cache,
        cache_ttl:
            Keyword only; see :class:`BaseNode`.
    """

    holds_nodes = True

    def __init__(self, start: BaseNode | None = None, **settings: Unpack[SettingKeywords]) -> None:
        super().__init__(**settings)
        self.start_node = start

    def start(self, start: BaseNode) -> BaseNode:
        """Set the first node and return it (so ``flow.start(a) >> b`` chains)."""
        self.start_node = start
        return start

    def get_next_node(self, curr: BaseNode, action: Any) -> BaseNode | None:
        """The successor of ``curr`` for ``action`` (``None`` means ``"default"``).

        Returns ``None`` when there is none; warns when ``curr`` has successors
        but none for this action, since the flow then ends early.
        """
        nxt = curr.successors.get(action or "default")
        if not nxt and curr.successors:
            warnings.warn(
                f"Flow ends: '{action}' not found in {list(curr.successors)}", stacklevel=1
            )
        return nxt

    def _orch(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        with _Pass(self, params) as (observed, curr, p):
            last_action = None
            while curr:
                curr.set_params(p)
                last_action = curr._run(shared) if observed is None else observed[0](curr, shared)
                curr = _copy(self.get_next_node(curr, last_action))
            return last_action

    def _run(self, shared: Any) -> Any:
        p = self.prep(shared)
        o = self._orch(shared)
        return self.post(shared, p, o)

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        """Return ``exec_res``: for a flow, the last action of its last node."""
        return exec_res


class BatchFlow(Flow):
    """Runs the whole flow once per params dict that ``prep`` returns, in order.

    Each pass sees ``{**flow.params, **item}`` as its params. ``post`` receives
    the list from ``prep`` (``[]`` for ``None``) and ``None`` as ``exec_res``.
    """

    def _run(self, shared: Any) -> Any:
        pr = self.prep(shared) or []
        each(self, pr, work=lambda bp: self._orch(shared, {**self.params, **bp}))
        return self.post(shared, pr, None)


class AsyncFlow(Flow, AsyncNode):
    """A flow that may hold async nodes (and sync ones, which run inline)."""

    async def _orch_async(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        with _Pass(self, params) as (observed, curr, p):
            last_action = None
            while curr:
                curr.set_params(p)
                if observed is not None:
                    step, step_async = observed
                    awaited = isinstance(curr, _AWAITED)
                    last_action = await step_async(curr, shared) if awaited else step(curr, shared)
                elif isinstance(curr, _AWAITED):
                    last_action = await curr._run_async(shared)
                else:
                    last_action = curr._run(shared)
                curr = _copy(self.get_next_node(curr, last_action))
            return last_action

    async def _run_async(self, shared: Any) -> Any:
        p = await self.prep_async(shared)
        o = await self._orch_async(shared)
        return await self.post_async(shared, p, o)

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        """Return ``exec_res``: the last action of the flow's last node."""
        return exec_res


class AsyncBatchFlow(AsyncFlow, BatchFlow):
    """An async :class:`BatchFlow`: one pass per params dict, one after another."""

    async def _run_async(self, shared: Any) -> Any:
        pr = await self.prep_async(shared) or []
        await each_async(self, pr, work=lambda bp: self._orch_async(shared, {**self.params, **bp}))
        return await self.post_async(shared, pr, None)


class AsyncParallelBatchFlow(AsyncFlow, BatchFlow):
    """An async batch flow whose passes run concurrently, through the run's executor.

    Executor and limit come from the flow's own ``executor`` /
    ``max_concurrency``, else the run's configuration. A failing pass cancels
    the others before its exception propagates.
    """

    fans_out = True

    async def _run_async(self, shared: Any) -> Any:
        pr = await self.prep_async(shared) or []
        await fan_out(self, pr, work=lambda bp: self._orch_async(shared, {**self.params, **bp}))
        return await self.post_async(shared, pr, None)


class ParallelBatchFlow(BatchFlow):
    """A sync batch flow whose passes run concurrently on worker threads.

    Each params dict from ``prep`` runs one pass of the flow on a worker
    thread, scheduled by the run's executor (``max_concurrency`` passes, and
    threads, at once). When a pass fails (or the run is cancelled), passes
    not started never start, and the passes already running run to their
    end (a thread cannot be interrupted); then the first failure is raised.
    Inside an async flow it is awaited without blocking the loop.
    """

    fans_out = True

    def _run(self, shared: Any) -> Any:
        pr = self.prep(shared) or []
        fan_out_blocking(self, pr, work=lambda bp: self._orch(shared, {**self.params, **bp}))
        return self.post(shared, pr, None)

    async def _run_async(self, shared: Any) -> Any:
        # Inside an async flow: awaited on the flow's loop, which it does not block.
        pr = self.prep(shared) or []
        await fan_out(
            self, pr, blocking=True, work=lambda bp: self._orch(shared, {**self.params, **bp})
        )
        return self.post(shared, pr, None)


def reachable(target: BaseNode) -> list[BaseNode]:
    """Every node reachable from ``target``, once each: successors and the nodes of nested flows.

    Loops are fine; successors that are not nodes end a flow, as in
    PocketFlow, and are skipped.
    """
    found, seen = [target], {id(target)}
    for node in found:  # grows while it is walked
        inner = node.start_node if isinstance(node, Flow) else None
        for nxt in (*node.successors.values(), inner):
            if isinstance(nxt, BaseNode) and id(nxt) not in seen:
                seen.add(id(nxt))
                found.append(nxt)
    return found


# What an async flow awaits rather than calls: PocketFlow's async nodes, and
# the thread-backed batches, which would otherwise block the loop.
_AWAITED = (AsyncNode, ParallelBatchNode, ParallelBatchFlow)
