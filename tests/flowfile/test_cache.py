"""The ``cache`` key of flow files: checked at its place, set like ``executor``, and applied.

The store is ``testfile`` (``tests/filestore.py``), registered both in the
flow-file tests' registry (where the file's store names are checked) and in
the process's (where a run opens stores).
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import Registry
from tests import filestore

from .support import EXECUTORS, load, problems

CALLS: Counter[str] = Counter()


class Square(pocketcore.AsyncParallelBatchNode):
    """Squares ``shared["items"]`` into ``shared["out"]``, counting each exec in ``CALLS``."""

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["items"])

    async def exec_async(self, item: int) -> int:
        CALLS[f"square {item}"] += 1
        return item * item

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


class Total(pocketcore.AsyncNode):
    """Adds up ``shared["out"]`` into ``shared["total"]``, counting each exec in ``CALLS``."""

    cache = True  # a plain node is cached only when it opts in

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["out"])

    async def exec_async(self, out: list[int]) -> int:
        CALLS["total"] += 1
        return sum(out)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["total"] = exec_res


class Count(pocketcore.AsyncNode):
    """Counts ``shared["out"]`` into ``shared["count"]``; not cached unless it opts in."""

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(shared["out"])

    async def exec_async(self, out: list[int]) -> int:
        CALLS["count"] += 1
        return len(out)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["count"] = exec_res


HERE = "tests.flowfile.test_cache"


def two_nodes(
    *,
    config: str = "",
    flow: str = "",
    sub: str = "",
    inner: str = "",
    square: str = "",
    total: str = "",
) -> str:
    """``square`` then ``total`` in ``[flows.inner]``, used by node ``inner`` of the top flow.

    Each keyword is a line for that table: ``sub`` for the use of the nested
    flow (``[flow.nodes.inner]``), ``inner`` for its own ``[flows.inner]``.
    """
    return (
        f"[config]\n{config}\n"
        f"[flow]\nstart = 'inner'\ntype = 'AsyncFlow'\n{flow}\n"
        f"[flow.nodes.inner]\nflow = 'inner'\n{sub}\n"
        f"[flows.inner]\nstart = 'square'\ntype = 'AsyncFlow'\n{inner}\n"
        f"[flows.inner.nodes.square]\nuse = '{HERE}:Square'\nnext = 'total'\n{square}\n"
        f"[flows.inner.nodes.total]\nuse = '{HERE}:Total'\n{total}\n"
    )


@pytest.fixture(autouse=True)
def stores(registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test store registered where files are checked and where runs open stores.

    The built-in stores too, where files are checked: that registry holds no
    more than a test registers in it, and a real one always has them.
    """
    monkeypatch.chdir(tmp_path)
    CALLS.clear()
    plugins = [(reg, filestore.FileStorePlugin()) for reg in (registry, pocketcore.get_registry())]
    plugins.append((registry, importlib.import_module("pocketcore._stores")))
    for reg, plugin in plugins:
        reg.register(plugin, name=f"test-stores-{id(plugin)}")
    try:
        yield
    finally:
        for reg, plugin in plugins:
            reg.unregister(plugin)
        pocketcore.close_stores()


# --- bad values, each at its place -------------------------------------------------------

EXPECTED = "expected a store specification (a file path, 'sqlite:///PATH', 'NAME:...') or false"
OPT_IN = (
    "true opts a node in (cache = true in its [...nodes.NAME] table), and a flow's or the "
    "run's cache must name a store"
)
BAD = [
    ("cache = true", f"cache: {EXPECTED}, got True (bool): {OPT_IN}"),
    ("cache = 3", f"cache: {EXPECTED}, got 3 (int)"),
    ("cache = ''", f"cache: {EXPECTED}, got '' (str)"),
    ("cache = ' '", f"cache: {EXPECTED}, got ' ' (str)"),
    ("cache = { path = 'x.db' }", f"cache: {EXPECTED}, got {{'path': 'x.db'}} (dict)"),
    (
        "cache = 'testfiel:x'",
        "cache: unknown cache store 'testfiel' (registered stores: {stores}; "
        "a path without 'NAME:' is an SQLite file); did you mean 'testfile'?",
    ),
]
# Where a setting may be given: the table, and the keyword of two_nodes() that puts it there.
PLACES = {
    "node": ("[flows.inner.nodes.square]", "square"),
    "nested flow": ("[flows.inner]", "inner"),
    "flow": ("[flow]", "flow"),
    "use of a flow": ("[flow.nodes.inner]", "sub"),
    "config": ("[config]", "config"),
}


def placed(where: str, line: str) -> str:
    return two_nodes(**{PLACES[where][1]: line})


@pytest.mark.parametrize(("line", "message"), BAD, ids=[line for line, _ in BAD])
@pytest.mark.parametrize("where", list(PLACES))
def test_a_bad_value_is_reported_at_its_place(
    registry: Registry, where: str, line: str, message: str
) -> None:
    message = message.replace("{stores}", ", ".join(sorted(registry.stores)))
    if where == "node" and line == "cache = true":  # a node's opt-in: not a problem
        assert load(placed(where, line), registry).names["inner.square"].cache is True
    else:
        assert problems(placed(where, line), registry) == [f"{PLACES[where][0]} {message}"]


