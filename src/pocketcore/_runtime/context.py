"""The run in progress and the item in progress, carried in context variables.

Context variables are copied into every task an executor starts, so each
concurrently running item sees its own retry counter and every task of a run
sees the run's configuration, on asyncio and trio alike.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from typing import Any

import attrs
import sniffio

from pocketcore._core.executor import Executor
from pocketcore._plugins.registry import get_registry
from pocketcore._runtime.config import RunConfig, RunSettings, Setting
from pocketcore._runtime.limits import Limiter
from pocketcore._runtime.settings import SETTINGS

__all__ = [
    "CUR_RETRY",
    "RUN",
    "THREAD_STOP",
    "TIMING",
    "Controls",
    "ItemState",
    "batch_controls",
    "count_timing",
    "current_config",
    "enter_scope",
    "executor_for",
    "leave_scope",
    "new_run",
    "node_source",
    "own_cache",
    "own_executor",
    "own_settings",
    "step_timeout",
]

RUN: ContextVar[RunConfig | None] = ContextVar("pocketcore_run", default=None)
"""The configuration of the run in progress, if any."""


class ItemState:
    """What one item's layers share while it runs: its retry counter, and how it ended.

    Items of a parallel batch share one node object, so ``node.cur_retry``
    cannot live on the node alone: each item's task carries its own state in
    :data:`CUR_RETRY`, and ``Node.cur_retry`` reads it when it belongs to that
    node. Sequential batches without a cache skip this and keep the counter
    on the node, as PocketFlow does.

    Attributes:
        node: The node whose item this is.
        n: The 0-based attempt in progress (``cur_retry``).
        returned: ``exec`` returned the item's result (a fallback did not
            make it): the result cache stores only such results.
    """

    __slots__ = ("n", "node", "returned")

    def __init__(self, node: object) -> None:
        self.node = node
        self.n = 0
        self.returned = False


CUR_RETRY: ContextVar[ItemState | None] = ContextVar("pocketcore_cur_retry", default=None)
"""The :class:`ItemState` of the batch item executing in this context, if any."""

TIMING = [0]
"""How many runs, and flows with settings of their own, have a per-attempt timeout in force.

