"""``pocketcore.run``: what it accepts, which loop it starts, the shared store, results and errors.

The behaviour its docstring documents (``src/pocketcore/_front/run.py``, and
docs/concepts.md "Async nodes and flows"): a ``TypeError`` for what is not a
node or flow, a ``RuntimeError`` inside a running event loop, the event loop
the target's own executor (else the run's) needs, a new dict for
``shared=None``, the target's return value, and the target's own exceptions
unchanged, for every kind of node and flow. How the run's executor and limit
are resolved, and the errors for bad settings, are in ``test_config``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pocketflow
import pytest
import sniffio
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import ConfigError

from .helpers import Double, configured
from .strategies import executor_choices, run_results, shared_stores

SYNC_KINDS = ("Node", "BatchNode", "ParallelBatchNode", "Flow", "BatchFlow", "ParallelBatchFlow")
ASYNC_KINDS = (
    "AsyncNode",
    "AsyncBatchNode",
    "AsyncParallelBatchNode",
    "AsyncFlow",
    "AsyncBatchFlow",
    "AsyncParallelBatchFlow",
)
KINDS = SYNC_KINDS + ASYNC_KINDS

# One entry per step that ran: (the shared store it was given, the async
# library running it, or None when there is no event loop).
Log = list[tuple[Any, "str | None"]]


def current_backend() -> str | None:
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def maybe_fail(fail: tuple[str, BaseException] | None, method: str) -> None:
    """Raise ``fail``'s exception when ``fail`` names ``method``."""
    if fail is not None and fail[0] == method:
        raise fail[1]


def async_step_class(
    base: type, log: Log, result: Any, fail: tuple[str, BaseException] | None
) -> type:
    """The async twin of :func:`sync_step_class`."""
    batch = issubclass(base, pocketcore.BatchNode)

    class AsyncStep(base):  # type: ignore[misc]
        async def prep_async(self, shared: Any) -> Any:
            log.append((shared, current_backend()))
            maybe_fail(fail, "prep")
            return [1, 2] if batch else "p"

        async def exec_async(self, prep_res: Any) -> Any:
            maybe_fail(fail, "exec")
            return prep_res

        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            maybe_fail(fail, "post")
            return result

    return AsyncStep


def sync_step_class(
    base: type, log: Log, result: Any, fail: tuple[str, BaseException] | None
) -> type:
    """The step class on ``base``: prep logs, post returns ``result``, ``fail`` raises."""
    batch = issubclass(base, pocketcore.BatchNode)

    class Step(base):  # type: ignore[misc]
        def prep(self, shared: Any) -> Any:
            log.append((shared, current_backend()))
            maybe_fail(fail, "prep")
            return [1, 2] if batch else "p"

        def exec(self, prep_res: Any) -> Any:
            maybe_fail(fail, "exec")
            return prep_res

        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            maybe_fail(fail, "post")
            return result

    return Step


def async_passes(cls: type, start: pocketcore.BaseNode, result: Any) -> pocketcore.BaseNode:
    """An async batch flow of class ``cls`` that runs one pass and returns ``result``."""

    class AsyncPasses(cls):  # type: ignore[misc]
        async def prep_async(self, shared: Any) -> Any:
            return [{}]

        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return result

    return AsyncPasses(start=start)


def passes(cls: type, start: pocketcore.BaseNode, result: Any) -> pocketcore.BaseNode:
    """A batch flow of class ``cls`` that runs one pass and returns ``result``."""

    class Passes(cls):  # type: ignore[misc]
        def prep(self, shared: Any) -> Any:
            return [{}]

        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return result

    return Passes(start=start)


def make_target(
    kind: str, log: Log, *, result: Any = None, fail: tuple[str, BaseException] | None = None
) -> pocketcore.BaseNode:
    """A ``pocketcore.<kind>`` that runs one step and returns ``result``.

    The step (the node itself, or a flow's only node, run for one pass in a
    batch flow) logs its shared store and backend in ``prep``, and its
    ``post`` returns ``result``, which is what ``run`` returns for a node or
    a flow; a batch flow's own ``post`` returns it too. ``fail = (method,
    exc)`` makes the step's ``method`` (prep, exec or post) raise ``exc``.
    """
    cls = getattr(pocketcore, kind)
    is_async = issubclass(cls, pocketcore.AsyncNode)
    step_class = async_step_class if is_async else sync_step_class
    if not issubclass(cls, pocketcore.Flow):
        return step_class(cls, log, result, fail)()
    start = step_class(pocketcore.AsyncNode if is_async else pocketcore.Node, log, result, fail)()
    if not issubclass(cls, pocketcore.BatchFlow):
        return cls(start=start)  # returns the last action: the step's result
    return (async_passes if is_async else passes)(cls, start, result)


# --- what run accepts ------------------------------------------------------------

not_nodes = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    # the node classes themselves, and PocketFlow's nodes (an import not yet switched)
    st.sampled_from([pocketcore.Node, pocketcore.AsyncFlow]),
    st.sampled_from(["Node", "AsyncNode", "Flow", "AsyncParallelBatchFlow"]).map(
        lambda name: getattr(pocketflow, name)()
    ),
    st.just(lambda shared: None),
)


@given(not_nodes)
def test_what_is_not_a_node_or_flow_is_a_type_error(target: Any) -> None:
    shared: dict[str, Any] = {}
    with pytest.raises(TypeError) as info:
        pocketcore.run(target, shared)
    assert str(info.value) == (
        f"pocketcore.run() needs a node or flow, got {type(target).__name__}"
    )
    assert shared == {}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("kind", ASYNC_KINDS)
