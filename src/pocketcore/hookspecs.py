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
exactly once, also under the parallel executors, where ``batch_item_done``
is called from the item's own task. Lifecycle hooks are plain functions
called synchronously: keep them quick, and do not raise from them (an
exception propagates into the run like one raised by a node).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = [
    "LIFECYCLE_HOOKS",
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "pocketcore_batch_item_cached",
    "pocketcore_batch_item_done",
    "pocketcore_batch_item_start",
    "pocketcore_batch_start",
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
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
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
def pocketcore_register_nodes(register: Callable[[str, type], None]) -> None:
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
def pocketcore_register_stores(register: Callable[[str, Callable[[str], Any]], None]) -> None:
    """Contribute result-cache stores that a cache setting can name.

    Called once per implementing plugin, the first time a store is opened by
    name. Call ``register(name, opener)`` for each store: a cache setting of
    ``"NAME:REST"`` then opens it with ``opener(REST)``, which returns an
    object satisfying :class:`pocketcore.Store` (see
    :class:`pocketcore.StoreOpener`). pocketcore registers ``sqlite`` and
    ``memory`` itself, through the same hook.

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
def pocketcore_run_start(target: Any, shared: Any) -> None:
    """A run is starting.

    Called once per run, before anything of it runs: by :func:`pocketcore.run`,
    and by ``node.run(shared)`` / ``await node.run_async(shared)`` when called
    outside a run (a flow nested in a run does not start a new run).

    Args:
        target: The node or flow being run.
        shared: The shared store.
    """


@hookspec
def pocketcore_run_end(target: Any, shared: Any, result: Any, exception: Any) -> None:
    """A run has ended, normally or with an exception.

    Args:
        target: The node or flow that was run.
        shared: The shared store.
        result: What the run returned (``None`` when it raised).
        exception: The exception it raised (including cancellation), or
            ``None``. The exception still propagates to the caller.
    """


@hookspec
def pocketcore_node_start(node: Any, shared: Any) -> None:
    """A step of a flow is starting: ``node`` is about to run.

    Args:
        node: The per-step copy of the node (or nested flow) about to run;
            its ``params`` are already set.
        shared: The shared store.
    """


@hookspec
def pocketcore_node_end(node: Any, shared: Any, action: Any, exception: Any) -> None:
    """A step of a flow has ended.

    Args:
        node: The per-step copy that ran.
        shared: The shared store.
        action: The action its ``post`` returned (``None`` when it raised).
        exception: The exception it raised, or ``None``.
    """


@hookspec
def pocketcore_batch_start(node: Any, size: Any) -> None:
    """A batch node or batch flow is about to run its items.

    Args:
        node: The batch node or batch flow.
        size: The number of items, or ``None`` when ``prep`` returned an
            iterable without a length.
    """


@hookspec
def pocketcore_batch_item_start(node: Any, index: int, item: Any) -> None:
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
def pocketcore_batch_item_done(node: Any, index: int, result: Any, exception: Any) -> None:
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
    """


@hookspec
def pocketcore_batch_item_cached(node: Any, index: int, item: Any, result: Any) -> None:
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


LIFECYCLE_HOOKS = (
    "pocketcore_run_start",
    "pocketcore_run_end",
    "pocketcore_node_start",
    "pocketcore_node_end",
    "pocketcore_batch_start",
    "pocketcore_batch_item_start",
    "pocketcore_batch_item_done",
    "pocketcore_batch_item_cached",
)
"""The names of the lifecycle hooks (the ones observers implement)."""