A hint for the check every async node step makes: while it is 0 (no timeout
anywhere in the process, the usual case), a node without a timeout or a
cache of its own runs its ``exec_async`` without looking its run's settings
up. A run that has one counts itself before its first step, so its own
steps never miss it; a run that sees another run's count only looks its own
settings up, and finds none. (A run's cache needs no such count: a plain
node is cached only when it says so itself.)
"""
_timing_lock = threading.Lock()


def count_timing(delta: int) -> None:
    """Add ``delta`` to :data:`TIMING` (a run or flow with a timeout starts: 1; it ends: -1)."""
    with _timing_lock:
        TIMING[0] += delta


THREAD_STOP: ContextVar[threading.Event | None] = ContextVar("pocketcore_thread_stop", default=None)
"""Set on a worker thread running a batch item: tells the item's retry loop the
batch is over (failed or cancelled), so it makes no further attempts."""


def new_run(
    backend: str | None, settings: RunSettings | None = None, *, own_loop: bool = False
) -> RunConfig:
    """The configuration of a new run on ``backend`` (``None``: no event loop).

    ``own_loop``: the program started the loop itself (see
    :attr:`RunConfig.own_loop`). Nothing is read from the environment or the
    files here: each setting is read when something first asks for it.
    """
    registry = get_registry()
    return RunConfig(
        backend=backend,
        settings=RunSettings() if settings is None else settings,
        registry=registry,
        observer=registry.observer,
        own_loop=own_loop,
    )


def current_config() -> RunConfig:
    """The configuration of the run in progress.

    A node started with ``await node.run_async(shared)`` (or ``node.run``)
    rather than through :func:`pocketcore.run` has no run yet: it gets one
    for the event loop running now, with settings from the environment, then
    the configuration file, then the backend's default.
    """
    cfg = RUN.get()
    if cfg is not None:
        return cfg
    try:
        backend: str | None = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        backend = None
    return new_run(backend, own_loop=backend is not None)


_EXECUTOR, _LIMIT, _CACHE = SETTINGS["executor"], SETTINGS["max_concurrency"], SETTINGS["cache"]
_TIMEOUT = SETTINGS["timeout"]


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
    own: str | Executor | None = _EXECUTOR.own(node)
    return own


def own_cache(node: Any) -> Any:
    """The node's own ``cache`` setting, else ``None``.

    Like :func:`own_executor`, only what can be a cache setting is taken as
    pocketcore's (a store specification, a path, a :class:`~pocketcore.Store`,
    ``True`` or ``False``, the last two checked later); an attribute of
    another type, a program's own ``dict`` of memos say, is left alone.
    """
    return _CACHE.own(node)


def executor_for(node: Any) -> tuple[Executor, int | None]:
    """The executor and limit ``node`` fans out with in the current run.

    The node's own ``executor`` / ``max_concurrency`` win over the run's.

    Raises:
        ConfigError: The node names an unknown executor, one that cannot run on
            this run's backend, or a bad limit; or the run's settings are
            unusable.
    """
    cfg = current_config()
    own = own_executor(node)
    executor = cfg.executor if own is None else cfg.lookup(own, node_source(node, "executor"))
    limit = _LIMIT.own(node)
    if limit is None:
        return executor, cfg.limit
    return executor, _LIMIT.check(limit, node_source(node, "max_concurrency"))


def step_timeout(node: Any) -> float | None:
    """The seconds each attempt of ``node``'s ``exec_async`` may take in this run, or ``None``.

    The node's own ``timeout``, else the one in force (a flow's, the run's).

    Raises:
        ConfigError: The node's own value, or the run's, is unusable.
    """
    own = _TIMEOUT.own(node)
    if own is not None:
        return _TIMEOUT.check(own, node_source(node, "timeout"))  # type: ignore[no-any-return]
    return current_config().step_timeout


def own_settings(node: Any) -> dict[str, Setting]:
    """The settings a node or flow gives itself (attributes or constructor keywords), checked.

    Raises:
        ConfigError: A value has the wrong type or is out of range; the
            message names the attribute and the class.
    """
    found = {}
    for spec in SETTINGS.values():
        value = spec.own(node)
        if value is not None:
            source = node_source(node, spec.name)
            found[spec.name] = Setting(spec.check(value, source), source)
    return found


def enter_scope(flow: Any) -> Token[RunConfig | None] | _CountedScope | None:
    """Put a flow's own settings in force for the nodes inside it.

    Returns what to give :func:`leave_scope` when the flow ends, or ``None``
    when the flow has no settings of its own.

    Raises:
        ConfigError: The flow's settings are unusable in this run.
    """
    own = own_settings(flow)
    if not own:
        return None
    token = RUN.set(current_config().scoped(own))
    if "timeout" not in own:
        return token
    count_timing(1)
    return _CountedScope(token)


class _CountedScope:
    """The scope of a flow with a timeout of its own, counted in :data:`TIMING`."""

    __slots__ = ("token",)

    def __init__(self, token: Token[RunConfig | None]) -> None:
        self.token = token


def leave_scope(scope: Token[RunConfig | None] | _CountedScope) -> None:
    """Leave what :func:`enter_scope` entered."""
    if isinstance(scope, _CountedScope):
        count_timing(-1)
        scope = scope.token
    RUN.reset(scope)


@attrs.frozen
class Controls:
    """The per-item controls of one parallel batch, resolved when it fans out.

    Attributes:
        limiters: What every item acquires before it starts: the batch's own
            pacing (``max_per_second``), then a shared limiter.
        collect: ``on_error="collect"``: an item that fails becomes a
            :class:`pocketcore.Failed` in its slot instead of failing the batch.
        timeout: Seconds each attempt of an item's ``exec_async`` may take.
    """

    limiters: tuple[Limiter, ...]
    collect: bool
    timeout: float | None = None


def batch_controls(node: Any) -> Controls | None:
    """The controls in force for ``node``'s parallel batch, or ``None`` when none is set.

    Each comes from the node's own attribute, else the run (a flow's scope,
    the arguments, the environment, the file).

    Raises:
        ConfigError: A value is unusable, or names an undeclared limiter.
    """
    cfg = current_config()
    own = own_settings(node)

    def chosen(key: str) -> Setting | None:
        return own.get(key) or cfg.setting(key)

    limiters: list[Limiter] = []
    rate = chosen("max_per_second")
    if rate is not None:
        limiters.append(Limiter(max_per_second=rate.value))
    shared = chosen("limiter")
    if shared is not None:
        limiters.append(cfg.limiter(shared.value, shared.source))
    policy = chosen("on_error")
    collect = policy is not None and policy.value == "collect"
    timeout = chosen("timeout")
    if not limiters and not collect and timeout is None:
        return None
    return Controls(tuple(limiters), collect, None if timeout is None else timeout.value)
