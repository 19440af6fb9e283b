"""Observation: lifecycle events, emitted at their call sites, free when nobody listens.

A run's observer is the plugin manager's hook relay when some plugin
implements a lifecycle hook, else ``None`` (asked once per run). The run
and each node step are reported here (:func:`whole_run`, :func:`steppers`).
Each of them, and each batch and item, is a scope of usage totals
(:mod:`pocketcore._runtime.usage`) when its end event is heard with its
``usage`` (:func:`wants_usage`). A batch reports its own events where they
happen, through the
:class:`Events` of its plan: one attribute per lifecycle hook, holding the
hook's caller, or ``None`` when no plugin implements that hook, so a call
site checks one attribute and an event nobody hears costs no call (trio's
instrumentation works the same way).

A new lifecycle event is a hook spec in :mod:`pocketcore.hookspecs` (listed in
its ``LIFECYCLE_HOOKS``), a field of :class:`Events`, and its call site.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import Any, TypeVar

import attrs

from pocketcore._plugins.registry import Observer, get_registry
from pocketcore._runtime.config import RunConfig
from pocketcore._runtime.context import RUN, count_timing
from pocketcore._runtime.usage import NOTHING, Totals, closed, opened

__all__ = [
    "Events",
    "batch_size",
    "current",
    "events",
    "steppers",
    "wants_usage",
    "whole_run",
    "whole_run_async",
]

T = TypeVar("T")
Step = Callable[[Any, Any], Any]
AsyncStep = Callable[[Any, Any], Awaitable[Any]]


def current() -> Observer | None:
    """Where lifecycle events of the current run go; ``None`` when nobody listens."""
    cfg = RUN.get()
    return get_registry().observer if cfg is None else cfg.observer


def batch_size(items: object) -> int | None:
    """The number of items when the iterable says so, else ``None``.

    A user's ``__len__`` may raise anything (``TypeError`` for a generator,
    ``OverflowError`` for a huge ``range``): none of it is the run's concern.
    """
    try:
        return len(items)  # type: ignore[arg-type]
    except Exception:
        return None


class _WholeRun:
    """The run ``cfg`` of ``target`` in force, its start reported on entry and its end on exit.

    Set :attr:`result` before leaving without an exception: it is what the
    end reports.
    """

    __slots__ = ("cfg", "counted", "obs", "result", "shared", "tally", "target", "token")
    tally: tuple[Totals, Token[Totals | None]] | None

    def __init__(self, cfg: RunConfig, target: Any, shared: Any) -> None:
        self.cfg, self.target, self.shared = cfg, target, shared
        self.obs = cfg.observer
        self.result: Any = None

    def __enter__(self) -> _WholeRun:
        # Counted before the first step (see TIMING); a bad cache or timeout
        # setting fails here. A run with no event loop has no async exec to time.
        cfg = self.cfg
        cfg.cache_setting  # noqa: B018 - read for its check
        self.counted = cfg.backend is not None and cfg.step_timeout is not None
        self.token = RUN.set(self.cfg)
        if self.counted:
            count_timing(1)
        if self.obs is not None:
            self.tally = opened() if wants_usage(self.obs, "pocketcore_run_end") else None
            try:
                self.obs.pocketcore_run_start(target=self.target, shared=self.shared)
            except BaseException:
                self._leave()
                raise
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        try:
            if self.obs is not None:
                result = self.result if exc is None else None
                usage = NOTHING if self.tally is None else closed(*self.tally)
                self.obs.pocketcore_run_end(
                    target=self.target,
                    shared=self.shared,
                    result=result,
                    exception=exc,
                    usage=usage,
                )
        finally:
            self._leave()

    def _leave(self) -> None:
        if self.counted:
            count_timing(-1)
        RUN.reset(self.token)


def whole_run(cfg: RunConfig, target: Any, shared: Any, call: Callable[[], T]) -> T:
    """Run ``call()`` as the run ``cfg`` of ``target``, reporting its start and end."""
    with _WholeRun(cfg, target, shared) as run:
        run.result = result = call()
    return result


async def whole_run_async(
    cfg: RunConfig, target: Any, shared: Any, call: Callable[[], Awaitable[T]]
) -> T:
    """:func:`whole_run` for an async run."""
    with _WholeRun(cfg, target, shared) as run:
        run.result = result = await call()
    return result


class _Step:
    """A node's step, its start reported on entry and its end on exit.

    Set :attr:`action` before leaving without an exception: it is what the
    end reports. The step is a scope of usage totals when ``counted``.
    """

    __slots__ = ("action", "counted", "node", "obs", "scope", "shared")
    scope: tuple[Totals, Token[Totals | None]] | None

    def __init__(self, obs: Observer, counted: bool, node: Any, shared: Any) -> None:
        self.obs, self.counted, self.node, self.shared = obs, counted, node, shared
        self.action: Any = None

    def __enter__(self) -> _Step:
        self.obs.pocketcore_node_start(node=self.node, shared=self.shared)
        self.scope = opened() if self.counted else None
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        usage = NOTHING if self.scope is None else closed(*self.scope)
        action = self.action if exc is None else None
        self.obs.pocketcore_node_end(
            node=self.node, shared=self.shared, action=action, exception=exc, usage=usage
        )


def _observed_step(obs: Observer, counted: bool, node: Any, shared: Any) -> Any:
    with _Step(obs, counted, node, shared) as step:
        step.action = node._run(shared)
    return step.action


async def _observed_step_async(obs: Observer, counted: bool, node: Any, shared: Any) -> Any:
    with _Step(obs, counted, node, shared) as step:
        step.action = await node._run_async(shared)
    return step.action


def steppers() -> tuple[Step, AsyncStep] | None:
    """How a flow runs one step of a sync node and of an async node, in the current run.

    Asked once per flow pass. Each function takes ``(node, shared)`` and runs
    the node's step, reporting its start and end. ``None`` when nobody
    listens: the flow then calls the node's step itself, with no frame in
    between (the per-step cost is what the node-step benchmarks measure).
    """
    obs = current()
    if obs is None:
        return None
    counted = wants_usage(obs, "pocketcore_node_end")
    return (
        functools.partial(_observed_step, obs, counted),
        functools.partial(_observed_step_async, obs, counted),
    )


Hook = Callable[..., Any]


def _implemented(obs: Observer, name: str) -> Hook | None:
    caller = getattr(obs, name)
    return caller if caller.get_hookimpls() else None


def wants_usage(obs: Observer, name: str) -> bool:
    """Whether an implementation of hook ``name`` takes its ``usage`` argument.

    Only then is the scope whose end it reports given totals of its own;
    without them its reports count in the scope around it, unchanged.
    """
    return any("usage" in impl.argnames for impl in getattr(obs, name).get_hookimpls())


@attrs.frozen
class Events:
    """The batch-level lifecycle hooks of one run: each a caller, or ``None`` when unheard.

    Built once per batch by :func:`events`. Each field is named after its
    hook without the ``pocketcore_batch_`` prefix.
    """

    start: Hook | None
    end: Hook | None
    item_start: Hook | None
    item_done: Hook | None
    item_cached: Hook | None
    item_sent: Hook | None
    attempt_start: Hook | None
    attempt_done: Hook | None
    fallback: Hook | None
    #: The batch's end is heard with its usage: the batch has totals of its own.
    end_usage: bool = attrs.field(default=False, kw_only=True)
    #: An item's done is heard with its usage: each item has totals of its own.
    item_usage: bool = attrs.field(default=False, kw_only=True)

    @classmethod
    def of(cls, obs: Observer) -> Events:
        """The events ``obs`` hears."""
        return cls(
            *(
                _implemented(obs, f"pocketcore_batch_{name}")
                for name in (
                    "start",
                    "end",
                    "item_start",
                    "item_done",
                    "item_cached",
                    "item_sent",
                    "item_attempt_start",
                    "item_attempt_done",
                    "item_fallback",
                )
            ),
            end_usage=wants_usage(obs, "pocketcore_batch_end"),
            item_usage=wants_usage(obs, "pocketcore_batch_item_done"),
        )

    @property
    def attempts(self) -> bool:
        """Whether someone hears each attempt of an item (or its fallback)."""
        return (
            self.attempt_start is not None
            or self.attempt_done is not None
            or self.fallback is not None
        )

    @property
    def items(self) -> bool:
        """Whether someone hears anything of a single item."""
        return self.item_start is not None or self.item_done is not None or self.attempts


def events() -> Events | None:
    """The batch events of the current run, or ``None`` when nobody listens to any hook."""
    obs = current()
    return None if obs is None else Events.of(obs)
