"""OpenTelemetry spans for pocketcore runs, through the OpenTelemetry API only.

Installed, the plugin (the entry point ``otel = "pocketcore_otel:plugin"``)
turns each run into a trace: a span for the run, one for each step of a flow
(a node, or a nested flow), and one for each batch item, nested as the flow
is. The application configures the SDK and its exporters the standard way;
this module never touches them.

The entry point's object, ``plugin``, is a :class:`Spans` on the global
tracer provider, through the OpenTelemetry API's proxy: it traces whatever
the order in which the application configures the SDK and runs its flows.
It declares its state (:class:`pocketcore.ReportsState`): while no SDK
tracer provider is set it says it is inactive, and why, so that pocketcore
sees no observer for that run and the run costs what it costs without the
plugin. It is asked again when each run starts: the first run after
``trace.set_tracer_provider(...)`` is traced. ``pocketcore plugins`` shows
the state.

Span names (``<Class>`` is the node's class name):

* ``pocketcore.run <Class>``: a whole run of its target;
* ``pocketcore.flow <Class>`` / ``pocketcore.node <Class>``: one step of a
  flow, that is a nested flow or a node;
* ``pocketcore.item <Class>``: one item of a batch node, or one pass of a
  batch flow, ``<Class>`` being the batch node or flow. An item has **one
  span, whatever the number of attempts** its pipeline makes: each attempt
  is a span event (``pocketcore.attempt``) on it (none when the first one
  succeeded), their count the attribute
  ``pocketcore.item.attempts``, and a fallback that gave the result an event
  (``pocketcore.fallback``) and ``pocketcore.item.fallback``. An item found in
  the result cache has a span too, of no duration, with
  ``pocketcore.item.cached``.

What a node's ``exec`` reported using (:func:`pocketcore.report_usage`,
or a limiter's event hooks) is on the span of its step, of its run when it
is the run's target, and of each of its items: ``input_tokens`` and
``output_tokens`` as the GenAI semantic conventions'
``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``, any other
unit as ``pocketcore.usage.<unit>``. A step's span has its items' sum; the
spans of flows have none (their nodes' spans do). An item run in another
process has its usage on its span once its result is back.

Each span of a step, item or run is the current span while it runs: a span
user code opens in ``exec`` is a child of its item's span, on asyncio tasks,
trio tasks and worker threads alike, and siblings never see each other's.
For an executor that runs items in other processes (``dask``), the item's
span starts when the item is handed over, and its W3C trace context
(``traceparent``) travels with the item: the worker attaches it around the
item, so spans opened there join the trace as children of the item's span.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

import pocketcore

__version__ = "0.1.0"

__all__ = [
    "ATTEMPT_DURATION",
    "ATTEMPT_EVENT",
    "ATTEMPT_NUMBER",
    "BATCH_CACHE_HITS",
    "BATCH_LIMIT",
    "BATCH_LIMITER",
    "BATCH_SIZE",
    "BATCH_TIMEOUT",
    "CANCELLED",
    "EXECUTOR_NAME",
    "FALLBACK_EVENT",
    "GEN_AI_INPUT_TOKENS",
    "GEN_AI_OUTPUT_TOKENS",
    "ITEM_ATTEMPTS",
    "ITEM_CACHED",
    "ITEM_DEFERRED",
    "ITEM_FALLBACK",
    "ITEM_INDEX",
    "ITEM_UNREPORTED",
    "NODE_CACHED",
    "NODE_CLASS",
    "NO_SDK",
    "USAGE_PREFIX",
    "Spans",
    "Traceparent",
    "plugin",
    "sdk_configured",
]

NODE_CLASS = "pocketcore.node.class"
"""Attribute of run and step spans: the node's class, ``module.QualifiedName``."""
BATCH_SIZE = "pocketcore.batch.size"
"""Attribute of a batch node's span (its step's, or its run's): the number of
items, absent when ``prep`` returned an iterable without a length."""
BATCH_LIMIT = "pocketcore.batch.limit"
"""Attribute of a batch node's span: the most items in flight at once, as
resolved for the batch (the node's ``max_concurrency``, else the run's); ``1``
for the classes that run their items one after another; absent for no limit."""
EXECUTOR_NAME = "pocketcore.executor.name"
"""Attribute of a parallel batch node's span: the name of the executor its
items were handed to, as resolved for the batch (the node's own, else the
run's); absent for the classes that run their items one after another."""
BATCH_TIMEOUT = "pocketcore.batch.timeout"
"""Attribute of a parallel batch node's span: the seconds each attempt of an
item may take (the resolved ``timeout``), when one is set."""
BATCH_LIMITER = "pocketcore.batch.limiter"
"""Attribute of a parallel batch node's span: the name of the shared limiter
its items take turns of (``limiter=``), when it has one with a name."""
BATCH_CACHE_HITS = "pocketcore.batch.cache_hits"
"""Attribute of a batch node's span: how many of its items were found in the
result cache, when any was."""
ITEM_INDEX = "pocketcore.item.index"
"""Attribute of an item span: the item's position in the batch's input."""
ITEM_ATTEMPTS = "pocketcore.item.attempts"
"""Attribute of an item span: how many attempts its ``exec`` made (``cur_retry``
of the last one, plus one). Absent for a pass of a batch flow, and for an
item that the executor ran itself."""
ITEM_FALLBACK = "pocketcore.item.fallback"
"""Attribute of an item span, ``True`` when its last attempt failed and the
node's ``exec_fallback`` gave its result."""
ITEM_CACHED = "pocketcore.item.cached"
"""Attribute of an item span, ``True`` for an item found in the result cache:
its ``exec`` did not run, and its span has no duration."""
NODE_CACHED = "pocketcore.node.cached"
"""Attribute of a step span of a plain node that opts in to the result cache:
``True`` when its result came from the cache (its ``exec`` did not run),
``False`` when the step computed it."""
ITEM_DEFERRED = "pocketcore.item.deferred"
"""Attribute of an item span, ``True`` when the executor ran the item itself
(a remote executor, or its own ``map_blocking``): the item was reported once
the results were back. For a remote executor its span starts when the item
was handed over (and user spans on the worker are its children); otherwise
it starts with the batch. What ``exec`` did happened elsewhere."""
ITEM_UNREPORTED = "pocketcore.item.unreported"
"""Attribute of the span of an item sent to a remote executor, ``True`` when
its batch ended (failed, or was cancelled) before the item's result came
back: what became of it is not known here, and its status stays unset."""
ATTEMPT_EVENT = "pocketcore.attempt"
"""Name of the span event that an item's span gets at the end of each attempt
of its ``exec``, with :data:`ATTEMPT_NUMBER`, :data:`ATTEMPT_DURATION` and,
for a failed attempt, ``exception.type`` and ``exception.message``. An item
whose first attempt succeeded has none: :data:`ITEM_ATTEMPTS` says it all."""
ATTEMPT_NUMBER = "pocketcore.attempt.number"
"""Attribute of an attempt event: the attempt, from 0 (``cur_retry`` during it)."""
ATTEMPT_DURATION = "pocketcore.attempt.duration"
"""Attribute of an attempt event: how long the attempt took, in seconds."""
FALLBACK_EVENT = "pocketcore.fallback"
"""Name of the span event an item's span gets when its fallback gave its
result, with the ``exception.type`` and ``exception.message`` of the last
attempt's failure, which the fallback replaced."""
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
"""Attribute of the span of a node's step, run or item: the ``input_tokens`` its
``exec`` reported using (the GenAI semantic conventions' prompt tokens), every
attempt counted; a step's or run's is the sum of its items'. Absent for flows."""
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
"""Attribute like :data:`GEN_AI_INPUT_TOKENS`, of the ``output_tokens`` reported
(the GenAI semantic conventions' completion tokens)."""
USAGE_PREFIX = "pocketcore.usage."
"""Prefix of the attributes of any other unit reported, on the same spans as
:data:`GEN_AI_INPUT_TOKENS`: ``pocketcore.usage.tokens``, ``pocketcore.usage.images``."""
_GEN_AI = {"input_tokens": GEN_AI_INPUT_TOKENS, "output_tokens": GEN_AI_OUTPUT_TOKENS}
CANCELLED = "pocketcore.cancelled"
"""Attribute of a span whose work was cancelled (a sibling item failed, or
the run was cancelled); its status stays unset, as the failure is not its own."""

