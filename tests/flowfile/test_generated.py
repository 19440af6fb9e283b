"""Generated flow files: a valid one loads as the graph it describes; one mistake, at its place."""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketcore import AsyncNode, BaseNode, ConfigError, Flow, Registry
from pocketcore._front.flowfile import FlowFileError, LoadedFlow, load_flow
from pocketcore._runtime.settings import SETTINGS
from tests import flowfile_nodes as nodes

from .support import EXECUTORS, place

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
# Declared in the pocketcore.toml of the working directory (see the fixture below).
LIMITERS = ["llm", "db"]
RUN_SETTINGS = ("executor", "max_concurrency", "max_per_second", "limiter", "on_error", "timeout")
run_settings = {
    "executor": st.sampled_from(EXECUTORS),
    "max_concurrency": st.integers(1, 8),
    "max_per_second": st.one_of(
        st.integers(1, 1000), st.floats(0.01, 1e6, allow_nan=False, allow_infinity=False)
    ),
    "limiter": st.sampled_from(LIMITERS),
    "on_error": st.sampled_from(["raise", "collect"]),
    "timeout": st.floats(0.01, 1e3, allow_nan=False, allow_infinity=False),
}


def node_settings(cls: type[BaseNode]) -> st.SearchStrategy[dict[str, Any]]:
    """The settings of a node of ``cls``: those that apply to it (the others are refused)."""
    applies = {
        key: value
        for key, value in run_settings.items()
        if SETTINGS[key].applies is None or SETTINGS[key].applies(cls)
    }
    return st.fixed_dictionaries(
        {},
        optional={
            "max_retries": st.integers(1, 5),
            "wait": st.one_of(st.integers(0, 2), st.floats(0, 2)),
            **applies,
        },
    )


flow_settings = st.fixed_dictionaries({}, optional=run_settings)


@pytest.fixture(autouse=True)
def _declared_limiters(tmp_path: Path) -> None:
    """Declare the limiters of :data:`LIMITERS` in the working directory (``tmp_path``)."""
    (tmp_path / "pocketcore.toml").write_text(
        "".join(f"[limiters.{name}]\nmax_concurrency = 4\n" for name in LIMITERS)
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
            spec.update(draw(node_settings(USES[spec["use"]])))
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
    for key in RUN_SETTINGS:
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
            for key in RUN_SETTINGS:
                assert getattr(node, key) == spec.get(key)
        else:
            # The node's table adds params and settings to those of the [flows] table.
            use = copy.deepcopy(data["flows"][spec["flow"]])
            use["params"] = {**use.get("params", {}), **spec.get("params", {})}
            use.update({k: spec[k] for k in RUN_SETTINGS if k in spec})
            check_flow(data, use, node, loaded, f"{prefix}{name}.", seen)


@settings(max_examples=100, deadline=None)
@given(flow_files())
def test_a_loaded_file_is_the_graph_it_describes(registry: Registry, data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "flow.toml")
        path.write_text(tomli_w.dumps(data))
        loaded = load_flow(path, registry=registry)
    assert loaded.path == str(path)
    config = data.get("config", {})
    for key in RUN_SETTINGS:
        assert getattr(loaded, key) == config.get(key)
    assert loaded.config == config
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
    "max_per_second": [0, -1, "5", True, math.inf, math.nan],
    "limiter": ["lmm", "", 3],
    "on_error": ["ignore", "", True],
    "timeout": [0, -2, "5", True, math.nan],
}


@dataclass(frozen=True)
class Site:
    """Where a mutation is made: one node of one flow table of a generated file."""

    data: dict[str, Any]
    flow_path: tuple[str, ...]
    table: dict[str, Any]
    name: str
    spec: dict[str, Any]  # the node's table, as it was drawn

    @property
    def node_place(self) -> str:
        return place(*self.flow_path, "nodes", self.name)


# Each mutation changes the file at a site; it returns the place and the key that must be named.
Mutation = Callable[[st.DrawFn, Site], tuple[str, str]]


def unknown_use(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    site.table["nodes"][site.name] = {"use": draw(st.sampled_from(["recrod", "nosuch", "x.y:Z"]))}
    return site.node_place, "use"


def not_a_node(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    ref = draw(st.sampled_from(["not_a_class", "NotANode", "NeedsArgs"]))
    site.table["nodes"][site.name] = {"use": f"tests.flowfile_nodes:{ref}"}
    return site.node_place, "use"


def unknown_key(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    site.spec[draw(st.sampled_from(["nxet", "param", "retries", "flows"]))] = 1
    return site.node_place, ""


def bad_setting(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    keys = list(RUN_SETTINGS)
    if "use" in site.spec:
        keys += ["max_retries", "wait"]
    key = draw(st.sampled_from(keys))
    site.spec[key] = draw(st.sampled_from(BAD_SETTINGS[key]))
    return site.node_place, key


def missing_target(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    action = draw(st.sampled_from(ACTIONS))
    site.spec["next"] = {action: "ghost"}
    return site.node_place, "next." + (json.dumps(action) if " " in action else action)


def missing_start(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    site.table["start"] = "ghost"
    return place(*site.flow_path), "start"


def missing_flow(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    site.table["nodes"][site.name] = {"flow": "nowhere"}
    return site.node_place, "flow"


def self_containment(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    if site.flow_path[0] == "flow":  # [flow] cannot be named; make a [flows] table contain itself
        loop = {"start": "x", "nodes": {"x": {"flow": "loop"}}}
        site.data.setdefault("flows", {})["loop"] = loop
        return place("flows", "loop", "nodes", "x"), "flow"
    site.table["nodes"][site.name] = {"flow": site.flow_path[1]}
    return site.node_place, "flow"


def batch_on_a_plain_flow(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    site.table["type"] = "AsyncFlow"
    site.table["batch"] = [{}]
    return place(*site.flow_path), "batch"


def params_not_a_table(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    site.spec["params"] = draw(st.sampled_from([3, "x", [1]]))
    return site.node_place, "params"


def unknown_top_level_key(draw: st.DrawFn, site: Site) -> tuple[str, str]:
    site.data["flwo"] = {}
    return "(top level)", "flwo"


MUTATIONS: dict[str, Mutation] = {
    "unknown use": unknown_use,
    "not a node": not_a_node,
    "unknown key": unknown_key,
    "bad setting": bad_setting,
    "missing target": missing_target,
    "missing start": missing_start,
    "missing flow": missing_flow,
    "self containment": self_containment,
    "batch on a plain flow": batch_on_a_plain_flow,
    "params not a table": params_not_a_table,
    "unknown top-level key": unknown_top_level_key,
}


@st.composite
def broken_files(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    """A valid file changed in one place; returns it, the place and the key that must be named."""
    data = copy.deepcopy(draw(flow_files()))
    flow_path = draw(st.sampled_from(flow_paths(data)))
    table = table_at(data, flow_path)
    name = draw(st.sampled_from(sorted(table["nodes"])))
    mutate = MUTATIONS[draw(st.sampled_from(list(MUTATIONS)))]
    where, key = mutate(draw, Site(data, flow_path, table, name, table["nodes"][name]))
    return data, where, key


@settings(max_examples=100, deadline=None)
@given(broken_files())
def test_one_mistake_is_reported_at_its_place(
    registry: Registry, broken: tuple[dict[str, Any], str, str]
) -> None:
    data, where, key = broken
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "flow.toml")
        path.write_text(tomli_w.dumps(data))
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
