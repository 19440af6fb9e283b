"""Hook specifications for pocketcore plugins.

A plugin is any module or object with functions named after these specs and
marked with :data:`pocketcore.hookimpl` (or any ``pluggy.HookimplMarker``
created with the project name ``"pocketcore"``, so a plugin does not need to
import pocketcore at all). Installed distributions expose plugins through the
entry-point group ``pocketcore``::

    [project.entry-points.pocketcore]
    myexec = "my_package.plugin"

Every spec's docstring says when it is called, what its arguments are and what
its return value means. An implementation may take any subset of a spec's
arguments, by name.

There are two kinds of hooks. *Registration* hooks
(``pocketcore_register_*``) are called lazily, when their contributions are
first needed, to collect what plugins contribute. They are called once per
implementing plugin, each call through pluggy with only that plugin's
implementation (and the hook wrappers), so every contribution is recorded
with the plugin that made it:

- the plugins are called in pluggy's order: ``tryfirst`` implementations
  first, ``trylast`` ones last, otherwise the most recently registered first.
  The order decides which plugin a duplicate-name error names first; it never
  decides which of two contributions wins;
- hook wrappers (``wrapper=True`` or ``hookwrapper=True``) wrap each plugin's
  call separately, so a wrapper runs once per implementing plugin and sees
  that plugin's ``register`` callback and outcome. A plugin that only wraps a
  registration hook contributes nothing through it;
- a call that raises (the implementation, or a wrapper around it) or
  registers something invalid fails that plugin for that hook: it contributes
  nothing through the hook, the failure is recorded in
  :attr:`pocketcore.Registry.failures` and warned about with
  :class:`pocketcore.PluginWarning`, and the other plugins are unaffected. A
  wrapper that catches the exception of the call it wraps makes the call a
  success, with what the plugin registered before it raised.

They are collected again after :meth:`pocketcore.Registry.register` or
:meth:`~pocketcore.Registry.unregister`.

*Lifecycle* hooks (``pocketcore_run_*``, ``pocketcore_node_*``,
``pocketcore_batch_*``) let observers follow a run: progress bars, tracing,
metrics. When no plugin implements any lifecycle hook the kernel never calls
into pluggy at all, so they cost nothing; when one does, every event arrives
exactly once, also under the parallel executors, where an item's events
(its start and done, and its attempts') are called from the item's own
context. The attempt hooks cost a run something only when a plugin
implements one of them. Lifecycle hooks are plain functions called
synchronously: keep them quick, and do not raise from them (an exception
propagates into the run like one raised by a node). Their return values are
ignored, but for :func:`pocketcore_batch_item_sent`'s.

The parameters are typed with protocols of the kernel's lowest layer, which
the public classes satisfy: a ``node`` or ``target`` is a
:class:`pocketcore.BaseNode` (typed ``NodeLike``: its ``params``,
``successors`` and ``set_params``), an executor a
:class:`pocketcore.Executor`, a limiter a :class:`pocketcore.Limiter`
(typed ``LimiterLike``: its ``name`` and bounds). What the program itself
made (``shared``, a batch's items) is ``Any``; what is only reported
(results, actions) is ``object``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import pluggy

from pocketcore._core.executor import Executor
from pocketcore._core.limiter import LimiterLike
from pocketcore._core.node import NodeLike
from pocketcore._core.provider import ProviderSignal
from pocketcore._core.store import StoreOpener

__all__ = [
    "LIFECYCLE_HOOKS",
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "pocketcore_batch_end",
    "pocketcore_batch_item_attempt_done",
    "pocketcore_batch_item_attempt_start",
    "pocketcore_batch_item_cached",
    "pocketcore_batch_item_done",
    "pocketcore_batch_item_fallback",
    "pocketcore_batch_item_sent",
    "pocketcore_batch_item_start",
    "pocketcore_batch_start",
    "pocketcore_classify_error",
    "pocketcore_node_cache_result",
    "pocketcore_node_end",
    "pocketcore_node_start",
    "pocketcore_register_executors",
    "pocketcore_register_nodes",
    "pocketcore_register_stores",
    "pocketcore_run_end",
    "pocketcore_run_start",
]

PROJECT_NAME = "pocketcore"
"""The pluggy project name and the entry-point group plugins are found in."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (used by this module only)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations in plugins."""


