"""Flow files: every problem reported with its place, and loaded flows that run as described."""

from __future__ import annotations

import copy
import json
import math
import pickle
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
import pocketcore_asyncio
import pocketcore_sequential
import pocketcore_trio
from pocketcore import AsyncNode, BaseNode, ConfigError, Flow, Registry
from pocketcore._front.flowfile import FlowFileError, LoadedFlow, load_flow

from . import flowfile_nodes as nodes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

EXECUTORS = ["sequential", "asyncio", "trio"]
BACKEND = {"sequential": "asyncio", "asyncio": "asyncio", "trio": "trio"}
FLOWFILES = Path(__file__).parent / "flowfiles"


@pytest.fixture(scope="module")
def registry() -> Registry:
    """A fresh registry: the three executors and the test nodes, nothing from entry points."""
    reg = Registry(pocketcore.make_plugin_manager())
    for module in (pocketcore_sequential, pocketcore_asyncio, pocketcore_trio):
        reg.register(module, name=module.__name__)
    reg.register(nodes.NodesPlugin(), name="flowfile-test-nodes")
    return reg


def write(text: str, directory: str | Path) -> Path:
    path = Path(directory, "flow.toml")
    path.write_text(textwrap.dedent(text))
    return path


def load(text: str, registry: Registry) -> LoadedFlow:
    with tempfile.TemporaryDirectory() as tmp:
        return load_flow(write(text, tmp), registry=registry)


def problems(text: str, registry: Registry) -> list[str]:
    with pytest.raises(FlowFileError) as info:
        load(text, registry)
    return info.value.problems


def run(loaded: LoadedFlow, shared: dict[str, Any], executor: str | None = None) -> Any:
    return pocketcore.run(
        loaded.flow,
        shared,
        executor=executor or loaded.executor,
        max_concurrency=loaded.max_concurrency,
    )


# --- a tiny TOML writer, for the generated files ------------------------------------


