"""OpenTelemetry spans for pocketcore runs, through the OpenTelemetry API only.

Installed, the plugin (the entry point ``otel = "pocketcore_otel:plugin"``)
turns each run into a trace: a span for the run, one for each step of a flow
(a node, or a nested flow), and one for each batch item, nested as the flow
is. The application configures the SDK and its exporters the standard way;
this module never touches them.

The entry point's object, ``plugin``, is made when pocketcore loads its
plugins (the first run of the process, or the first
:func:`pocketcore.get_registry`): a :class:`Spans` if an SDK is configured
then, else :class:`Off`, which implements no hook, so that pocketcore sees
no observer at all and a run costs exactly what it costs without the
plugin. An SDK configured later is not noticed; register a :class:`Spans`
yourself then (see its docstring).

Span names (``<Class>`` is the node's class name):

* ``pocketcore.run <Class>``: a whole run of its target;
* ``pocketcore.flow <Class>`` / ``pocketcore.node <Class>``: one step of a
  flow, that is a nested flow or a node;
* ``pocketcore.item <Class>``: one item of a batch node, or one pass of a
  batch flow, ``<Class>`` being the batch node or flow. An item has one
  span, whatever the number of attempts its pipeline makes.

Each span of a step, item or run is the current span while it runs: a span
user code opens in ``exec`` is a child of its item's span, on asyncio tasks,
trio tasks and worker threads alike, and siblings never see each other's.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

import pocketcore

__version__ = "0.1.0"

__all__ = [
    "BATCH_LIMIT",
    "BATCH_SIZE",
    "CANCELLED",
    "EXECUTOR_NAME",
    "ITEM_DEFERRED",
    "ITEM_INDEX",
    "NODE_CLASS",
    "Off",
    "Spans",
    "plugin",
    "sdk_configured",
]

NODE_CLASS = "pocketcore.node.class"
"""Attribute of run and step spans: the node's class, ``module.QualifiedName``."""
BATCH_SIZE = "pocketcore.batch.size"
"""Attribute of a batch node's span (its step's, or its run's): the number of
items, absent when ``prep`` returned an iterable without a length."""
BATCH_LIMIT = "pocketcore.batch.limit"
"""Attribute of a parallel batch node's span: its own ``max_concurrency``,
when it sets one (the run's setting is not visible to observers)."""
EXECUTOR_NAME = "pocketcore.executor.name"
"""Attribute of a parallel batch node's span: the executor it names itself,
when it does (the run's executor is not visible to observers)."""
ITEM_INDEX = "pocketcore.item.index"
"""Attribute of an item span: the item's position in the batch's input."""
ITEM_DEFERRED = "pocketcore.item.deferred"
"""Attribute of an item span, ``True`` when the executor ran the item itself
(a remote executor, or its own ``map_blocking``): the item was reported once
the whole batch was back, so its span covers the batch, and what ``exec``
did happened elsewhere."""
CANCELLED = "pocketcore.cancelled"
"""Attribute of a span whose work was cancelled (a sibling item failed, or
the run was cancelled); its status stays unset, as the failure is not its own."""

_INSTRUMENTATION = "pocketcore_otel"

# What counts as the span's own failure. asyncio.CancelledError and
# trio.Cancelled are BaseExceptions only: a cancelled item did not fail.
_FAILURES = (Exception, KeyboardInterrupt, SystemExit)


class _Open:
    """A span this plugin opened and has not ended, with what ending it needs."""

    __slots__ = ("batch_started", "failures", "index", "node", "parent", "span", "token")

    def __init__(self, span: Span, node: object, index: int | None, parent: _Open | None) -> None:
        self.span = span
        self.node = node
        self.index = index  # None for a run or a step
        self.parent = parent
        self.token: object = None
        # The exceptions a child span recorded: when one of them reaches this
        # span too, it is marked as an error but not recorded a second time.
        self.failures: list[BaseException] | None = None
        self.batch_started: int | None = None


# The innermost span opened here, in this context. The kernel calls every
# end hook in the context of its start hook, so this is what the end pairs
# with, even when user code left a context of its own attached.
_OPEN: ContextVar[_Open | None] = ContextVar("pocketcore_otel_open", default=None)


def sdk_configured() -> bool:
    """Whether a tracer provider other than the API's placeholders is set.

    ``False`` until the application sets one (``trace.set_tracer_provider``,
    or ``OTEL_PYTHON_TRACER_PROVIDER``): spans would then record nothing.
    """
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


