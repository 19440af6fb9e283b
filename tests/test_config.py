"""Configuration resolution: the order of the sources, and clear errors naming them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import ConfigError

from .helpers import Double, RecorderPlugin, configured
from .strategies import bad_env_limit_text, bad_limits, limits

LEVELS = ("node", "argument", "environment", "file")


@pytest.fixture(scope="module")
def recorders() -> Iterator[RecorderPlugin]:
    plugin = RecorderPlugin(len(LEVELS))
    registry = pocketcore.get_registry()
    registry.register(plugin, name="test-recorders")
    yield plugin
    registry.unregister(plugin)


def _run_with(levels: dict[str, tuple[str | None, int | None]], file_name: str) -> Any:
    """Run a Double node with the executor/limit of each level set as asked."""
    node_exec, node_limit = levels.get("node", (None, None))
    arg_exec, arg_limit = levels.get("argument", (None, None))
    env: dict[str, str] = {}
    env_exec, env_limit = levels.get("environment", (None, None))
    if env_exec is not None:
        env["POCKETCORE_EXECUTOR"] = env_exec
    if env_limit is not None:
        env["POCKETCORE_MAX_CONCURRENCY"] = str(env_limit)
    file_exec, file_limit = levels.get("file", (None, None))
    lines = []
    if file_exec is not None:
        lines.append(f'executor = "{file_exec}"')
    if file_limit is not None:
        lines.append(f"max_concurrency = {file_limit}")
    if file_name == "pyproject.toml":
        lines.insert(0, "[tool.pocketcore]")
    files = {file_name: "\n".join(lines) + "\n"} if lines else {}
    node = Double(executor=node_exec, max_concurrency=node_limit)
    flow = pocketcore.AsyncFlow(start=node)
    with configured(env, files):
        shared: dict[str, Any] = {"items": [1, 2, 3]}
        pocketcore.run(flow, shared, executor=arg_exec, max_concurrency=arg_limit)
    assert shared["out"] == [2, 4, 6]


@settings(max_examples=60, deadline=None)
@given(
    chosen=st.fixed_dictionaries(
        {},
        optional={
            level: st.tuples(st.booleans(), st.one_of(st.none(), st.integers(1, 50)))
            for level in LEVELS
        },
    ),
    file_name=st.sampled_from(["pocketcore.toml", "pyproject.toml"]),
)
def test_most_specific_source_wins(
    recorders: RecorderPlugin,
    chosen: dict[str, tuple[bool, int | None]],
    file_name: str,
) -> None:
    # Each level that sets an executor names its own recorder, so the recorder
    # that saw the batch tells which level won.
    levels = {
        level: (f"rec-{LEVELS.index(level)}" if use_exec else None, limit)
        for level, (use_exec, limit) in chosen.items()
    }
    recorders.reset()
    _run_with(levels, file_name)
    exec_winner = next((lv for lv in LEVELS if levels.get(lv, (None,))[0] is not None), None)
    limit_winner = next((lv for lv in LEVELS if levels.get(lv, (None, None))[1] is not None), None)
    if exec_winner is None:
        assert recorders.used() == []  # the default (asyncio) ran the batch
        return
    assert recorders.used() == [f"rec-{LEVELS.index(exec_winner)}"]
    (call,) = recorders.recorders[f"rec-{LEVELS.index(exec_winner)}"].calls
    expected_limit = None if limit_winner is None else levels[limit_winner][1]
    assert call.limit == expected_limit
    assert call.items == [1, 2, 3]


def test_class_attributes_count_as_the_nodes_own(recorders: RecorderPlugin) -> None:
    class Limited(Double):
        executor = "rec-1"
        max_concurrency = 7

    recorders.reset()
    with configured({"POCKETCORE_EXECUTOR": "rec-2", "POCKETCORE_MAX_CONCURRENCY": "3"}):
        pocketcore.run(pocketcore.AsyncFlow(start=Limited()), {"items": [5]})
    assert recorders.used() == ["rec-1"]
    assert recorders.recorders["rec-1"].calls[0].limit == 7


def test_an_executor_object_can_be_passed_directly() -> None:
    rec = pocketcore.testing.RecordingExecutor()
    shared: dict[str, Any] = {"items": [4, 5]}
    pocketcore.run(Double(), shared, executor=rec, max_concurrency=2)
    assert shared["out"] == [8, 10]
    assert [(c.items, c.limit) for c in rec.calls] == [([4, 5], 2)]


# --- errors name their source -------------------------------------------------


def test_unknown_name_lists_the_installed_executors() -> None:
    with pytest.raises(ConfigError) as info:
        pocketcore.run(Double(), executor="nope")
    message = str(info.value)
    assert "'nope'" in message
    assert "argument executor=" in message
    for name in ("asyncio", "sequential", "trio"):
        assert name in message


@pytest.mark.parametrize(
    ("env", "files", "where"),
    [
        ({"POCKETCORE_EXECUTOR": "nope"}, {}, "environment variable POCKETCORE_EXECUTOR"),
        ({}, {"pocketcore.toml": 'executor = "nope"\n'}, "pocketcore.toml"),
        (
            {},
            {"pyproject.toml": '[tool.pocketcore]\nexecutor = "nope"\n'},
            "pyproject.toml [tool.pocketcore]",
        ),
    ],
)
def test_unknown_name_from_env_or_file_names_it(
    env: dict[str, str], files: dict[str, str], where: str
) -> None:
    with configured(env, files), pytest.raises(ConfigError, match="'nope'") as info:
        pocketcore.run(Double())
    assert where in str(info.value)


def test_unknown_name_on_a_node_names_the_node() -> None:
    flow = pocketcore.AsyncFlow(start=Double(executor="nope"))
    with pytest.raises(ConfigError, match="attribute executor of Double") as info:
        pocketcore.run(flow, {"items": [1]})
    assert "installed executors" in str(info.value)


@settings(max_examples=30, deadline=None)
@given(bad_limits)
def test_bad_limit_argument(value: Any) -> None:
    with pytest.raises(ConfigError, match="argument max_concurrency="):
        pocketcore.run(Double(), max_concurrency=value)


@settings(max_examples=30, deadline=None)
@given(bad_limits)
def test_bad_limit_keyword_on_a_node(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"argument max_concurrency= of Double\(\)"):
        Double(max_concurrency=value)


@settings(max_examples=30, deadline=None)
@given(bad_env_limit_text)
def test_bad_limit_in_the_environment(text: str) -> None:
    with (
        configured({"POCKETCORE_MAX_CONCURRENCY": text}),
        pytest.raises(ConfigError, match="environment variable POCKETCORE_MAX_CONCURRENCY"),
    ):
        pocketcore.run(Double())


@pytest.mark.parametrize("value", ["0", "-3", '"4"', "1.5", "true", "[1]"])
def test_bad_limit_in_a_file(value: str) -> None:
    with (
        configured(files={"pocketcore.toml": f"max_concurrency = {value}\n"}),
        pytest.raises(ConfigError, match=r"key 'max_concurrency' in pocketcore\.toml"),
    ):
        pocketcore.run(Double())


def test_bad_limit_as_a_class_attribute_is_caught_before_running() -> None:
    ran = []

    class Bad(Double):
        max_concurrency = 0

    class First(pocketcore.AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            ran.append("first")

    first = First()
    first >> Bad()
    with pytest.raises(ConfigError, match="attribute max_concurrency of Bad"):
        pocketcore.run(pocketcore.AsyncFlow(start=first))
    assert ran == []


@pytest.mark.parametrize("value", [5, 1.0, b"asyncio", ["asyncio"], ""])
def test_executor_of_the_wrong_type(value: Any) -> None:
    with pytest.raises(ConfigError, match="argument executor="):
        pocketcore.run(Double(), executor=value)
    with pytest.raises(ConfigError, match=r"argument executor= of Double\(\)"):
        Double(executor=value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("executor = [", "not valid TOML"),
        ("exector = 'asyncio'\n", "unknown key 'exector' in pocketcore.toml"),
        ("executor = 3\n", "key 'executor' in pocketcore.toml"),
    ],
)
def test_broken_config_file(text: str, message: str) -> None:
    with configured(files={"pocketcore.toml": text}), pytest.raises(ConfigError, match=message):
        pocketcore.run(Double())


def test_pocketcore_toml_wins_over_pyproject(recorders: RecorderPlugin) -> None:
    recorders.reset()
    files = {
        "pocketcore.toml": 'executor = "rec-0"\n',
        "pyproject.toml": '[tool.pocketcore]\nexecutor = "rec-1"\n',
    }
    with configured(files=files):
        pocketcore.run(Double(), {"items": [1]})
    assert recorders.used() == ["rec-0"]


def test_plugin_subtables_are_left_to_plugins() -> None:
    files = {
        "pyproject.toml": (
            '[tool.pocketcore]\nmax_concurrency = 2\n[tool.pocketcore.dask]\naddress = "x"\n'
        )
    }
    shared: dict[str, Any] = {"items": [1, 2]}
    with configured(files=files):
        pocketcore.run(Double(), shared)
    assert shared["out"] == [2, 4]


# --- the backend ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("executor", "backend"), [("asyncio", "asyncio"), ("sequential", "asyncio"), ("trio", "trio")]
)
def test_run_starts_the_loop_the_executor_needs(executor: str, backend: str) -> None:
    shared: dict[str, Any] = {}
    assert pocketcore.run(Double(), shared, executor=executor) == "done"
    assert shared["backend"] == backend


def test_the_targets_own_executor_picks_the_loop() -> None:
    shared: dict[str, Any] = {}
    pocketcore.run(pocketcore.AsyncFlow(start=Double(), executor="trio"), shared)
    assert shared["backend"] == "trio"


def test_executor_for_another_backend_is_a_clear_error() -> None:
    flow = pocketcore.AsyncFlow(start=Double(executor="trio"))
    with pytest.raises(ConfigError, match=r"needs the trio backend, but this run is on asyncio"):
        pocketcore.run(flow, executor="asyncio")


def test_an_unused_run_level_executor_is_not_held_against_the_run() -> None:
    # The target's own executor picks trio and covers every node inside it;
    # the run-level asyncio is never used, so it is not an error.
    shared: dict[str, Any] = {}
    pocketcore.run(
        pocketcore.AsyncFlow(start=Double(), executor="trio"), shared, executor="asyncio"
    )
    assert shared["backend"] == "trio"


def test_run_async_in_a_trio_loop_rejects_an_asyncio_executor_from_env() -> None:
    async def main() -> None:
        await Double().run_async({})

    with (
        configured({"POCKETCORE_EXECUTOR": "asyncio"}),
        pytest.raises(ConfigError, match="POCKETCORE_EXECUTOR") as info,
    ):
        anyio.run(main, backend="trio")
    assert "this run is on trio" in str(info.value)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_run_async_defaults_to_the_running_backend(recorders: RecorderPlugin, backend: str) -> None:
    seen: list[str] = []

    class Spy(Double):
        async def exec_async(self, item: int) -> int:
            from pocketcore._runtime.context import RUN

            cfg = RUN.get()
            assert cfg is not None
            seen.append(cfg.executor.name)
            return item

    async def main() -> None:
        await pocketcore.AsyncFlow(start=Spy()).run_async({"items": [1]})

    anyio.run(main, backend=backend)
    assert seen == [backend]


@settings(max_examples=20, deadline=None)
@given(limits)
def test_limit_reaches_the_executor_through_run(limit: int | None) -> None:
    rec = pocketcore.testing.RecordingExecutor()
    pocketcore.run(Double(), {"items": [1, 2]}, executor=rec, max_concurrency=limit)
    assert rec.calls[0].limit == limit


def test_sync_targets_run_without_a_loop() -> None:
    class Sync(pocketcore.Node):
        def exec(self, prep_res: Any) -> str:
            return "x"

        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: str) -> str:
            shared["v"] = exec_res
            return "end"

    shared: dict[str, Any] = {}
    assert pocketcore.run(pocketcore.Flow(start=Sync()), shared) == "end"
    assert shared == {"v": "x"}


def test_run_rejects_what_is_not_a_node() -> None:
    with pytest.raises(TypeError, match="needs a node or flow, got function"):
        pocketcore.run(lambda: None)  # type: ignore[arg-type]


def test_shared_defaults_to_a_new_dict() -> None:
    assert pocketcore.run(Double()) == "done"


# --- flows scope their settings; loops; runs without plugins ---------------------


def test_nested_flows_innermost_setting_wins(recorders: RecorderPlugin) -> None:
    class Go(Double):
        async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
            shared.setdefault("outs", []).append(exec_res)

    recorders.reset()
    inner_start = Go()
    inner_start >> Go(executor="rec-2", max_concurrency=9)
    inner = pocketcore.AsyncFlow(start=inner_start, executor="rec-1")
    outer_start = Go()
    outer_start >> inner
    outer = pocketcore.AsyncFlow(start=outer_start, executor="rec-0", max_concurrency=4)
    shared: dict[str, Any] = {"items": [1, 2]}
    pocketcore.run(outer, shared)
    assert shared["outs"] == [[2, 4]] * 3
    calls = {name: [c.limit for c in rec.calls] for name, rec in recorders.recorders.items()}
    # outer node: the outer flow's executor and limit; inner node: the inner
    # flow's executor, the outer limit; last node: its own settings.
    assert calls == {"rec-0": [4], "rec-1": [4], "rec-2": [9], "rec-3": []}


def test_the_loop_follows_the_choice_that_needs_a_backend() -> None:
    shared: dict[str, Any] = {}
    target = pocketcore.AsyncFlow(start=Double(), executor="sequential")
    pocketcore.run(target, shared, executor="trio")
    assert shared["backend"] == "trio"


def test_run_inside_a_running_loop_says_what_to_do_instead() -> None:
    async def main() -> None:
        pocketcore.run(Double())

    with pytest.raises(RuntimeError, match=r"use 'await target.run_async\(shared\)'"):
        anyio.run(main)


def test_an_executor_class_instead_of_an_instance() -> None:
    from pocketcore_sequential import SequentialExecutor

    with pytest.raises(ConfigError, match="is a class; pass an instance"):
        pocketcore.run(Double(), executor=SequentialExecutor)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["tool = 3\n", "[tool]\npocketcore = 3\n"])
def test_a_pyproject_with_odd_tool_values(text: str) -> None:
    with configured(files={"pyproject.toml": text}):
        if "pocketcore" in text:
            with pytest.raises(ConfigError, match=r"\[tool.pocketcore\] in pyproject.toml"):
                pocketcore.run(Double())
        else:
            assert pocketcore.run(Double()) == "done"


def test_without_plugins_only_parallel_nodes_need_an_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pocketcore._plugins import registry as _plugins

    monkeypatch.setenv("POCKETCORE_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setattr(_plugins, "_registry", None)  # a fresh process, as far as loading goes

    class Plain(pocketcore.AsyncNode):
        async def exec_async(self, prep_res: Any) -> str:
            return "ran"

        async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
            shared["v"] = exec_res

    shared: dict[str, Any] = {}
    pocketcore.run(pocketcore.AsyncFlow(start=Plain()), shared)
    assert shared == {"v": "ran"}
    with pytest.raises(ConfigError, match="autoload is disabled") as info:
        pocketcore.run(pocketcore.AsyncFlow(start=Double()))
    assert "the default for the asyncio backend" in str(info.value)


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"pocketcore.toml": '[dask]\naddress = "tcp://x:1"\n'}, "[dask] in pocketcore.toml"),
        (
            {"pyproject.toml": '[tool.pocketcore.dask]\naddress = "tcp://x:1"\n'},
            "[tool.pocketcore.dask] in pyproject.toml",
        ),
    ],
)
def test_plugins_read_their_own_tables(files: dict[str, str], where: str) -> None:
    with configured(files=files):
        assert pocketcore.plugin_settings("dask") == ({"address": "tcp://x:1"}, where)
        assert pocketcore.plugin_settings("other") == ({}, None)
        assert pocketcore.run(Double()) == "done"  # the sub-table is not a run setting


def test_a_plugin_table_that_is_not_a_table() -> None:
    with (
        configured(files={"pocketcore.toml": "dask = 3\n"}),
        pytest.raises(ConfigError, match=r"unknown key 'dask' in pocketcore\.toml"),
    ):
        pocketcore.plugin_settings("dask")