def test_an_async_target_inside_a_running_loop_is_a_runtime_error(kind: str, backend: str) -> None:
    log: Log = []
    target = make_target(kind, log, result="x")

    async def main() -> Any:
        with pytest.raises(RuntimeError) as info:
            pocketcore.run(target, {})
        assert str(info.value) == (
            f"pocketcore.run() cannot start an event loop inside a running {backend} loop; "
            "use 'await target.run_async(shared)' there"
        )
        assert log == []  # refused before the target started
        return await target.run_async({})  # what the message says to do instead works

    assert anyio.run(main, backend=backend) == "x"
    assert len(log) == 1


# --- which event loop ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    own=executor_choices,
    run_level=executor_choices,
    source=st.sampled_from(["argument", "environment", "file"]),
    shape=st.sampled_from(["node", "flow"]),
)
def test_the_loop_is_the_first_choice_that_needs_one(
    own: str | None, run_level: str | None, source: str, shape: str
) -> None:
    # The target's own executor first, then the run's (from whichever source);
    # sequential runs on any loop, so it does not decide; asyncio by default.
    expected = next((c for c in (own, run_level) if c in ("asyncio", "trio")), "asyncio")
    target: pocketcore.BaseNode = (
        Double(executor=own)
        if shape == "node"
        else pocketcore.AsyncFlow(start=Double(), executor=own)
    )
    env, files, argument = {}, {}, None
    if run_level is not None:
        if source == "argument":
            argument = run_level
        elif source == "environment":
            env = {"POCKETCORE_EXECUTOR": run_level}
        else:
            files = {"pocketcore.toml": f'executor = "{run_level}"\n'}
    shared: dict[str, Any] = {"items": [1, 2]}
    with configured(env, files):
        assert pocketcore.run(target, shared, executor=argument) == "done"
    assert shared["backend"] == expected
    assert shared["out"] == [2, 4]


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(SYNC_KINDS), executor=executor_choices)
def test_a_sync_target_runs_without_an_event_loop(kind: str, executor: str | None) -> None:
    log: Log = []
    assert pocketcore.run(make_target(kind, log, result="r"), executor=executor) == "r"
    assert [backend for _, backend in log] == [None]


# --- the shared store ---------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(KINDS), executor=executor_choices)
def test_no_shared_store_means_a_new_empty_dict_every_run(kind: str, executor: str | None) -> None:
    log: Log = []
    target = make_target(kind, log)
    pocketcore.run(target, executor=executor)
    pocketcore.run(target, None, executor=executor)
    (first, _), (second, _) = log
    assert type(first) is dict
    assert first == second == {}
    assert first is not second  # not one default dict shared between runs


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(KINDS), executor=executor_choices, shared=shared_stores)
def test_the_store_given_is_the_one_the_steps_see(
    kind: str, executor: str | None, shared: dict[str, int]
) -> None:
    # Even an empty dict, which a careless `shared or {}` would replace.
    log: Log = []
    pocketcore.run(make_target(kind, log), shared, executor=executor)
    assert len(log) == 1
    assert log[0][0] is shared


def test_the_store_need_not_be_a_dict() -> None:
    store: list[int] = []
    log: Log = []
    pocketcore.run(make_target("AsyncFlow", log), store)
    assert log[0][0] is store


# --- what run returns and raises ------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(kind=st.sampled_from(KINDS), executor=executor_choices, result=run_results)
def test_run_returns_what_the_target_returns(kind: str, executor: str | None, result: Any) -> None:
    log: Log = []
    assert pocketcore.run(make_target(kind, log, result=result), executor=executor) is result
    assert len(log) == 1


@pytest.mark.parametrize("kind", ["Flow", "AsyncFlow"])
def test_a_flow_returns_its_last_action_unless_its_post_says_otherwise(kind: str) -> None:
    cls: Callable[..., Any] = getattr(pocketcore, kind)

    class Own(cls):  # type: ignore[misc, valid-type]
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return ("flow saw", exec_res)

        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return ("flow saw", exec_res)

    log: Log = []
    assert pocketcore.run(cls(start=make_target("Node", log, result="last"))) == "last"
    assert pocketcore.run(Own(start=make_target("Node", log, result="last"))) == (
        "flow saw",
        "last",
    )


class Boom(Exception):
    pass


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    executor=executor_choices,
    method=st.sampled_from(["prep", "exec", "post"]),
    exc_type=st.sampled_from([ValueError, KeyError, Boom]),
)
def test_what_the_target_raises_reaches_the_caller_unchanged(
    kind: str, executor: str | None, method: str, exc_type: type[Exception]
) -> None:
    raised = exc_type(f"{kind} {method}")
    log: Log = []
    with pytest.raises(exc_type) as info:
        pocketcore.run(make_target(kind, log, fail=(method, raised)), executor=executor)
    assert info.value is raised  # the very object, not a wrapper or a copy


@pytest.mark.parametrize("kind", ["Flow", "AsyncFlow"])
@pytest.mark.parametrize(
    ("arguments", "source"),
    [
        ({"executor": "no-such-executor"}, "argument executor= of pocketcore.run()"),
        ({"max_concurrency": 0}, "argument max_concurrency= of pocketcore.run()"),
    ],
)
def test_a_bad_argument_is_a_config_error_before_the_target_starts(
    kind: str, arguments: dict[str, Any], source: str
) -> None:
    log: Log = []
    with pytest.raises(ConfigError) as info:
        pocketcore.run(make_target(kind, log), **arguments)
    assert source in str(info.value)
    assert log == []
