"""Shared helpers for the PocketFlow-compatibility tests.

Not collected by pytest (the name does not start with ``test_``). The idea:
a *program* is a function ``build(mod, rec)`` that defines its nodes by
subclassing the classes of ``mod`` (either ``pocketflow`` or ``pocketcore``),
wires them up and returns a :class:`Program`. :func:`observe` runs one program
with one library and collects everything a user could observe — the trace of
lifecycle calls, the final shared store, the return value, the warnings and
the exception — as an :class:`Outcome`. Two libraries are compatible on a
program when their outcomes are equal.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

EXECUTORS = ("asyncio", "trio", "sequential")

# The classes every program may use, by name; both libraries export them all.
CLASS_NAMES = (
    "BaseNode",
    "Node",
    "BatchNode",
    "Flow",
    "BatchFlow",
    "AsyncNode",
    "AsyncBatchNode",
    "AsyncParallelBatchNode",
    "AsyncFlow",
    "AsyncBatchFlow",
    "AsyncParallelBatchFlow",
)

UNSET = "<unset>"  # what the trace shows for a cur_retry that does not exist

_SYNC_METHODS = ("prep", "exec", "exec_fallback", "post")
_ASYNC_METHODS = ("prep_async", "exec_async", "exec_fallback_async", "post_async")
_ASYNC_NAME = dict(zip(_SYNC_METHODS, _ASYNC_METHODS, strict=True))


def lib(name: str) -> ModuleType:
    """The library module called ``name`` (``"pocketflow"`` or ``"pocketcore"``)."""
    return importlib.import_module(name)


class Call(NamedTuple):
    """One lifecycle call, as the trace records it."""

    node: str  # the node's label
    method: str  # e.g. "prep", "exec_async"
    obj: int  # which node object ran it (0 = first object seen in this run, ...)
    params_obj: int  # which params dict object the node held (same numbering idea)
    params: Any  # the params' contents at call time
    cur_retry: Any  # sync nodes only: self.cur_retry at call time (UNSET if missing)
    args: Any  # the call's arguments, frozen


class Recorder:
    """Collects the trace of one program run with one library.

    Objects (nodes, params dicts) are numbered in the order they are first
    seen, so two runs can be compared even though ids differ; the recorder
    keeps them alive so a number is never reused for another object.
    """

    def __init__(self) -> None:
        self.trace: list[Call] = []
        self.shared: Any = None  # the program's shared store, once known
        self._objects: list[Any] = []

    def ref(self, obj: Any) -> int:
        """A stable number for ``obj`` within this run (identity, not equality)."""
        for index, seen in enumerate(self._objects):
            if seen is obj:
                return index
        self._objects.append(obj)
        return len(self._objects) - 1

    def freeze(self, value: Any) -> Any:
        """A comparable, library-independent rendering of ``value``."""
        if self.shared is not None and value is self.shared:
            return ("<shared>", self._plain(value))
        return self._plain(value)

    def _plain(self, value: Any) -> Any:
        if isinstance(value, BaseException):
            return ("<exc>", type(value).__name__, str(value))
        if hasattr(value, "successors") and hasattr(value, "label"):
            return ("<node>", value.label)
        if isinstance(value, dict):
            return {k: self._plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._plain(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._plain(v) for v in value)
        return value

    def record(self, node: Any, method: str, args: tuple[Any, ...], *, sync: bool) -> None:
        # cur_retry only for sync nodes: PocketFlow's AsyncNode never sets it,
        # pocketcore's does (intended fix), so it would differ by design.
        cur = getattr(node, "cur_retry", UNSET) if sync else UNSET
        self.trace.append(
            Call(
                node=node.label,
                method=method,
                obj=self.ref(node),
                params_obj=self.ref(node.params),
                params=self._plain(node.params),
                cur_retry=cur,
                args=tuple(self.freeze(a) for a in args),
            )
        )

    def node(
        self,
        mod: ModuleType,
        kind: str,
        label: str,
        *args: Any,
        prep: Callable[..., Any] | None = None,
        exec: Callable[..., Any] | None = None,
        post: Callable[..., Any] | None = None,
        fallback: Callable[..., Any] | None = None,
        methods: dict[str, Callable[..., Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Make a recording node (or flow) of class ``mod.<kind>``.

        ``args`` / ``kwargs`` go to the class's constructor. ``prep``, ``exec``,
        ``post`` and ``fallback`` are the node's behaviour, called as
        ``f(node, *method_args)``; for async classes they implement the
        ``*_async`` methods and may be sync functions or coroutine functions.
        A behaviour left out falls back to the library's own method, so the
        library's defaults (``post`` of a flow, the re-raising fallback) are
        exercised too. ``methods`` gives behaviours by exact method name
        (e.g. the sync ``prep`` of an async flow that is run with ``run()``).
        Every lifecycle call is recorded, with the node's label, object,
        params and arguments.
        """
        cls = recording_class(mod, kind)
        node = cls(*args, **kwargs)
        is_async = issubclass(cls, mod.AsyncNode)
        behave = {}
        given = {"prep": prep, "exec": exec, "post": post, "exec_fallback": fallback}
        for name, fn in given.items():
            if fn is not None:
                behave[_ASYNC_NAME[name] if is_async else name] = fn
        behave.update(methods or {})
        node.label, node._rec, node._behave = label, self, behave
        return node