@hookspec
def pocketcore_register_executors(register: Callable[[Executor], None]) -> None:
    """Contribute executors.

    Called once per implementing plugin, the first time an executor is looked
    up by name or listed (lazily, not at import). Call ``register(executor)``
    once for each executor the plugin provides; ``executor`` must satisfy
    :class:`pocketcore.Executor` (a non-empty str ``name``, a ``backend``,
    ``run`` and an async ``map``).

    If the implementation raises, or registers something that is not an
    executor, the plugin contributes no executor at all: the failure is
    recorded in :attr:`pocketcore.Registry.failures` (naming the plugin, its
    distribution and this hook) and warned about, and the other plugins'
    executors are still available.

    Args:
        register: Records one executor together with the plugin that
            registered it. It raises :class:`pocketcore.PluginError` at once
            for something that is not an executor, or a name this plugin
            already registered (catching it does not save the call). A name
            that another plugin also registers makes collecting the executors
            raise :class:`pocketcore.PluginError` naming both plugins.

    Returns:
        Nothing; the return value is ignored.
    """


@hookspec
def pocketcore_register_nodes(register: Callable[[str, type[NodeLike]], None]) -> None:
    """Contribute node (or flow) classes that can be created by name.

    Called once per implementing plugin, the first time the registered nodes
    are asked for (a flow file is loaded, ``pocketcore nodes`` lists them, or
    :meth:`pocketcore.Registry.create_node` is called). Call
    ``register(name, cls)`` for each class, a subclass of
    :class:`pocketcore.BaseNode`. Classes can also be declared without hook
    code, in the entry-point group ``pocketcore.nodes``
    (``summarize = "my_package.nodes:Summarize"``).

    As for :func:`pocketcore_register_executors`, an implementation that raises or
    registers something invalid (a name that is not a non-empty str, a class
    that is not a node class) contributes no node; the failure is recorded
    and warned about, and the other suppliers' nodes are still registered.

    Args:
        register: Records one class under a name, with the plugin that
            registered it. It raises :class:`pocketcore.PluginError` at once
            for an invalid name or class, or a name this plugin already
            registered. A name that another supplier (a plugin or a
            ``pocketcore.nodes`` entry point) also registers makes collecting
            the nodes raise :class:`pocketcore.PluginError` naming both.

    Returns:
        Nothing; the return value is ignored.
    """


@hookspec
def pocketcore_register_stores(register: Callable[[str, StoreOpener], None]) -> None:
    """Contribute result-cache stores that a cache setting can name.

    Called once per implementing plugin, the first time a store is opened by
    name. Call ``register(name, opener)`` for each store: a cache setting of
    ``"NAME:REST"`` then opens it with ``opener(REST)``, which returns a
    :class:`pocketcore.BaseStore` (see :class:`pocketcore.StoreOpener`).
    pocketcore registers ``sqlite`` and ``memory`` itself, through the same
    hook.

    As for :func:`pocketcore_register_executors`, an implementation that raises
    or registers something invalid (a name that is not a non-empty str of two
    characters or more, an opener that is not callable) contributes no store;
    the failure is recorded and warned about, and the other plugins' stores
    are still available. Two plugins registering one name is a
    :class:`pocketcore.PluginError` naming both.

    Args:
        register: Records one store opener under a name, with the plugin
            that registered it.

    Returns:
        Nothing; the return value is ignored.
    """


@hookspec
def pocketcore_run_start(target: NodeLike, shared: Any) -> None:
    """A run is starting.

    Called once per run, before anything of it runs: by :func:`pocketcore.run`,
    and by ``node.run(shared)`` / ``await node.run_async(shared)`` when called
    outside a run (a flow nested in a run does not start a new run).

    Args:
        target: The node or flow being run.
        shared: The shared store.
    """


@hookspec
def pocketcore_run_end(
    target: NodeLike,
    shared: Any,
    result: object,
    exception: BaseException | None,
    usage: Mapping[str, float],
) -> None:
    """A run has ended, normally or with an exception.

    Args:
        target: The node or flow that was run.
        shared: The shared store.
        result: What the run returned (``None`` when it raised).
        exception: The exception it raised (including cancellation), or
            ``None``. The exception still propagates to the caller.
        usage: What the run's ``exec`` calls reported using with
            :func:`pocketcore.report_usage` (and a limiter's event hooks),
            by unit (``{"tokens": 1234.0}``): all of its nodes' together.
            Empty when nothing was reported.
    """