def test_loading_opens_no_store(registry: Registry, tmp_path: Path) -> None:
    # Checked by name only: the store is opened by the run, before any item runs.
    (tmp_path / "folder").mkdir()
    loaded = load(two_nodes(config="cache = 'testfile:folder'", square="cache = 'x.db'"), registry)
    assert loaded.cache == "testfile:folder"
    assert not (tmp_path / "x.db").exists()
    with pytest.raises(pocketcore.ConfigError, match="is a directory"):
        pocketcore.run(loaded.flow, {"items": [1]}, **loaded.config)
    assert CALLS == {}


# --- good values are set, and applied ----------------------------------------------------


def test_good_values_are_set_as_attributes_and_config(registry: Registry) -> None:
    loaded = load(
        two_nodes(
            config="cache = 'testfile:run'",
            flow="cache = 'memory'",
            sub="cache = 'testfile:sub'",
            square="cache = false",
            total="cache = 'sqlite:///t.db'",
        ),
        registry,
    )
    names = loaded.names
    assert (names["inner"].cache, names["inner.square"].cache) == ("testfile:sub", False)
    assert (names["inner.total"].cache, loaded.flow.cache) == ("sqlite:///t.db", "memory")
    assert loaded.cache == "testfile:run"
    assert loaded.config == {"cache": "testfile:run"}
    off = load(two_nodes(config="cache = false"), registry)
    assert (off.cache, off.config) == (False, {"cache": False})
    assert load(two_nodes(config="cache = 'off'"), registry).config == {"cache": "off"}
    assert load(two_nodes(), registry).cache is None


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_run_level_cache_from_config_and_a_node_that_opts_out(
    registry: Registry, tmp_path: Path, executor: str
) -> None:
    loaded = load(two_nodes(config="cache = 'testfile:run'", total="cache = false"), registry)
    for _ in range(3):
        shared: dict[str, Any] = {"items": [1, 2, 3]}
        pocketcore.run(loaded.flow, shared, **{**loaded.config, "executor": executor})
        assert (shared["out"], shared["total"]) == ([1, 4, 9], 14)
    assert CALLS == {"square 1": 1, "square 2": 1, "square 3": 1, "total": 3}
    assert filestore.entries(tmp_path / "run") == {
        f"{HERE}.Square": 3,
        f"{HERE}.Square [whole batches]": 1,
    }


@pytest.mark.parametrize("opted", [True, False])
def test_a_plain_node_opts_in_with_cache_true(registry: Registry, opted: bool) -> None:
    count = "cache = true" if opted else ""
    text = (
        "[config]\ncache = 'testfile:run'\n"
        "[flow]\nstart = 'square'\ntype = 'AsyncFlow'\n"
        f"[flow.nodes.square]\nuse = '{HERE}:Square'\nnext = 'count'\n"
        f"[flow.nodes.count]\nuse = '{HERE}:Count'\n{count}\n"
    )
    loaded = load(text, registry)
    for _ in range(3):
        shared: dict[str, Any] = {"items": [1, 2]}
        pocketcore.run(loaded.flow, shared, **loaded.config)
        assert shared["count"] == 2
    assert CALLS["count"] == (1 if opted else 3)


def test_a_flows_cache_applies_to_the_nodes_inside_it(registry: Registry, tmp_path: Path) -> None:
    # The use of [flows.inner] names a store; the run names none.
    loaded = load(two_nodes(sub="cache = 'testfile:sub'"), registry)
    for _ in range(2):
        pocketcore.run(loaded.flow, {"items": [2, 3]})
    assert CALLS == {"square 2": 1, "square 3": 1, "total": 1}
    assert filestore.entries(tmp_path / "sub") == {
        f"{HERE}.Square": 2,
        f"{HERE}.Square [whole batches]": 1,
        f"{HERE}.Total": 1,
    }
    # A node's own store wins over its flow's; false on a flow turns the run's off inside it.
    CALLS.clear()
    loaded = load(
        two_nodes(config="cache = 'testfile:run'", flow="cache = false", total="cache = 'memory'"),
        registry,
    )
    for _ in range(2):
        pocketcore.run(loaded.flow, {"items": [2, 3]}, **loaded.config)
    assert CALLS == {"square 2": 2, "square 3": 2, "total": 1}
    assert not (tmp_path / "run").exists()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    opted_out=st.sets(st.sampled_from(["square", "total"])),
    runs=st.integers(min_value=1, max_value=3),
)
def test_each_node_not_opted_out_computes_each_input_once(
    registry: Registry, tmp_path: Path, opted_out: set[str], runs: int
) -> None:
    CALLS.clear()
    (tmp_path / "run").unlink(missing_ok=True)
    lines = {name: "cache = false" if name in opted_out else "" for name in ("square", "total")}
    loaded = load(two_nodes(config="cache = 'testfile:run'", **lines), registry)
    for _ in range(runs):
        pocketcore.run(loaded.flow, {"items": [1, 2]}, **loaded.config)
    once_or_every = {name: runs if name in opted_out else 1 for name in ("square", "total")}
    expected = {
        "square 1": once_or_every["square"],
        "square 2": once_or_every["square"],
        "total": once_or_every["total"],
    }
    assert dict(CALLS) == expected
