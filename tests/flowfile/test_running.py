"""Loaded flows at run time: params, nesting, batches, retries and settings on every executor."""

from __future__ import annotations

import copy
import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import Registry
from pocketcore._front.flowfile import load_flow
from tests import flowfile_nodes as nodes

from .support import BACKEND, EXECUTORS, FLOWFILES, load, run, write

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