_INSTRUMENTATION = "pocketcore_otel"

# What counts as the span's own failure. asyncio.CancelledError and
# trio.Cancelled are BaseExceptions only: a cancelled item did not fail.
_FAILURES = (Exception, KeyboardInterrupt, SystemExit)


class _Open:
    """A span this plugin opened and has not ended, with what ending it needs."""

    __slots__ = (
        "attempts",
        "batch_started",
        "failures",
        "hits",
        "index",
        "node",
        "parent",
        "span",
        "token",
    )

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
        self.hits = 0  # of the batch whose span this is
        self.attempts = 0  # of the item whose span this is


# The innermost span opened here, in this context. The kernel calls every
# end hook in the context of its start hook, so this is what the end pairs
# with, even when user code left a context of its own attached.
_OPEN: ContextVar[_Open | None] = ContextVar("pocketcore_otel_open", default=None)

# The trace context that travels with an item to a remote worker is W3C's,
# whatever propagators the application configured for its own requests: both
# ends are this plugin.
_W3C = TraceContextTextMapPropagator()


NO_SDK = (
    "no OpenTelemetry SDK tracer provider is set (trace.set_tracer_provider, or "
    "OTEL_PYTHON_TRACER_PROVIDER): spans would record nothing; runs started after one "
    "is set are traced"
)
"""Why the plugin is inactive, as :meth:`Spans.plugin_state` says it (``pocketcore plugins``)."""