def toml_key(key: str) -> str:
    return toml_value(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        # JSON strings are TOML basic strings, except that TOML wants DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML: tables as [headers], their plain values first."""
    lines: list[str] = []

    def table(path: list[str], body: dict[str, Any]) -> None:
        if path:
            lines.append("[" + ".".join(toml_key(p) for p in path) + "]")
        subtables = {k: v for k, v in body.items() if isinstance(v, dict)}
        lines.extend(
            f"{toml_key(k)} = {toml_value(v)}" for k, v in body.items() if k not in subtables
        )
        for key, sub in subtables.items():
            table([*path, key], sub)

    table([], data)
    return "\n".join(lines) + "\n"


def place(*parts: str) -> str:
    bare = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    return "[" + ".".join(p if p and set(p) <= set(bare) else json.dumps(p) for p in parts) + "]"


@given(
    st.recursive(
        st.one_of(
            st.booleans(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False),
            st.text(),
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_the_toml_writer_round_trips(value: Any) -> None:
    assert tomllib.loads(to_toml({"v": value})) == {"v": value}


# --- generated flow files -------------------------------------------------------------

NODE_NAMES = ["a", "b", "load", "my node"]
ACTIONS = ["default", "retry", "done", "two words"]
USES = {
    "record": nodes.Record,
    "record_async": nodes.AsyncRecord,
    "tests.flowfile_nodes:Record": nodes.Record,
    "tests.flowfile_nodes:AsyncRecord": nodes.AsyncRecord,
}
param_values = st.one_of(
    st.integers(-5, 5), st.text("xyz", max_size=3), st.booleans(), st.lists(st.integers(0, 3))
)
params = st.dictionaries(st.sampled_from(["k", "model", "n", "two words"]), param_values)
node_settings = st.fixed_dictionaries(
    {},
    optional={
        "max_retries": st.integers(1, 5),
        "wait": st.one_of(st.integers(0, 2), st.floats(0, 2)),
        "executor": st.sampled_from(EXECUTORS),
        "max_concurrency": st.integers(1, 8),
    },
)
flow_settings = st.fixed_dictionaries(
    {},
    optional={"executor": st.sampled_from(EXECUTORS), "max_concurrency": st.integers(1, 8)},
)


@st.composite
def flow_tables(draw: st.DrawFn, later: list[str]) -> dict[str, Any]:
    """One flow table whose nested flows are among ``later`` (so containment has no cycle)."""
    names = draw(st.lists(st.sampled_from(NODE_NAMES), min_size=1, max_size=4, unique=True))
    specs: dict[str, Any] = {}
    for name in names:
        nested = draw(st.booleans()) if later else False
        if nested:
            spec: dict[str, Any] = {"flow": draw(st.sampled_from(later))}
            spec.update(draw(flow_settings))
        else:
            spec = {"use": draw(st.sampled_from(sorted(USES)))}
            spec.update(draw(node_settings))
        if draw(st.booleans()):
            spec["params"] = draw(params)
        edge = draw(
            st.one_of(
                st.none(),
                st.sampled_from(names),
                st.dictionaries(st.sampled_from(ACTIONS), st.sampled_from(names), max_size=3),
            )
        )
        if edge is not None:
            spec["next"] = edge
        specs[name] = spec
    table: dict[str, Any] = {"start": draw(st.sampled_from(names))}
    if draw(st.booleans()):
        table["params"] = draw(params)
    table.update(draw(flow_settings))
    if draw(st.booleans()):
        table["batch"] = draw(st.lists(params, max_size=3))
        table["type"] = draw(st.sampled_from([None, "AsyncBatchFlow", "AsyncParallelBatchFlow"]))
    else:
        table["type"] = draw(st.sampled_from([None, "AsyncFlow"]))
    if table["type"] is None:
        del table["type"]
    table["nodes"] = specs
    return table


@st.composite
def flow_files(draw: st.DrawFn) -> dict[str, Any]:
    inner = [f"f{i}" for i in range(draw(st.integers(0, 3)))]
    data: dict[str, Any] = {}
    config = draw(flow_settings)
    if config:
        data["config"] = config
    data["flow"] = draw(flow_tables(inner))
    if inner:
        data["flows"] = {name: draw(flow_tables(inner[i + 1 :])) for i, name in enumerate(inner)}
    return data


def check_flow(
    data: dict[str, Any],
    table: dict[str, Any],
    flow: BaseNode,
    loaded: LoadedFlow,
    prefix: str,
    seen: set[str],
) -> None:
    """``flow`` (and everything in it) is exactly what ``table`` describes."""
    assert isinstance(flow, Flow)
    specs = table["nodes"]
    built = {name: loaded.names[prefix + name] for name in specs}
    seen.update(prefix + name for name in specs)
    any_async = any(isinstance(node, AsyncNode) for node in built.values())
    if "type" in table:
        assert type(flow).__name__ == table["type"]
    elif "batch" in table:
        assert type(flow).__name__ == ("AsyncBatchFlow" if any_async else "BatchFlow")
    else:
        assert type(flow).__name__ == ("AsyncFlow" if any_async else "Flow")
    assert flow.start_node is built[table["start"]]
    assert flow.params == table.get("params", {})
    if "batch" in table:
        assert flow.prep({}) == table["batch"]
    for key in ("executor", "max_concurrency"):
        assert getattr(flow, key) == table.get(key)
    for name, spec in specs.items():
        node = built[name]
        nxt = spec.get("next", {})
        expected = {"default": nxt} if isinstance(nxt, str) else nxt
        assert {a: id(n) for a, n in node.successors.items()} == {
            a: id(built[t]) for a, t in expected.items()
        }
        if "use" in spec:
            assert isinstance(node, USES[spec["use"]])
            assert type(node).__name__ == USES[spec["use"]].__name__
            assert node.params == spec.get("params", {})
            for key, default in (("max_retries", 1), ("wait", 0)):
                assert getattr(node, key) == spec.get(key, default)
            for key in ("executor", "max_concurrency"):
                assert getattr(node, key) == spec.get(key)
        else:
            # The node's table adds params and settings to those of the [flows] table.
            use = copy.deepcopy(data["flows"][spec["flow"]])
            use["params"] = {**use.get("params", {}), **spec.get("params", {})}
            use.update({k: spec[k] for k in ("executor", "max_concurrency") if k in spec})
            check_flow(data, use, node, loaded, f"{prefix}{name}.", seen)


@settings(max_examples=100, deadline=None)
@given(flow_files())
def test_a_loaded_file_is_the_graph_it_describes(registry: Registry, data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "flow.toml")
        path.write_text(to_toml(data))
        loaded = load_flow(path, registry=registry)
    assert loaded.path == str(path)
    assert loaded.executor == data.get("config", {}).get("executor")
    assert loaded.max_concurrency == data.get("config", {}).get("max_concurrency")
    seen: set[str] = set()
    check_flow(data, data["flow"], loaded.flow, loaded, "", seen)
    assert set(loaded.names) == seen
    # Every use of a nested flow is a flow (and nodes) of its own.
    assert len({id(node) for node in loaded.names.values()}) == len(loaded.names)


# --- one mutation makes a generated file invalid ---------------------------------------------


def flow_paths(data: dict[str, Any]) -> list[tuple[str, ...]]:
    return [("flow",), *(("flows", name) for name in data.get("flows", {}))]


def table_at(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    table = data
    for part in path:
        table = table[part]
    return table


BAD_SETTINGS = {
    "max_retries": [0, -1, "3", True, 1.5],
    "wait": [-1, "1", True, math.inf],
    "executor": ["tiro", 3, ""],
    "max_concurrency": [0, "2", False, 2.0],
}


@st.composite
def broken_files(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    """A valid file changed in one place; returns it, the place and the key that must be named."""
    data = copy.deepcopy(draw(flow_files()))
    flow_path = draw(st.sampled_from(flow_paths(data)))
    table = table_at(data, flow_path)
    name = draw(st.sampled_from(sorted(table["nodes"])))
    spec = table["nodes"][name]
    node_place = place(*flow_path, "nodes", name)
    kind = draw(
        st.sampled_from(
            [
                "unknown use",
                "not a node",
                "unknown key",
                "bad setting",
                "missing target",
                "missing start",
                "missing flow",
                "self containment",
                "batch on a plain flow",
                "params not a table",
                "unknown top-level key",
            ]
        )
    )
    if kind == "unknown use":
        table["nodes"][name] = {"use": draw(st.sampled_from(["recrod", "nosuch", "x.y:Z"]))}
        return data, node_place, "use"
    if kind == "not a node":
        ref = draw(st.sampled_from(["not_a_class", "NotANode", "NeedsArgs"]))
        table["nodes"][name] = {"use": f"tests.flowfile_nodes:{ref}"}
        return data, node_place, "use"
    if kind == "unknown key":
        spec[draw(st.sampled_from(["nxet", "param", "retries", "flows"]))] = 1
        return data, node_place, ""
    if kind == "bad setting":
        keys = ["executor", "max_concurrency"]
        if "use" in spec:
            keys += ["max_retries", "wait"]
        key = draw(st.sampled_from(keys))
        spec[key] = draw(st.sampled_from(BAD_SETTINGS[key]))
        return data, node_place, key
    if kind == "missing target":
        action = draw(st.sampled_from(ACTIONS))
        spec["next"] = {action: "ghost"}
        return data, node_place, "next." + (json.dumps(action) if " " in action else action)
    if kind == "missing start":
        table["start"] = "ghost"
        return data, place(*flow_path), "start"
    if kind == "missing flow":
        table["nodes"][name] = {"flow": "nowhere"}
        return data, node_place, "flow"
    if kind == "self containment":
        if flow_path[0] == "flow":  # [flow] cannot be named; make a [flows] table contain itself
            data.setdefault("flows", {})["loop"] = {"start": "x", "nodes": {"x": {"flow": "loop"}}}
            return data, place("flows", "loop", "nodes", "x"), "flow"
        table["nodes"][name] = {"flow": flow_path[1]}
        return data, node_place, "flow"
    if kind == "batch on a plain flow":
        table["type"] = "AsyncFlow"
        table["batch"] = [{}]
        return data, place(*flow_path), "batch"
    if kind == "params not a table":
        spec["params"] = draw(st.sampled_from([3, "x", [1]]))
        return data, node_place, "params"
    assert kind == "unknown top-level key"
    data["flwo"] = {}
    return data, "(top level)", "flwo"


@settings(max_examples=100, deadline=None)
@given(broken_files())
def test_one_mistake_is_reported_at_its_place(
    registry: Registry, broken: tuple[dict[str, Any], str, str]
) -> None:
    data, where, key = broken
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "flow.toml")
        path.write_text(to_toml(data))
        with pytest.raises(FlowFileError) as info:
            load_flow(path, registry=registry)
    error = info.value
    assert isinstance(error, ConfigError)
    assert isinstance(error, ValueError)
    assert error.problems
    # Only the mistake is reported (once, however often its flow is used) ...
    assert all(p.startswith(where) for p in error.problems), error.problems
    # ... naming the key at fault.
    head = f"{where} {key}:" if key else f"{where} "
    assert any(p.startswith(head) for p in error.problems), error.problems
    assert str(error).splitlines() == [
        f"{path}: {len(error.problems)} problem(s)",
        *(f"  {p}" for p in error.problems),
    ]


# --- running loaded flows ---------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_node_params_fill_in_what_the_flow_does_not_pass(registry: Registry, executor: str) -> None:
    loaded = load(
        """
        [flow]
        start = "first"
        params = { lang = "en", model = "default" }

        [flow.nodes.first]
        use = "record"
        params = { tag = "first", model = "small" }
        next = "second"

        [flow.nodes.second]
        use = "tests.flowfile_nodes:Record"
        params = { tag = "second" }
        """,
        registry,
    )
    assert type(loaded.flow).__name__ == "Flow"  # no async node: the plain Flow
    shared: dict[str, Any] = {}
    run(loaded, shared, executor)
    # The flow's params reach every node as they are (as in PocketFlow); what
    # the file gives a node fills in the rest.
    assert shared["log"] == [
        {"lang": "en", "model": "default", "tag": "first"},
        {"lang": "en", "model": "default", "tag": "second"},
    ]
    # Running did not change what was loaded: a second run is the same.
    assert run(loaded, {}, executor) is None
    assert loaded.names["first"].params == {"tag": "first", "model": "small"}


def test_params_set_after_loading_are_used(registry: Registry) -> None:
    loaded = load(
        """
        [flow]
        start = "only"
        params = { lang = "en" }
        [flow.nodes.only]
        use = "record"
        """,
        registry,
    )
    loaded.flow.params["lang"] = "fr"
    loaded.names["only"].params["model"] = "big"
    shared: dict[str, Any] = {}
    pocketcore.run(loaded.flow, shared)
    assert shared["log"] == [{"lang": "fr", "model": "big"}]
    # set_params keeps what it is given (the file's params only fill in), so a
    # caller can override the file's params, as the CLI's --set does.
    loaded.flow.set_params({**loaded.flow.params, "lang": "de", "extra": 1})
    assert loaded.flow.params == {"lang": "de", "extra": 1}
    shared = {}
    pocketcore.run(loaded.flow, shared)
    assert shared["log"] == [{"lang": "de", "extra": 1, "model": "big"}]


def test_params_a_constructor_sets_are_kept(registry: Registry) -> None:
    loaded = load(
        """
        [flow]
        start = "n"
        params = { size = 9, lang = "en" }
        [flow.nodes.n]
        use = "tests.flowfile_nodes:WithDefaults"
        params = { model = "from the file" }
        """,
        registry,
    )
    shared: dict[str, Any] = {}
    pocketcore.run(loaded.flow, shared)
    # The constructor's params, updated with the file's; the flow's fill in over both.
    assert shared["log"] == [{"lang": "en", "size": 9, "model": "from the file"}]


NESTED = """
    [config]
    executor = "{executor}"
    max_concurrency = 2

    [flow]
    start = "count"
    params = {{ lang = "en" }}

    [flow.nodes.count]
    use = "countdown"
    next = {{ again = "count", done = "fan" }}   # a loop: fine

    [flow.nodes.fan]
    use = "fanout"
    params = {{ out = "doubled" }}
    next = "one"

    [flow.nodes.one]
    flow = "inner"
    params = {{ tag = "one" }}
    next = "two"

    [flow.nodes.two]
    flow = "inner"
    params = {{ tag = "two" }}

    [flows.inner]
    start = "rec"
    params = {{ tag = "inner", depth = 1 }}

    [flows.inner.nodes.rec]
    use = "record_async"
    next = "sync"

    [flows.inner.nodes.sync]
    use = "record"
    params = {{ step = "sync" }}
"""


@pytest.mark.parametrize("executor", EXECUTORS)
def test_nested_flows_loops_and_parallel_nodes_run_on_every_executor(
    registry: Registry, executor: str
) -> None:
    loaded = load(NESTED.format(executor=executor), registry)
    assert (loaded.executor, loaded.max_concurrency) == (executor, 2)
    assert list(loaded.names) == [
        "count",
        "fan",
        "one",
        "one.rec",
        "one.sync",
        "two",
        "two.rec",
        "two.sync",
    ]
    assert loaded.names["one"] is not loaded.names["two"]
    assert loaded.names["one.rec"] is not loaded.names["two.rec"]
    assert type(loaded.flow).__name__ == "AsyncFlow"

    shared: dict[str, Any] = {"left": 3, "items": [1, 2, 3, 4, 5]}
    run(loaded, shared)
    assert shared["rounds"] == 3
    assert shared["doubled"] == [2, 4, 6, 8, 10]
    # [config] max_concurrency bounds the parallel node; sequential runs one at a time.
    assert shared["gauge"]["most"] == (1 if executor == "sequential" else 2)
    backend = BACKEND[executor]
    assert shared["log"] == [
        {"lang": "en", "tag": "one", "depth": 1, "backend": backend},
        {"lang": "en", "tag": "one", "depth": 1, "step": "sync"},
        {"lang": "en", "tag": "two", "depth": 1, "backend": backend},
        {"lang": "en", "tag": "two", "depth": 1, "step": "sync"},
    ]


BATCH = """
    [flow]
    {how}
    params = {{ lang = "en" }}
    start = "rec"

    [flow.nodes.rec]
    use = "{use}"
    params = {{ model = "small" }}
"""


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("flow_type", ["", "AsyncBatchFlow", "AsyncParallelBatchFlow"])
@pytest.mark.parametrize("source", ["batch", "batch_key"])
def test_batch_flows_run_one_pass_per_params_dict(
    registry: Registry, executor: str, flow_type: str, source: str
) -> None:
    how = (
        'batch = [{ file = "a.txt" }, { file = "b.txt", model = "large" }]'
        if source == "batch"
        else 'batch_key = "files"'
    )
    if flow_type:
        how += f'\ntype = "{flow_type}"'
    loaded = load(BATCH.format(how=textwrap.indent(how, "    "), use="record_async"), registry)
    assert type(loaded.flow).__name__ == (flow_type or "AsyncBatchFlow")
    shared: dict[str, Any] = {"files": [{"file": "a.txt"}, {"file": "b.txt", "model": "large"}]}
    run(loaded, shared, executor)
    backend = BACKEND[executor]
    # Each pass sees the flow's params and its own, which win over the node's
    # (parallel passes may finish in any order).
    assert sorted(shared["log"], key=lambda entry: entry["file"]) == [
        {"lang": "en", "file": "a.txt", "model": "small", "backend": backend},
        {"lang": "en", "file": "b.txt", "model": "large", "backend": backend},
    ]


@pytest.mark.parametrize("source", ["batch", "batch_key"])
def test_a_sync_batch_flow(registry: Registry, source: str) -> None:
    how = "batch = [{ n = 1 }, { n = 2 }]" if source == "batch" else 'batch_key = "passes"'
    loaded = load(BATCH.format(how=how, use="record"), registry)
    assert type(loaded.flow).__name__ == "BatchFlow"
    shared: dict[str, Any] = {"passes": [{"n": 1}, {"n": 2}]}
    pocketcore.run(loaded.flow, shared)
    assert [entry["n"] for entry in shared["log"]] == [1, 2]


def test_batch_key_missing_from_the_shared_store(registry: Registry) -> None:
    loaded = load(BATCH.format(how='batch_key = "files"', use="record"), registry)
    with pytest.raises(KeyError, match="batch_key 'files': the shared store has no such key"):
        pocketcore.run(loaded.flow, {})


def test_a_registered_batch_flow_type_with_passes_of_its_own(registry: Registry) -> None:
    loaded = load(
        """
        [flow]
        type = "passes"
        start = "rec"
        [flow.nodes.rec]
        use = "record"
        """,
        registry,
    )
    assert isinstance(loaded.flow, nodes.Passes)
    shared: dict[str, Any] = {}
    pocketcore.run(loaded.flow, shared)
    assert shared["log"] == [{"n": 1}, {"n": 2}, {"n": 3}]


@pytest.mark.parametrize(("max_retries", "succeeds"), [(3, True), (2, False)])
def test_retry_settings_apply_at_run_time(
    registry: Registry, max_retries: int, succeeds: bool
) -> None:
    loaded = load(
        f"""
        [flow]
        start = "flaky"
        [flow.nodes.flaky]
        use = "flaky"
        params = {{ failures = 2 }}
        max_retries = {max_retries}
        wait = 0.001
        """,
        registry,
    )
    node = loaded.names["flaky"]
    assert (node.max_retries, node.wait) == (max_retries, 0.001)  # type: ignore[attr-defined]
    shared: dict[str, Any] = {}
    if succeeds:
        pocketcore.run(loaded.flow, shared)
        assert shared == {"attempts": 3, "result": "ok"}
    else:
        with pytest.raises(RuntimeError, match="attempt 2 failed"):
            pocketcore.run(loaded.flow, shared)


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_a_nodes_own_executor_and_limit_apply(registry: Registry, executor: str) -> None:
    loaded = load(
        """
        [flow]
        start = "one_at_a_time"
        [flow.nodes.one_at_a_time]
        use = "fanout"
        params = { out = "first" }
        executor = "sequential"
        next = "three"
        [flow.nodes.three]
        use = "fanout"
        params = { out = "second" }
        max_concurrency = 3
        """,
        registry,
    )
    assert loaded.names["one_at_a_time"].executor == "sequential"
    assert loaded.names["three"].max_concurrency == 3
    shared: dict[str, Any] = {"items": list(range(6))}
    run(loaded, shared, executor)
    assert shared["first"] == shared["second"] == [0, 2, 4, 6, 8, 10]
    assert shared["gauge"]["most"] == 3


def test_flow_settings_are_set_on_the_flows(registry: Registry) -> None:
    loaded = load(
        """
        [flow]
        start = "sub"
        executor = "trio"
        max_concurrency = 4
        [flow.nodes.sub]
        flow = "inner"
        max_concurrency = 2
        [flows.inner]
        start = "x"
        executor = "asyncio"
        max_concurrency = 7
        [flows.inner.nodes.x]
        use = "record"
        """,
        registry,
    )
    assert (loaded.flow.executor, loaded.flow.max_concurrency) == ("trio", 4)
    sub = loaded.names["sub"]
    assert (sub.executor, sub.max_concurrency) == ("asyncio", 2)


def test_the_default_registry_and_a_path_object(tmp_path: Path) -> None:
    path = write(
        """
        [config]
        executor = "asyncio"
        [flow]
        start = "x"
        [flow.nodes.x]
        use = "tests.flowfile_nodes:AsyncRecord"
        """,
        tmp_path,
    )
    loaded = load_flow(path)
    assert loaded.path == str(path)
    shared: dict[str, Any] = {}
    run(loaded, shared)
    assert shared["log"] == [{"backend": "asyncio"}]


def test_the_example_file(registry: Registry) -> None:
    loaded = load_flow(FLOWFILES / "review.toml", registry=registry)
    drafts = [{"draft": "a"}, {"draft": "b", "model": "large"}]
    shared: dict[str, Any] = {"drafts": drafts, "left": 2}
    run(loaded, shared)
    assert shared["rounds"] == 2
    assert sorted((e["draft"], e["model"], e["lang"]) for e in shared["log"]) == [
        ("a", "small", "en"),
        ("b", "large", "en"),
    ]


def test_names_cannot_be_changed(registry: Registry) -> None:
    loaded = load(NESTED.format(executor="asyncio"), registry)
    with pytest.raises(TypeError):
        loaded.names["x"] = loaded.flow  # type: ignore[index]


# --- problems, each with its place ----------------------------------------------------------


def test_every_problem_is_reported_at_once(registry: Registry) -> None:
    found = problems(
        """
        [flow]
        start = "y"

        [flow.nodes.load]
        use = "sumarize"
        next = "b"

        [flow.nodes.a]
        use = "record"
        max_retries = "3"
        nxet = "b"
        next = { retry = "x" }

        [flow.nodes.b]
        use = "record"
        wait = -1
        executor = "tiro"
        max_concurrency = 0
        """,
        registry,
    )
    assert found == [
        "[flow] start: no node 'y' in this flow (nodes: load, a, b)",
        "[flow.nodes.load] use: unknown node 'sumarize' (registered: countdown, fanout, "
        "flaky, passes, record, record_async, summarize); did you mean 'summarize'?",
        "[flow.nodes.a] nxet: unknown key (known keys: use, flow, params, next, max_retries, "
        "wait, executor, max_concurrency; did you mean 'next'?)",
        "[flow.nodes.a] max_retries: expected an integer >= 1, got '3' (str)",
        "[flow.nodes.a] next.retry: no node 'x' in this flow (nodes: load, a, b)",
        "[flow.nodes.b] wait: expected a number of seconds >= 0, got -1 (int)",
        "[flow.nodes.b] executor: unknown executor 'tiro' (installed executors: asyncio, "
        "sequential, trio); did you mean 'trio'?",
        "[flow.nodes.b] max_concurrency: expected an integer >= 1, got 0 (int)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "tests.nowhere:X"',
            "[flow.nodes.a] use: cannot import tests.nowhere: "
            "ModuleNotFoundError: No module named 'tests.nowhere'",
            id="module not found",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "tests.flowfile_nodes:Nope"',
            "[flow.nodes.a] use: module tests.flowfile_nodes has no attribute 'Nope'",
            id="no such class",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "tests.flowfile_nodes:NotANode"',
            "[flow.nodes.a] use: tests.flowfile_nodes:NotANode is not a node class "
            "(a pocketcore.BaseNode subclass): <class 'tests.flowfile_nodes.NotANode'>",
            id="not a node",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "tests.flowfile_nodes:NeedsArgs"',
            "[flow.nodes.a] use: cannot create NeedsArgs: TypeError: ",
            id="constructor fails",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "flowfile_nodes:Record"',
            "[flow.nodes.a] use: cannot import flowfile_nodes: ModuleNotFoundError: ",
            id="module:Class needs the full module path",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = ":Record"',
            "[flow.nodes.a] use: expected 'package.module:Class', got ':Record'",
            id="no module",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = 3',
            "[flow.nodes.a] use: expected a registered node name or 'package.module:Class', "
            "got 3 (int)",
            id="use not a string",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record"\nflow = "x"',
            "[flow.nodes.a]: give use or flow, not both",
            id="use and flow",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nparams = {}',
            "[flow.nodes.a]: missing use (a node name or 'module:Class') or flow (a [flows] name)",
            id="neither use nor flow",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nflow = "inner"\n[flows.iner]\nstart = "x"\n'
            '[flows.iner.nodes.x]\nuse = "record"',
            "[flow.nodes.a] flow: no [flows.inner] table (flows: iner); did you mean 'iner'?",
            id="missing nested flow",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nflow = "inner"\nmax_retries = 2\n'
            '[flows.inner]\nstart = "x"\n[flows.inner.nodes.x]\nuse = "record"',
            "[flow.nodes.a] max_retries: Flow has no retries (not a pocketcore.Node)",
            id="retries on a flow",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record"\nnext = 3',
            "[flow.nodes.a] next: expected a node name or a table of action = node, got 3 (int)",
            id="next not a name",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record"\nnext = { "two words" = 3 }',
            '[flow.nodes.a] next."two words": expected a node name (str), got 3 (int)',
            id="next target not a name",
        ),
        pytest.param(
            '[flow]\nstart = "a.b"\n[flow.nodes."a.b"]\nuse = "record"',
            "[flow.nodes.\"a.b\"]: a node name must be non-empty and without '.'",
            id="dotted node name",
        ),
        pytest.param(
            '[flow]\nstart = 1\n[flow.nodes.a]\nuse = "record"',
            "[flow] start: expected a node name (str), got 1 (int)",
            id="start not a name",
        ),
        pytest.param(
            '[flow]\n[flow.nodes.a]\nuse = "record"',
            "[flow] start: missing: the name of the flow's first node",
            id="no start",
        ),
        pytest.param(
            '[flow]\nstart = "a"',
            "[flow] nodes: missing: a flow needs at least one [...nodes.NAME] table",
            id="no nodes",
        ),
        pytest.param(
            '[flow]\nstart = "a"\nnodes = []',
            "[flow] nodes: expected a table, got [] (list)",
            id="nodes not a table",
        ),
        pytest.param(
            '[config]\nexecutor = "asyncio"',
            "[flow]: missing: a flow file needs a [flow] table (start, nodes)",
            id="no flow",
        ),
        pytest.param(
            "flow = 3",
            "[flow]: expected a table, got 3 (int)",
            id="flow not a table",
        ),
        pytest.param(
            'flows = 3\n[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record"',
            "[flows]: expected a table, got 3 (int)",
            id="flows not a table",
        ),
        pytest.param(
            '[config]\nexecutor = "asyncio"\nmax_concurency = 3\n'
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record"',
            "[config] max_concurency: unknown key (known keys: executor, max_concurrency; "
            "did you mean 'max_concurrency'?)",
            id="config typo",
        ),
        pytest.param(
            '[config]\nmax_concurrency = "8"\n[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record"',
            "[config] max_concurrency: expected an integer >= 1, got '8' (str)",
            id="config limit",
        ),
        pytest.param(
            '[flow]\nstart = "a"\nstrat = "a"\n[flow.nodes.a]\nuse = "record"',
            "[flow] strat: unknown key (known keys: type, start, params, executor, "
            "max_concurrency, batch, batch_key, nodes; did you mean 'start'?)",
            id="flow typo",
        ),
        pytest.param(
            'flwo = 1\n[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record"',
            "(top level) flwo: unknown key (known keys: config, flow, flows; did you mean 'flow'?)",
            id="top-level typo",
        ),
        pytest.param(
            '[flow]\nstart = "a"\nparams = 3\n[flow.nodes.a]\nuse = "record"',
            "[flow] params: expected a table, got 3 (int)",
            id="params not a table",
        ),
    ],
)
def test_a_problem_and_its_place(registry: Registry, text: str, expected: str) -> None:
    found = problems(text, registry)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        pytest.param(
            'type = "Flwo"',
            "[flow] type: unknown flow type 'Flwo' (flow types: Flow, AsyncFlow, BatchFlow, "
            "AsyncBatchFlow, ParallelBatchFlow, AsyncParallelBatchFlow, passes, or "
            "'package.module:Class'); did you mean 'Flow'?",
            id="unknown type",
        ),
        pytest.param(
            'type = "record"',
            "[flow] type: record is not a flow class (a pocketcore.Flow subclass)",
            id="a node is not a flow type",
        ),
        pytest.param(
            'type = "Flow"\n[flow.nodes.b]\nuse = "record_async"',
            "[flow] type: Flow cannot run async nodes (b); use an async flow type such as "
            "AsyncFlow",
            id="async node in a sync flow",
        ),
        pytest.param(
            'type = "BatchFlow"',
            "[flow] type: BatchFlow needs batch or batch_key to have passes to run",
            id="batch flow without passes",
        ),
        pytest.param(
            'type = "AsyncParallelBatchFlow"',
            "[flow] type: AsyncParallelBatchFlow needs batch or batch_key to have passes to run",
            id="async batch flow without passes",
        ),
        pytest.param(
            'type = "AsyncFlow"\nbatch = [{ n = 1 }]',
            "[flow] batch: only for batch flows (BatchFlow and its subclasses), and this flow "
            "is a AsyncFlow",
            id="batch on a plain flow",
        ),
        pytest.param(
            'type = "Flow"\nbatch_key = "x"',
            "[flow] batch_key: only for batch flows",
            id="batch_key on a plain flow",
        ),
        pytest.param(
            'batch = [{ n = 1 }]\nbatch_key = "x"',
            "[flow] batch_key: give batch or batch_key, not both",
            id="both",
        ),
        pytest.param(
            "batch = [{ n = 1 }, 2]",
            "[flow] batch[1]: expected a table, got 2 (int)",
            id="batch item not a table",
        ),
        pytest.param(
            "batch = { n = 1 }",
            "[flow] batch: expected an array of tables, got {'n': 1} (dict)",
            id="batch not an array",
        ),
        pytest.param(
            'batch_key = ""',
            "[flow] batch_key: expected a key of the shared store (str), got '' (str)",
            id="empty batch_key",
        ),
        pytest.param(
            'type = "tests.flowfile_nodes:NeedsArgs"',
            "[flow] type: tests.flowfile_nodes:NeedsArgs is not a flow class",
            id="module:Class that is not a flow",
        ),
    ],
)
def test_flow_type_problems(registry: Registry, flow: str, expected: str) -> None:
    text = f'[flow]\nstart = "a"\n{flow}\n[flow.nodes.a]\nuse = "record"\n'
    found = problems(text, registry)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_a_flow_type_by_module_and_class(registry: Registry) -> None:
    loaded = load(
        """
        [flow]
        type = "tests.flowfile_nodes:Passes"
        start = "a"
        [flow.nodes.a]
        use = "record"
        """,
        registry,
    )
    assert isinstance(loaded.flow, nodes.Passes)


def test_an_import_error_is_one_line(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flowfile_boom.py").write_text('raise RuntimeError("boom\\nand more")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    found = problems('[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "flowfile_boom:X"', registry)
    assert found == ["[flow.nodes.a] use: cannot import flowfile_boom: RuntimeError: boom"]


def test_containment_cycles_are_reported_once(registry: Registry) -> None:
    found = problems(
        """
        [flow]
        start = "a"
        [flow.nodes.a]
        flow = "one"

        [flows.one]
        start = "x"
        [flows.one.nodes.x]
        flow = "two"

        [flows.two]
        start = "y"
        [flows.two.nodes.y]
        flow = "one"

        [flows.self]
        start = "z"
        [flows.self.nodes.z]
        flow = "self"
        """,
        registry,
    )
    assert found == [
        "[flows.two.nodes.y] flow: a flow cannot contain itself: "
        "flows.one -> flows.two -> flows.one",
        "[flows.self.nodes.z] flow: a flow cannot contain itself: flows.self -> flows.self",
    ]


def test_problems_in_an_unused_or_twice_used_flow_are_reported_once(registry: Registry) -> None:
    found = problems(
        """
        [flow]
        start = "a"
        [flow.nodes.a]
        flow = "used"
        next = "b"
        [flow.nodes.b]
        flow = "used"

        [flows.used]
        start = "x"
        [flows.used.nodes.x]
        use = "nosuch"

        [flows.unused]
        start = "ghost"
        [flows.unused.nodes.x]
        use = "record"
        """,
        registry,
    )
    assert [p.split(":")[0] for p in found] == [
        "[flows.used.nodes.x] use",
        "[flows.unused] start",
    ]


def test_a_plugin_that_failed_to_load_is_mentioned(registry: Registry) -> None:
    broken = Registry(pocketcore.make_plugin_manager())
    broken.failures.append(pocketcore.PluginFailure("acme 1.0", "acme", "ImportError: nope"))
    found = problems('[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "acme_node"', broken)
    assert found == [
        "[flow.nodes.a] use: unknown node 'acme_node' (registered: none; plugin 'acme' "
        "(distribution acme 1.0) failed to load: ImportError: nope)"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[flow]\nstart = \n", "line 2, column 9: invalid TOML: Invalid value"),
        (
            b'[flow]\nstart = "a"\n[flow]\n',
            "line 3, column 6: invalid TOML: Cannot declare ('flow',) twice",
        ),
        (b"\xff\xfe[flow]", "not UTF-8 text: "),
    ],
)
def test_a_file_that_is_not_toml(
    registry: Registry, tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "flow.toml"
    path.write_bytes(content)
    with pytest.raises(FlowFileError) as info:
        load_flow(path, registry=registry)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(expected), info.value.problems
    assert str(info.value).startswith(f"{path}: 1 problem(s)\n  {expected}")


@pytest.mark.parametrize("name", ["missing.toml", "."])
def test_a_file_that_cannot_be_read(registry: Registry, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(FlowFileError, match=r"1 problem\(s\)\n  cannot read the file: ") as info:
        load_flow(path, registry=registry)
    assert info.value.path == str(path)


def test_the_params_example_of_the_docs(registry: Registry) -> None:
    loaded = load(
        """
        [flow]
        start = "translate"
        params = { lang = "en" }
        batch = [{ file = "a.txt" }, { file = "b.txt", model = "tiny" }]

        [flow.nodes.translate]
        use = "record"
        params = { model = "small" }
        next = "check"

        [flow.nodes.check]
        use = "record"
        params = { model = "large", strict = true }
        """,
        registry,
    )
    shared: dict[str, Any] = {}
    pocketcore.run(loaded.flow, shared)
    assert shared["log"] == [
        {"lang": "en", "file": "a.txt", "model": "small"},
        {"lang": "en", "file": "a.txt", "model": "large", "strict": True},
        {"lang": "en", "file": "b.txt", "model": "tiny"},
        {"lang": "en", "file": "b.txt", "model": "tiny", "strict": True},
    ]


def test_loaded_nodes_pickle_and_copy(registry: Registry) -> None:
    # Remote executors send copies of nodes to other processes.
    loaded = load(NESTED.format(executor="asyncio"), registry)
    for original in (loaded.flow, loaded.names["fan"], loaded.names["one"]):
        for clone in (pickle.loads(pickle.dumps(original)), copy.deepcopy(original)):
            assert type(clone) is type(original)
            assert clone.params == original.params
            assert clone.successors.keys() == original.successors.keys()
    clone = pickle.loads(pickle.dumps(loaded.names["one.sync"]))
    clone.set_params({"lang": "en"})  # still fills in its own params
    assert clone.params == {"step": "sync", "lang": "en"}
    shared: dict[str, Any] = {"left": 1, "items": [1]}
    pocketcore.run(pickle.loads(pickle.dumps(loaded.flow)), shared)
    assert [entry["tag"] for entry in shared["log"]] == ["one", "one", "two", "two"]