@hookspec
def pocketcore_node_start(node: NodeLike, shared: Any) -> None:
    """A step of a flow is starting: ``node`` is about to run.

    Args:
        node: The per-step copy of the node (or nested flow) about to run;
            its ``params`` are already set.
        shared: The shared store.
    """


@hookspec
def pocketcore_node_end(
    node: NodeLike,
    shared: Any,
    action: object,
    exception: BaseException | None,
    usage: Mapping[str, float],
) -> None:
    """A step of a flow has ended.

    Args:
        node: The per-step copy that ran.
        shared: The shared store.
        action: The action its ``post`` returned (``None`` when it raised).
        exception: The exception it raised, or ``None``.
        usage: What the step reported using with
            :func:`pocketcore.report_usage` (and a limiter's event hooks),
            by unit (``{"tokens": 1234.0}``), every attempt counted: the
            node's ``exec``, a batch node's items, a nested flow's steps.
            Empty when nothing was reported.
    """


@hookspec
def pocketcore_batch_start(
    node: NodeLike,
    size: int | None,
    executor: Executor | None,
    limit: int | None,
    timeout: float | None,
    limiters: Sequence[LimiterLike],
) -> None:
    """A batch node or batch flow is about to run its items.

    Called once per batch, before its first item (and before its first cache
    hit is reported), in the task that runs the batch. It is followed by one
    :func:`pocketcore_batch_end` for the same batch, in the same context.

    Args:
        node: The batch node or batch flow.
        size: The number of items, or ``None`` when ``prep`` returned an
            iterable without a length.
        executor: The :class:`pocketcore.Executor` the items are handed to,
            as resolved for this batch (the node's own setting, else the
            run's); ``None`` for the classes that run their items one after
            another whatever the executor (``BatchNode``, ``AsyncBatchNode``,
            ``BatchFlow``, ``AsyncBatchFlow``).
        limit: The most items in flight at once: the resolved
            ``max_concurrency``, ``None`` for no limit, ``1`` for the
            one-after-another classes.
        timeout: The seconds each attempt of an item may take (the resolved
            ``timeout``), or ``None``.
        limiters: The :class:`pocketcore.Limiter` objects each item takes a
            turn of before it starts, in the order it takes them: the
            batch's own pacing (``max_per_second``, an unnamed limiter),
            then the shared limiter (``limiter``, named after its
            declaration in the configuration file). Empty when none is set.
    """


@hookspec
def pocketcore_batch_end(
    node: NodeLike,
    results: Sequence[object] | None,
    exception: BaseException | None,
    usage: Mapping[str, float],
) -> None:
    """A batch node or batch flow has finished running its items.

    Called once per batch that was reported started, after its last item
    (and its last cache hit), in the context of its
    :func:`pocketcore_batch_start`, whether the batch returned or raised.

    Args:
        node: The batch node or batch flow.
        results: The items' results in input order (with
            ``on_error="collect"``, a failed item's is a
            :class:`pocketcore.Failed`), as ``post`` will receive them;
            ``None`` when the batch raised.
        exception: What the batch raised (an item's failure, a
            cancellation, an error of the cache), or ``None``. It still
            propagates.
        usage: What the batch's items reported using with
            :func:`pocketcore.report_usage` (and a limiter's event hooks),
            by unit, every attempt counted (for the passes of a batch flow:
            its nodes'; for items run in other processes, what came back
            with their results). Empty when nothing was reported.
    """


@hookspec
def pocketcore_batch_item_start(node: NodeLike, index: int, item: Any) -> None:
    """One item of a batch is about to run.

    Called in the context the item runs in: its own task under a parallel
    executor, and the task that hands it to a worker thread for the
    thread-backed classes (the thread gets a copy of that context). So a
    context variable an observer sets here (the current tracing span, say)
    is what the item's ``exec`` sees, and siblings never see each other's.
    Each call is followed by one :func:`pocketcore_batch_item_done` for the
    same item, in the same context. Not called for the items of a batch
    that the executor runs itself (a remote executor, or one with its own
    ``map_blocking``): those are reported once the results are back.

    Args:
        node: The batch node or batch flow.
        index: The item's position in the input.
        item: The item (for batch flows, the pass's params).
    """