def sdk_configured() -> bool:
    """Whether a tracer provider other than the API's placeholders is set.

    ``False`` until the application sets one (``trace.set_tracer_provider``,
    or ``OTEL_PYTHON_TRACER_PROVIDER``): spans would then record nothing.
    """
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


class Spans:
    """The observer: maps pocketcore's lifecycle events to OpenTelemetry spans.

    The entry point registers one on the global tracer provider, which is
    active from the first run after the application sets an SDK provider
    (:meth:`plugin_state`). To trace to a provider of your own instead of
    the global one, register one yourself::

        pocketcore.get_registry().register(pocketcore_otel.Spans(provider), name="otel-spans")

    Args:
        tracer_provider: Where the spans go; the global provider by default
            (through the API's proxy, so one set later is used from then on).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._own_provider = tracer_provider is not None
        self._tracer = trace.get_tracer(_INSTRUMENTATION, __version__, tracer_provider)
        self._names: dict[tuple[str, type], str] = {}
        # The spans of items sent to a remote executor, until their results
        # are back: id(batch node) -> index -> span.
        self._sent: dict[int, dict[int, Span]] = {}
        self._sent_lock = threading.Lock()

    def plugin_state(self) -> pocketcore.PluginState:
        """Active with a provider of its own, or once an SDK provider is set globally.

        Asked by pocketcore when each run starts (:class:`pocketcore.ReportsState`).
        """
        if self._own_provider or sdk_configured():
            return _ACTIVE
        return _NO_SDK_STATE

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

    def _close(
        self,
        node: object,
        index: int | None,
        exception: BaseException | None,
        usage: Mapping[str, float],
    ) -> bool:
        """End the span opened for ``node`` (and ``index``); ``False`` if there is none."""
        record = _OPEN.get()
        if record is None or record.node is not node or record.index != index:
            return False
        _OPEN.set(record.parent)
        otel_context.detach(record.token)  # type: ignore[arg-type]
        if record.attempts:
            record.span.set_attribute(ITEM_ATTEMPTS, record.attempts)
        if usage and not isinstance(node, pocketcore.Flow):
            record.span.set_attributes(_usage(usage))
        if exception is not None:
            _failed(record, exception)
        record.span.end()
        return True

    @pocketcore.hookimpl
    def pocketcore_node_cache_result(self, node: Any, hit: bool) -> None:
        """Mark a cached plain node's step span: its result from the cache, or computed."""
        record = self._batch(node)
        if record is not None:
            record.span.set_attribute(NODE_CACHED, hit)

    def _batch(self, node: object) -> _Open | None:
        """The record of ``node``'s own span (its step's, or its run's), if it is current."""
        record = _OPEN.get()
        if record is None or record.node is not node or record.index is not None:
            # A batch node run with node.run() inside a run has no span of
            # its own: its items nest under the span that is current.
            return None
        return record

    def _item(self, node: object, index: int) -> _Open | None:
        """The record of the span of ``node``'s item ``index``, if it is current."""
        record = _OPEN.get()
        if record is None or record.node is not node or record.index != index:
            return None
        return record

    @pocketcore.hookimpl
    def pocketcore_run_start(self, target: Any) -> None:
        """Open the run's span."""
        self._open(self._name("run", target), target, None, {NODE_CLASS: _qualified(target)})

    @pocketcore.hookimpl
    def pocketcore_run_end(
        self, target: Any, exception: BaseException | None, usage: Mapping[str, float]
    ) -> None:
        """End the run's span (with the usage of a node run on its own)."""
        self._close(target, None, exception, usage)

    @pocketcore.hookimpl
    def pocketcore_node_start(self, node: Any) -> None:
        """Open a step's span."""
        kind = "flow" if isinstance(node, pocketcore.Flow) else "node"
        self._open(self._name(kind, node), node, None, {NODE_CLASS: _qualified(node)})

    @pocketcore.hookimpl
    def pocketcore_node_end(
        self, node: Any, exception: BaseException | None, usage: Mapping[str, float]
    ) -> None:
        """End a step's span, with the usage its node reported."""
        self._close(node, None, exception, usage)

    @pocketcore.hookimpl
    def pocketcore_batch_start(
        self,
        node: pocketcore.BaseNode,
        size: int | None,
        executor: pocketcore.Executor | None,
        limit: int | None,
        timeout: float | None,
        limiters: tuple[pocketcore.Limiter, ...],
    ) -> None:
        """Describe the batch on its node's span (the step's, or the run's)."""
        record = self._batch(node)
        if record is None:
            return
        record.batch_started = time.time_ns()
        record.hits = 0
        attributes: dict[str, AttributeValue] = {}
        if size is not None:
            attributes[BATCH_SIZE] = size
        if executor is not None:
            attributes[EXECUTOR_NAME] = executor.name
        if limit is not None:
            attributes[BATCH_LIMIT] = limit
        if timeout is not None:
            attributes[BATCH_TIMEOUT] = timeout
        for limiter in limiters:
            if limiter.name is not None:
                attributes[BATCH_LIMITER] = limiter.name
        record.span.set_attributes(attributes)

    @pocketcore.hookimpl
    def pocketcore_batch_end(self, node: pocketcore.BaseNode) -> None:
        """Count the batch's cache hits; end the spans of sent items that were never reported."""
        record = self._batch(node)
        if record is not None and record.hits:
            record.span.set_attribute(BATCH_CACHE_HITS, record.hits)
        with self._sent_lock:
            sent = self._sent.pop(id(node), None)
        for span in (sent or {}).values():
            span.set_attribute(ITEM_UNREPORTED, True)
            span.end()

    @pocketcore.hookimpl
    def pocketcore_batch_item_start(self, node: Any, index: int) -> None:
        """Open an item's span, in the item's own context."""
        self._open(self._name("item", node), node, index, {ITEM_INDEX: index})

    @pocketcore.hookimpl
    def pocketcore_batch_item_done(
        self,
        node: Any,
        index: int,
        result: Any,
        exception: BaseException | None,
        usage: Mapping[str, float],
    ) -> None:
        """End an item's span; for an item that had no start, record it now.

        An item kept as a :class:`pocketcore.Failed` (``on_error="collect"``)
        failed all the same: its span gets the error status and the
        exception event, as it would without collecting.
        """
        if exception is None and type(result) is pocketcore.Failed:
            exception = result.exception
        if not self._close(node, index, exception, usage):
            self._deferred(node, index, exception, usage)

    def _deferred(
        self,
        node: Any,
        index: int,
        exception: BaseException | None,
        usage: Mapping[str, float],
    ) -> None:
        # The executor ran the item where no hook follows it. Sent to another
        # process, it has had its span since it was handed over; otherwise
        # all that is known is that it ran within the batch.
        current = _OPEN.get()
        with self._sent_lock:
            span = self._sent.get(id(node), {}).pop(index, None)
        if span is None:
            started = (
                current.batch_started if current is not None and current.node is node else None
            )
            span = self._tracer.start_span(
                self._name("item", node),
                start_time=started,
                attributes={ITEM_INDEX: index, ITEM_DEFERRED: True},
            )
        if usage and not isinstance(node, pocketcore.Flow):
            span.set_attributes(_usage(usage))
        if exception is not None:
            _failed(_Open(span, node, index, current), exception)
        span.end()

    @pocketcore.hookimpl
    def pocketcore_batch_item_attempt_done(
        self, node: Any, index: int, attempt: int, exception: BaseException | None, duration: float
    ) -> None:
        """Add the attempt's event to its item's span (none for a first attempt that succeeded)."""
        record = self._item(node, index)
        if record is None:
            return
        record.attempts += 1
        if attempt == 0 and exception is None:
            # The usual case: one attempt, which succeeded. The item's
            # attempts attribute says it all, and an event would cost more
            # than the rest of the item's span.
            return
        attributes: dict[str, AttributeValue] = {
            ATTEMPT_NUMBER: attempt,
            ATTEMPT_DURATION: duration,
        }
        if exception is not None:
            attributes.update(_described(exception))
            if not isinstance(exception, _FAILURES):
                attributes[CANCELLED] = True
        record.span.add_event(ATTEMPT_EVENT, attributes)

    @pocketcore.hookimpl
    def pocketcore_batch_item_fallback(self, node: Any, index: int, exception: Exception) -> None:
        """Mark the item's span: its fallback gave its result, in place of ``exception``."""
        record = self._item(node, index)
        if record is not None:
            record.span.set_attribute(ITEM_FALLBACK, True)
            record.span.add_event(FALLBACK_EVENT, _described(exception))

    @pocketcore.hookimpl
    def pocketcore_batch_item_cached(self, node: Any, index: int) -> None:
        """Record a span of no duration for an item found in the result cache."""
        now = time.time_ns()
        span = self._tracer.start_span(
            self._name("item", node),
            start_time=now,
            attributes={ITEM_INDEX: index, ITEM_CACHED: True},
        )
        span.end(end_time=now)
        record = self._batch(node)
        if record is not None:
            record.hits += 1

    @pocketcore.hookimpl
    def pocketcore_batch_item_sent(self, node: Any, index: int) -> Traceparent:
        """Open the span of an item sent to another process; its trace context goes along."""
        span = self._tracer.start_span(
            self._name("item", node), attributes={ITEM_INDEX: index, ITEM_DEFERRED: True}
        )
        with self._sent_lock:
            self._sent.setdefault(id(node), {})[index] = span
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, trace.set_span_in_context(span))
        return Traceparent(carrier)