_class_cache: dict[tuple[str, str], type] = {}


def _sync_method(name: str, cell: list[type], *, is_async: bool) -> Callable[..., Any]:
    """A sync lifecycle method that records its call, then runs the node's behaviour or super's."""

    def method(self: Any, *args: Any) -> Any:
        self._rec.record(self, name, args, sync=not is_async)
        fn = self._behave.get(name)
        if fn is None:
            return getattr(super(cell[0], self), name)(*args)
        return fn(self, *args)

    method.__name__ = name
    return method


def _async_method(name: str, cell: list[type]) -> Callable[..., Any]:
    """The async twin of :func:`_sync_method`; a behaviour may return an awaitable or a value."""

    async def method(self: Any, *args: Any) -> Any:
        self._rec.record(self, name, args, sync=False)
        fn = self._behave.get(name)
        if fn is None:
            return await getattr(super(cell[0], self), name)(*args)
        result = fn(self, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    method.__name__ = name
    return method


def recording_class(mod: ModuleType, kind: str) -> type:
    """A subclass of ``mod.<kind>`` whose lifecycle methods record and delegate."""
    key = (mod.__name__, kind)
    if key in _class_cache:
        return _class_cache[key]
    base = getattr(mod, kind)
    is_async = issubclass(base, mod.AsyncNode)
    namespace: dict[str, Any] = {}
    cell: list[type] = []  # the class, once created (for super())
    for name in _SYNC_METHODS:
        if hasattr(base, name):
            namespace[name] = _sync_method(name, cell, is_async=is_async)
    if is_async:
        for name in _ASYNC_METHODS:
            namespace[name] = _async_method(name, cell)
    cls = type(f"Rec{kind}", (base,), namespace)
    cell.append(cls)
    _class_cache[key] = cls
    return cls


@dataclass
class Program:
    """What a program builder returns.

    Attributes:
        target: The node or flow to run.
        shared: The shared store it runs on.
        mode: ``"sync"`` (``target.run(shared)``), ``"async"``
            (``asyncio.run(target.run_async(shared))``) or ``"auto"``
            (async exactly when the target is an ``AsyncNode``).
        call: Instead of running ``target``, call this and use its result.
        after: Called after the run (even a failing one); its frozen result
            is part of the outcome (e.g. attributes of the original nodes).
    """

    target: Any = None
    shared: Any = field(default_factory=dict)
    mode: str = "auto"
    call: Callable[[], Any] | None = None
    after: Callable[[], Any] | None = None


@dataclass
class Outcome:
    """Everything observable about one run of a program with one library."""

    trace: list[Call]
    result: Any
    error: Any  # ("<exc>", type name, message) or None
    shared: Any
    warnings: list[tuple[str, str]]
    extra: Any

    def calls(self, method: str | None = None, node: str | None = None) -> list[Call]:
        """The trace filtered by method and/or node label."""
        return [
            c
            for c in self.trace
            if (method is None or c.method == method) and (node is None or c.node == node)
        ]

    def warning_texts(self) -> list[str]:
        return [text for _, text in self.warnings]


Builder = Callable[[ModuleType, Recorder], Program]


def observe(lib_name: str, build: Builder) -> Outcome:
    """Build and run a program with one library and collect its outcome."""
    mod = lib(lib_name)
    rec = Recorder()
    program: Program | None = None
    result = error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            program = build(mod, rec)
            rec.shared = program.shared
            result = _run(mod, program)
        except Exception as exc:
            error = rec.freeze(exc)
        extra = None
        if program is not None and program.after is not None:
            extra = rec.freeze(program.after())
    return Outcome(
        trace=rec.trace,
        result=rec.freeze(result),
        error=error,
        shared=rec._plain(program.shared) if program is not None else None,
        warnings=[(w.category.__name__, str(w.message)) for w in caught],
        extra=extra,
    )


def _run(mod: ModuleType, program: Program) -> Any:
    if program.call is not None:
        return program.call()
    target = program.target
    mode = program.mode
    if mode == "auto":
        mode = "async" if isinstance(target, mod.AsyncNode) else "sync"
    if mode == "async":
        # PocketFlow only knows asyncio; pocketcore is run the same way here.
        return asyncio.run(target.run_async(program.shared))
    return target.run(program.shared)


def compare(build: Builder, *, error: type[BaseException] | None = None) -> Outcome:
    """Run ``build`` with both libraries, assert equal outcomes, return PocketFlow's.

    ``error`` is the exception type the program is meant to end with (from
    PocketFlow's documented behaviour); without it the program must succeed.
    This guards against a broken program that fails the same way with both
    libraries and so would compare equal while testing nothing.
    """
    expected = observe("pocketflow", build)
    actual = observe("pocketcore", build)
    if error is None:
        assert expected.error is None, f"the program failed with PocketFlow: {expected.error}"
    else:
        assert expected.error is not None, "the program was meant to fail with PocketFlow"
        assert expected.error[1] == error.__name__, expected.error
    assert actual == expected, explain(expected, actual)
    return expected


def explain(expected: Outcome, actual: Outcome) -> str:
    """Where pocketcore's outcome differs from PocketFlow's, readably.

    (This module is not rewritten by pytest's assert rewriting, so the
    message has to say it all.)
    """
    lines = ["pocketcore differs from PocketFlow:"]
    for name in ("result", "error", "shared", "warnings", "extra"):
        want, got = getattr(expected, name), getattr(actual, name)
        if want != got:
            lines.append(f"  {name}: PocketFlow {want!r}\n  {' ' * len(name)}  pocketcore {got!r}")
    if expected.trace != actual.trace:
        index = next(
            (
                i
                for i, (a, b) in enumerate(zip(expected.trace, actual.trace, strict=False))
                if a != b
            ),
            min(len(expected.trace), len(actual.trace)),
        )
        lines.append(
            f"  trace: first difference at call {index} "
            f"(lengths {len(expected.trace)} / {len(actual.trace)})"
        )
        for label, trace in (("PocketFlow", expected.trace), ("pocketcore", actual.trace)):
            lines.append(f"    {label}: {trace[index] if index < len(trace) else '<end>'}")
    return "\n".join(lines)


def methods(outcome: Outcome) -> list[tuple[str, str]]:
    """The (node label, method) pairs of an outcome's trace, in call order."""
    return [(c.node, c.method) for c in outcome.trace]


async def ticks(n: int) -> None:
    """Yield to the event loop ``n`` times (so concurrent items interleave)."""
    for _ in range(n):
        await asyncio.sleep(0)
