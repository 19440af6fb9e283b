"""``pocketcore.run``: run any node or flow from synchronous code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import sniffio

from pocketcore._core.executor import Executor
from pocketcore._dispatch.plan import refuse_timeout
from pocketcore._nodes.flows import Flow, reachable
from pocketcore._nodes.nodes import AsyncNode, BaseNode, ParallelBatchNode
from pocketcore._plugins.registry import get_registry
from pocketcore._runtime import observe
from pocketcore._runtime.config import (
    RunConfig,
    RunSettings,
    Setting,
    lookup_executor,
    run_arguments,
)
from pocketcore._runtime.context import new_run, node_source, own_executor, own_settings
from pocketcore._runtime.settings import SETTINGS, SettingKeywords, refuse_cache_true
from pocketcore._runtime.stores import open_store

if TYPE_CHECKING:
    # The keywords' names and types, as type checkers and IDEs see them (PEP 692).
    from typing_extensions import Unpack

__all__ = ["run"]


def run(target: BaseNode, shared: Any = None, **given: Unpack[SettingKeywords]) -> Any:
    """Run a node or flow, sync or async, and return what its ``run`` returns.

    For an async target this starts the event loop the chosen executor needs
    (asyncio for ``asyncio`` and ``sequential``, trio for ``trio``) and runs
    ``target.run_async(shared)`` in it; a sync target runs directly.

    Each run-level setting is resolved once, when something first needs it,
    most specific first: the argument, then the environment
    (``POCKETCORE_EXECUTOR``, ``POCKETCORE_MAX_CONCURRENCY``,
    ``POCKETCORE_MAX_PER_SECOND``, ``POCKETCORE_LIMITER``, ``POCKETCORE_ON_ERROR``,
    ``POCKETCORE_TIMEOUT``, ``POCKETCORE_CACHE``), then ``pocketcore.toml`` or ``[tool.pocketcore]``
    in ``pyproject.toml``, the nearest from the working directory upward (else from the
    program's folder), then the default. A node's or flow's own setting still wins for
    that node; the target's own executor also decides which event loop is started.

    Args:
        target: The node or flow to run.
        shared: The shared store; a new empty dict when ``None``.
        **given: The run-level settings, keyword only (the rows of the
            settings table), each described below.
        executor: An executor name or executor object for the whole run.
        max_concurrency: The most items of a parallel batch in flight at once.
        max_per_second: The most items of a parallel batch started per second.
        limiter: A :class:`~pocketcore.Limiter`, or the name of one declared in
            the configuration file, shared by every parallel batch item.
        on_error: ``"raise"`` (default) or ``"collect"``; see
            :class:`~pocketcore.Failed`.
        timeout: Seconds each attempt of a parallel batch item's
            ``exec_async`` may take (``POCKETCORE_TIMEOUT``).
        cache: Where to keep ``exec`` results for every node that does not
            opt out (``cache=False`` on it): a store specification
            (``"memory"``, a file path, ``"sqlite:///path"``, ``"NAME:..."``),
            a :class:`~pocketcore.Store`, or ``False`` for none, whatever the
            environment and the file say. The store is opened (and a bad
            one reported) before any node runs.

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
    settings = RunSettings(run_arguments(given))
    registry = get_registry()
    chosen = settings.arguments.get("executor")
    if chosen is not None and isinstance(chosen.value, str):
        registry.get_executor(chosen.value, source=chosen.source)  # an unknown name fails now

    if not isinstance(target, AsyncNode):
        cfg = new_run(None, settings)
        check_graph(target, cfg)
        return observe.whole_run(cfg, target, shared, lambda: target.run(shared))

    try:
        running = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        pass
    else:
        raise RuntimeError(
            f"pocketcore.run() cannot start an event loop inside a running {running} loop; "
            "use 'await target.run_async(shared)' there"
        )
    start_loop = _loop_starter(target, settings)

    async def main() -> Any:
        cfg = new_run(sniffio.current_async_library(), settings)
        check_graph(target, cfg)
        return await observe.whole_run_async(cfg, target, shared, lambda: target.run_async(shared))

    return start_loop(main)


def _loop_starter(target: BaseNode, settings: RunSettings) -> Callable[[Callable[[], Any]], Any]:
    """How to start the event loop for an async ``target``.

    The first choice that needs a particular backend (the target's own
    executor, then the run's) starts its loop; else asyncio. The run's
    executor setting is only looked for in the environment and the files
    when some node of the graph fans out or chooses an executor: otherwise
    nothing needs one, and those are not read (as PocketFlow never reads them).
    """
    registry = get_registry()
    candidates: list[Executor] = []
    own = own_executor(target)
    if own is not None:
        candidates.append(lookup_executor(own, node_source(target, "executor"), None, registry))
    chosen = settings.arguments.get("executor")
    if chosen is None and needs_executor(target):
        chosen = settings.get("executor")
    if chosen is not None:
        candidates.append(lookup_executor(chosen.value, chosen.source, None, registry))
    starter = next((c for c in candidates if c.backend is not None), None)
    if starter is None and candidates:
        starter = candidates[0]
    if starter is None and "asyncio" in registry.executors:
        starter = registry.executors["asyncio"].executor
    return _start_asyncio if starter is None else starter.run


def _start_asyncio(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Start asyncio through anyio when no executor plugin is loaded at all.

    Flows without parallel nodes need an event loop but no executor; this lets
    them run with plugin autoload disabled.
    """

    async def main() -> Any:
        return await fn()

    return anyio.run(main)


def needs_executor(target: BaseNode) -> bool:
    """Whether any node reachable from ``target`` fans out, or chooses an executor or a limit.

    Only then is the run's executor looked for in the environment and the
    files: other settings of a node (``on_error``, say) do not need one.
    """
    return any(
        type(node).fans_out
        or own_executor(node) is not None
        or SETTINGS["max_concurrency"].own(node) is not None
        for node in reachable(target)
    )


def check_graph(target: BaseNode, cfg: RunConfig) -> None:
    """Check every reachable node's own settings before anything runs.

    Raises:
        ConfigError: For the first node whose settings are unusable in ``cfg``
            (a bad value, an unknown executor or limiter, an executor that
            cannot run on this backend).
    """
    for node in reachable(target):
        own = own_settings(node)
        executor = own.get("executor")
        if executor is not None:
            cfg.lookup(executor.value, executor.source)
        limiter = own.get("limiter")
        if limiter is not None:
            cfg.limiter(limiter.value, limiter.source)
        if isinstance(node, ParallelBatchNode):
            timeout = own.get("timeout") or cfg.setting("timeout")
            if timeout is not None:
                raise refuse_timeout(node, timeout.value)
    _open_caches(target, cfg)


def _open_caches(target: BaseNode, cfg: RunConfig) -> None:
    """Open the stores the run's nodes will use now, so a bad one fails before any item runs.

    A flow's own setting is opened too (the nodes inside use it). The
    run-level setting is read only when some node has an ``exec`` (a flow
    alone has none) and does not choose for itself (``cache = True`` opts a
    node in to the run's store; on a flow it names none, and is refused).

    Raises:
        ConfigError: A store cannot be opened, or a flow says ``cache=True``.
    """
    chosen: list[Setting | None] = []
    for node in reachable(target):
        own = own_settings(node).get("cache")
        if own is not None and own.value is True and isinstance(node, Flow):
            raise refuse_cache_true(own.source)
        if own is not None and own.value is not True:
            chosen.append(own)
        elif not isinstance(node, Flow) and not chosen.count(None):
            chosen.append(None)  # the run's, read once below
    for setting in chosen:
        found = cfg.setting("cache") if setting is None else setting
        if found is not None and found.value is True:
            raise refuse_cache_true(found.source)
        if found is not None and found.value is not False:
            open_store(found.value, found.source)