class Traceparent:
    """The W3C trace context of an item's span, sent with the item to the worker that runs it.

    :meth:`Spans.pocketcore_batch_item_sent` returns one for each item handed
    to a remote executor; pocketcore pickles it with the item and, on the
    worker, enters it around the item's pipeline. Entered, it makes the
    item's span the current span there (as a remote parent), so spans opened
    in ``exec`` on the worker, by user code or instrumented libraries, are
    its children and join the trace, whatever SDK the worker has configured.
    The worker needs ``pocketcore_otel`` importable, as it needs the node's
    own module.

    Args:
        carrier: The ``traceparent`` (and ``tracestate``) headers.
    """

    __slots__ = ("_token", "carrier")

    def __init__(self, carrier: dict[str, str]) -> None:
        self.carrier = carrier
        self._token: object = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (Traceparent, (self.carrier,))

    def __repr__(self) -> str:
        return f"pocketcore_otel.Traceparent({self.carrier!r})"

    def __enter__(self) -> Traceparent:
        """Make the item's span the current span (a remote parent) in this context."""
        self._token = otel_context.attach(_W3C.extract(self.carrier))
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Restore the context that was current before :meth:`__enter__`."""
        otel_context.detach(self._token)  # type: ignore[arg-type]


def _usage(usage: Mapping[str, float]) -> dict[str, AttributeValue]:
    """The attributes of what was reported: GenAI's for tokens in and out, ours for the rest."""
    return {
        _GEN_AI.get(unit) or USAGE_PREFIX + unit: int(amount) if amount.is_integer() else amount
        for unit, amount in usage.items()
    }


def _described(exception: BaseException) -> dict[str, AttributeValue]:
    """The semantic-convention attributes of an exception, for an event."""
    return {"exception.type": type(exception).__name__, "exception.message": str(exception)}


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


_ACTIVE = pocketcore.PluginState(active=True)
_NO_SDK_STATE = pocketcore.PluginState(active=False, reason=NO_SDK)

#: What the entry point ``otel = "pocketcore_otel:plugin"`` registers: spans
#: on the global tracer provider, active once an SDK provider is set.
plugin = Spans()