@hookspec
def pocketcore_batch_item_done(
    node: NodeLike,
    index: int,
    result: object,
    exception: BaseException | None,
    usage: Mapping[str, float],
) -> None:
    """One item of a batch has finished, successfully or not.

    Called once for every item that started (items never started because a
    sibling failed first are not reported). Under a parallel executor this
    is called from the item's own task, in completion order. When the
    executor runs the calls itself (a remote executor, or one with its own
    ``map_blocking``), the items of a batch are reported together, in input
    order, once the results are back; when such a batch fails, which of its
    items finished is not known here, and none is reported.

    Args:
        node: The batch node or batch flow.
        index: The item's position in the input.
        result: The item's result (``None`` when it raised; for batch flows
            the pass's last action).
        exception: The exception it raised (including cancellation), or
            ``None``.
        usage: What the item reported using with
            :func:`pocketcore.report_usage` (and a limiter's event hooks),
            by unit, its failed attempts counted too (the provider billed
            them). For an item run in another process, what came back with
            its result. Empty when nothing was reported, and always for an
            item that an executor ran itself in this process (its own
            ``map_blocking``).
    """


@hookspec
def pocketcore_batch_item_cached(node: NodeLike, index: int, item: Any, result: object) -> None:
    """One item of a batch was found in the result cache, so its ``exec`` did not run.

    Reported instead of :func:`pocketcore_batch_item_start` and
    :func:`pocketcore_batch_item_done`, from the task that pulls the batch's
    items, as the item is pulled (also for a remote executor: hits never
    leave this process).

    Args:
        node: The batch node.
        index: The item's position in the input.
        item: The item.
        result: The stored result, as ``post`` will receive it.
    """


@hookspec
def pocketcore_node_cache_result(node: NodeLike, result: object, hit: bool) -> None:
    """A node step whose result is cached has its result: from the cache, or computed.

    For a plain node that opts in to the result cache (``cache=True`` or a
    store of its own): called once per step that ended with a result,
    between that step's :func:`pocketcore_node_start` and
    :func:`pocketcore_node_end`, in the step's context. A step that raised
    is not reported; nor is a batch node's step, whose items are reported
    one by one (:func:`pocketcore_batch_item_cached`).

    Args:
        node: The node.
        result: The result ``post`` will receive.
        hit: ``True`` when it came from the cache and ``exec`` did not run;
            ``False`` when the step computed it (``exec`` returned it, and
            it was stored; or its fallback gave it, which is not stored).
    """


@hookspec
def pocketcore_batch_item_attempt_start(node: NodeLike, index: int, attempt: int) -> None:
    """One attempt of a batch item's ``exec`` is starting.

    An item makes one attempt, and more when its node's ``max_retries``
    lets it retry after a failure. Reported between the item's
    :func:`pocketcore_batch_item_start` and its
    :func:`pocketcore_batch_item_done`, in the context ``exec`` runs in:
    the item's own task, or the worker thread that runs a sync item (which
    has a copy of the item's context, so what an observer set at the item's
    start is visible here). Each call is followed by one
    :func:`pocketcore_batch_item_attempt_done` for the same attempt, in the
    same context. The wait between two attempts (the node's ``wait``) lies
    between one attempt's end and the next one's start. Each attempt hook is
    called only when a plugin implements it.

    Reported for the items of batch nodes, whose items run ``exec``; not
    for the passes of batch flows (their nodes' steps are reported with
    :func:`pocketcore_node_start`), nor for items whose executor runs them
    itself (see :func:`pocketcore_batch_item_start`). Only reported when
    a plugin implements one of the attempt hooks
    (``pocketcore_batch_item_attempt_*``, ``pocketcore_batch_item_fallback``).

    Args:
        node: The batch node.
        index: The item's position in the input.
        attempt: How many attempts the item made before this one: ``0``
            for the first (what ``cur_retry`` reads during it, unless
            ``exec`` assigns it).
    """


