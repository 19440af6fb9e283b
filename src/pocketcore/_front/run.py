"""``pocketcore.run``: run any node or flow from synchronous code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import sniffio

from pocketcore._nodes.nodes import AsyncNode, BaseNode, validate_graph
from pocketcore._plugins.registry import get_registry
from pocketcore._runtime.config import lookup_executor, resolve_run, run_level_settings
from pocketcore._runtime.context import (
    RUN,
    node_source,
    observed_run,
    observed_run_async,
    own_executor,
)

__all__ = ["run"]


def run(
    target: BaseNode,
    shared: Any = None,
    *,
    executor: Any = None,
    max_concurrency: int | None = None,
) -> Any:
    """Run a node or flow, sync or async, and return what its ``run`` returns.

    For an async target this starts the event loop the chosen executor needs
    (asyncio for ``asyncio`` and ``sequential``, trio for ``trio``) and runs
    ``target.run_async(shared)`` in it; a sync target runs directly.

    The run's executor and limit are resolved once, most specific first: the
    ``executor`` / ``max_concurrency`` arguments, then ``POCKETCORE_EXECUTOR``
    / ``POCKETCORE_MAX_CONCURRENCY``, then ``pocketcore.toml`` or
    ``[tool.pocketcore]`` in ``pyproject.toml`` of the working directory, then
    the default for the backend. A node's or flow's own ``executor`` /
    ``max_concurrency`` still wins for that node; the target's own executor
    also decides which event loop is started.

    Args:
        target: The node or flow to run.
        shared: The shared store; a new empty dict when ``None``.
        executor: An executor name or executor object for the whole run.
        max_concurrency: The most items of a parallel batch in flight at once.

    Returns:
        What ``target.run(shared)`` (or ``run_async``) returns: for a flow,
        its last action unless its ``post`` says otherwise.

    Raises:
        TypeError: ``target`` is not a node or flow.
        RuntimeError: Called with an event loop already running in this
            thread (``await target.run_async(shared)`` is the way there).
        ConfigError: The configuration is unusable; the message names where
            the bad value came from.
        Exception: Whatever the flow itself raises, unchanged.
    """
    if not isinstance(target, BaseNode):
        raise TypeError(f"pocketcore.run() needs a node or flow, got {type(target).__name__}")
    if shared is None:
        shared = {}
    registry = get_registry()
    exe, limit = run_level_settings(executor, max_concurrency)

    if not isinstance(target, AsyncNode):
        cfg = resolve_run(None, exe, limit, registry)
        validate_graph(target, cfg)
        token = RUN.set(cfg)
        try:
            if cfg.observer is None:
                return target.run(shared)
            return observed_run(target, shared, cfg.observer, lambda: target.run(shared))
        finally:
            RUN.reset(token)

    try:
        running = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        pass
    else:
        raise RuntimeError(
            f"pocketcore.run() cannot start an event loop inside a running {running} loop; "
            "use 'await target.run_async(shared)' there"
        )

    # The loop to start: the first choice that needs a particular backend
    # (the target's own executor, then the run's), else asyncio.
    candidates = []
    own = own_executor(target)
    if own is not None:
        source = node_source(target, "executor")
        candidates.append(lookup_executor(own, source, None, registry))
    if exe is not None:
        candidates.append(lookup_executor(exe.value, exe.source, None, registry))
    starter = next((c for c in candidates if c.backend is not None), None)
    if starter is None and candidates:
        starter = candidates[0]
    if starter is None and "asyncio" in registry.executors:
        starter = registry.executors["asyncio"].executor
    start_loop = _start_asyncio if starter is None else starter.run

    async def main() -> Any:
        cfg = resolve_run(sniffio.current_async_library(), exe, limit, registry)
        validate_graph(target, cfg)
        token = RUN.set(cfg)
        try:
            if cfg.observer is None:
                return await target.run_async(shared)
            return await observed_run_async(
                target, shared, cfg.observer, lambda: target.run_async(shared)
            )
        finally:
            RUN.reset(token)

    return start_loop(main)


def _start_asyncio(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Start asyncio through anyio when no executor plugin is loaded at all.

    Flows without parallel nodes need an event loop but no executor; this lets
    them run with plugin autoload disabled.
    """

    async def main() -> Any:
        return await fn()

    return anyio.run(main)