class Spans:
    """The observer: maps pocketcore's lifecycle events to OpenTelemetry spans.

    The entry point registers one when an SDK is configured. To trace with
    a provider of your own, or with an SDK configured after pocketcore has
    loaded its plugins, register one yourself (once)::

        pocketcore.get_registry().register(pocketcore_otel.Spans(), name="otel-spans")

    Args:
        tracer_provider: Where the spans go; the global provider by default.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(_INSTRUMENTATION, __version__, tracer_provider)
        self._names: dict[tuple[str, type], str] = {}

    def _name(self, kind: str, node: object) -> str:
        cls = type(node)
        name = self._names.get((kind, cls))
        if name is None:
            name = self._names[(kind, cls)] = f"pocketcore.{kind} {cls.__name__}"
        return name

    def _open(
        self, name: str, node: object, index: int | None, attributes: dict[str, AttributeValue]
    ) -> None:
        span = self._tracer.start_span(name, attributes=attributes)
        record = _Open(span, node, index, _OPEN.get())
        record.token = otel_context.attach(trace.set_span_in_context(span))
        _OPEN.set(record)

    def _close(self, node: object, index: int | None, exception: BaseException | None) -> bool:
        """End the span opened for ``node`` (and ``index``); ``False`` if there is none."""
        record = _OPEN.get()
        if record is None or record.node is not node or record.index != index:
            return False
        _OPEN.set(record.parent)
        otel_context.detach(record.token)  # type: ignore[arg-type]
        if exception is not None:
            _failed(record, exception)
        record.span.end()
        return True

    @pocketcore.hookimpl
    def pocketcore_run_start(self, target: Any) -> None:
        """Open the run's span."""
        self._open(self._name("run", target), target, None, {NODE_CLASS: _qualified(target)})

    @pocketcore.hookimpl
    def pocketcore_run_end(self, target: Any, exception: BaseException | None) -> None:
        """End the run's span."""
        self._close(target, None, exception)

    @pocketcore.hookimpl
    def pocketcore_node_start(self, node: Any) -> None:
        """Open a step's span."""
        kind = "flow" if isinstance(node, pocketcore.Flow) else "node"
        self._open(self._name(kind, node), node, None, {NODE_CLASS: _qualified(node)})

    @pocketcore.hookimpl
    def pocketcore_node_end(self, node: Any, exception: BaseException | None) -> None:
        """End a step's span."""
        self._close(node, None, exception)

    @pocketcore.hookimpl
    def pocketcore_batch_start(self, node: pocketcore.BaseNode, size: int | None) -> None:
        """Describe the batch on its node's span (the step's, or the run's)."""
        record = _OPEN.get()
        if record is None or record.node is not node or record.index is not None:
            # A batch node run with node.run() inside a run has no span of
            # its own: its items nest under the span that is current.
            return
        record.batch_started = time.time_ns()
        span = record.span
        if size is not None:
            span.set_attribute(BATCH_SIZE, size)
        if node.fans_out:
            own = node.executor
            if isinstance(own, str):
                span.set_attribute(EXECUTOR_NAME, own)
            elif isinstance(own, pocketcore.Executor):
                span.set_attribute(EXECUTOR_NAME, own.name)
            if isinstance(node.max_concurrency, int):
                span.set_attribute(BATCH_LIMIT, node.max_concurrency)

    @pocketcore.hookimpl
    def pocketcore_batch_item_start(self, node: Any, index: int) -> None:
        """Open an item's span, in the item's own context."""
        self._open(self._name("item", node), node, index, {ITEM_INDEX: index})

    @pocketcore.hookimpl
    def pocketcore_batch_item_done(
        self, node: Any, index: int, exception: BaseException | None
    ) -> None:
        """End an item's span; for an item that had no start, record it now."""
        if not self._close(node, index, exception):
            self._deferred(node, index, exception)

    def _deferred(self, node: Any, index: int, exception: BaseException | None) -> None:
        # The executor ran the item where no hook follows it: all that is
        # known is that it ran within the batch, which started at batch_start.
        current = _OPEN.get()
        started = current.batch_started if current is not None and current.node is node else None
        span = self._tracer.start_span(
            self._name("item", node),
            start_time=started,
            attributes={ITEM_INDEX: index, ITEM_DEFERRED: True},
        )
        if exception is not None:
            _failed(_Open(span, node, index, current), exception)
        span.end()


def _qualified(node: object) -> str:
    cls = type(node)
    return f"{cls.__module__}.{cls.__qualname__}"


def _failed(record: _Open, exception: BaseException) -> None:
    """Mark ``record``'s span as ended by ``exception``."""
    span = record.span
    if not isinstance(exception, _FAILURES):
        span.set_attribute(CANCELLED, True)
        return
    seen = record.failures
    # Recorded once, on the span that raised it; the spans it then passes
    # through on its way out only get the error status.
    if seen is None or not any(exception is e for e in seen):
        span.record_exception(exception)
    span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
    parent = record.parent
    if parent is not None:
        if parent.failures is None:
            parent.failures = []
        parent.failures.append(exception)


class Off:
    """What the entry point registers while no SDK is configured: no hooks, no cost."""

    def __repr__(self) -> str:
        return "pocketcore_otel.Off()"


_plugin: Spans | Off | None = None


def __getattr__(name: str) -> Any:
    # ``plugin``, what the entry point ``otel = "pocketcore_otel:plugin"``
    # registers, is made when pocketcore first asks for it (as it loads its
    # plugins), not when this module is imported: a program may import it
    # before it configures the SDK.
    global _plugin
    if name != "plugin":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _plugin is None:
        _plugin = Spans() if sdk_configured() else Off()
    return _plugin