@hookspec
def pocketcore_batch_item_attempt_done(
    node: NodeLike, index: int, attempt: int, exception: BaseException | None, duration: float
) -> None:
    """One attempt of a batch item's ``exec`` has ended, successfully or not.

    See :func:`pocketcore_batch_item_attempt_start`. An attempt that fails
    is followed by the next attempt, or, after the last one, by the node's
    ``exec_fallback``: the item's :func:`pocketcore_batch_item_done` tells
    the item's outcome.

    Args:
        node: The batch node.
        index: The item's position in the input.
        attempt: The attempt's number, as in its start.
        exception: What ``exec`` raised (a timeout is the ``TimeoutError``
            of the attempt; a cancellation, when a sibling failed, is the
            backend's cancellation exception), or ``None``.
        duration: The seconds the attempt took (``time.perf_counter()``
            readings around the call of ``exec``), so that an observer of
            durations needs no start hook.
    """


@hookspec
def pocketcore_batch_item_fallback(
    node: NodeLike, index: int, exception: BaseException, result: object
) -> None:
    """A batch item's last attempt failed, and its node's fallback gave its result.

    Reported after ``exec_fallback`` (``exec_fallback_async``) returned,
    just before the item's :func:`pocketcore_batch_item_done`, in the same
    context; the fallback ran from the end of the last attempt to then. A
    fallback that raises (the default one re-raises) is not reported: the
    item failed, and its done event carries the exception. Reported under
    the same conditions as the attempt hooks.

    Args:
        node: The batch node.
        index: The item's position in the input.
        exception: The failure of the last attempt, which the fallback was
            given.
        result: What the fallback returned: the item's result.
    """


@hookspec
def pocketcore_batch_item_sent(
    node: NodeLike, index: int, item: Any
) -> AbstractContextManager[object] | None:
    """One item of a batch is about to be sent to an executor that runs it in another process.

    Called for the items of a remote executor (one whose ``remote`` is true,
    such as ``dask``), from the task that hands the batch to the executor,
    as the executor pulls each item (items that hit the result cache stay
    here and are not sent). Such items have no
    :func:`pocketcore_batch_item_start`: their done event comes once their
    results are back.

    This is how an observer makes its context travel with the work (a
    tracing plugin's W3C ``traceparent``, so that spans made on the worker
    join the trace). Return a context manager, or ``None``. It is pickled
    with the item and entered on the worker around the item's whole
    pipeline (its attempts and fallback), in the task or thread that runs
    it there, and exited when the item is done, also when it raised. So it
    must pickle, its class must be importable on the workers (as the node's
    own class must), and it must be a plain (sync) context manager. The
    context managers of several plugins are entered in pluggy's order of
    their results.

    Args:
        node: The batch node.
        index: The item's position in the input.
        item: The item.

    Returns:
        A picklable context manager to enter on the worker, or ``None``.
    """


@hookspec(firstresult=True)
def pocketcore_classify_error(exception: BaseException) -> ProviderSignal | None:
    """Say what a failed call's exception means about the provider it called.

    Called when an attempt of an item that passes a limiter fails, and when
    a :class:`~pocketcore.Backoff` decides how long to wait, before
    pocketcore's own reading (an HTTP status of 429 or 529, or a 5xx, with
    its retry headers, on the exception or its ``response``). The first
    implementation that returns a value wins.

    Args:
        exception: The exception the attempt raised.

    Returns:
        A :class:`~pocketcore.ProviderSignal` (``rate_limited=True`` pauses
        every item on the limiters until ``retry_after`` and retries the
        item without spending its ``max_retries``), or ``None`` to leave the
        exception to the next implementation and to pocketcore's reading.
    """


LIFECYCLE_HOOKS = (
    "pocketcore_run_start",
    "pocketcore_run_end",
    "pocketcore_node_start",
    "pocketcore_node_end",
    "pocketcore_node_cache_result",
    "pocketcore_batch_start",
    "pocketcore_batch_end",
    "pocketcore_batch_item_start",
    "pocketcore_batch_item_done",
    "pocketcore_batch_item_attempt_start",
    "pocketcore_batch_item_attempt_done",
    "pocketcore_batch_item_fallback",
    "pocketcore_batch_item_cached",
    "pocketcore_batch_item_sent",
)
"""The names of the lifecycle hooks (the ones observers implement)."""
