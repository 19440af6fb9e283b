"""Per-run and per-item state, carried in context variables.

Context variables are copied into every task an executor starts, so each
concurrently running item sees its own retry counter and every task of a run
sees the run's configuration, on asyncio and trio alike.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import sniffio

from ._config import RunConfig, check_limit, resolve_run, run_level_settings
from ._executor import Executor
from ._plugins import get_registry

if TYPE_CHECKING:
    from ._nodes import BaseNode

__all__ = ["CUR_RETRY", "RUN", "ambient_config", "executor_for", "validate_graph"]

RUN: ContextVar[RunConfig | None] = ContextVar("pocketcore_run", default=None)
"""The configuration of the run in progress, if any."""

CUR_RETRY: ContextVar[tuple[object, int] | None] = ContextVar("pocketcore_cur_retry", default=None)
"""``(node, attempt)`` of the item attempt executing in this context."""


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


def _source(node: BaseNode, attr: str) -> str:
    return f"attribute {attr} of {type(node).__name__} node {node!r}"


def executor_for(node: BaseNode) -> tuple[Executor, int | None]:
    """The executor and limit ``node`` fans out with in the current run.

    The node's own ``executor`` / ``max_concurrency`` win over the run's.

    Raises:
        ConfigError: The node names an unknown executor, one that cannot run on
            this run's backend, or a bad limit.
    """
    cfg = RUN.get()
    if cfg is None:
        cfg = ambient_config()
    own: Any = node.executor
    executor = cfg.executor if own is None else cfg.lookup(own, _source(node, "executor"))
    limit = node.max_concurrency
    if limit is None:
        return executor, cfg.limit
    return executor, check_limit(limit, _source(node, "max_concurrency"))


def iter_graph(start: BaseNode) -> list[BaseNode]:
    """Every node reachable from ``start``: successors and nested flows, each once."""
    seen: dict[int, BaseNode] = {}
    stack = [start]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(node.successors.values())
        inner = getattr(node, "start_node", None)
        if inner is not None:
            stack.append(inner)
    return list(seen.values())


def validate_graph(target: BaseNode, cfg: RunConfig) -> None:
    """Check every node's own executor and limit before anything runs.

    Raises:
        ConfigError: For the first node whose settings are unusable in ``cfg``.
    """
    for node in iter_graph(target):
        if node.executor is not None:
            cfg.lookup(node.executor, _source(node, "executor"))
        if node.max_concurrency is not None:
            check_limit(node.max_concurrency, _source(node, "max_concurrency"))
