"""The installed distribution is discovered through its entry points, both ways.

Nothing here registers the example's classes by hand: the registry finds them
in the environment's metadata, as it would for any user who installed the
distribution.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import PluginError, PluginWarning, Registry
from pocketcore_example_nodes.nodes import Uppercase, WordCount

DIST = "pocketcore-example-nodes 0.1.0"


def test_the_distribution_declares_both_entry_points() -> None:
    dist = metadata.distribution("pocketcore-example-nodes")
    assert dist.version == "0.1.0"
    declared = {(ep.group, ep.name, ep.value) for ep in dist.entry_points}
    assert declared == {
        ("pocketcore.nodes", "word_count", "pocketcore_example_nodes.nodes:WordCount"),
        ("pocketcore", "example-nodes", "pocketcore_example_nodes.plugin"),
    }


def test_the_registry_lists_both_nodes_with_their_suppliers() -> None:
    registry = pocketcore.get_registry()
    by_entry_point = registry.nodes["word_count"]
    assert by_entry_point.cls is WordCount
    assert by_entry_point.supplier == f"entry point 'word_count' of {DIST}"
    assert by_entry_point.distribution == DIST
    by_hook = registry.nodes["uppercase"]
    assert by_hook.cls is Uppercase
    assert by_hook.supplier == "plugin 'example-nodes'"
    assert by_hook.distribution == DIST
    assert registry.distributions["example-nodes"] == DIST
    assert registry.failures == []


def test_create_node_by_name_with_params() -> None:
    registry = pocketcore.get_registry()
    node = registry.create_node("word_count", {"top": 1, "target": "counts"})
    assert type(node) is WordCount
    assert node.params == {"top": 1, "target": "counts"}
    shared: dict[str, Any] = {"text": "b a b"}
    pocketcore.run(node, shared)
    assert shared["counts"] == {"total": 3, "distinct": 2, "top": {"b": 2}}


def test_an_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(pocketcore.ConfigError, match="unknown node 'word_cont'") as info:
        pocketcore.get_registry().create_node("word_cont")
    assert "uppercase" in str(info.value)
    assert "word_count" in str(info.value)


def _python(program: str, **env: str) -> str:
    """Run ``program`` in a fresh interpreter of this environment; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        env={"PATH": "", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


LIST_NODES = """
    import json, warnings
    warnings.simplefilter("error")
    import pocketcore
    registry = pocketcore.get_registry()
    print(json.dumps({n: [e.supplier, e.distribution] for n, e in registry.nodes.items()}))
"""


def test_a_fresh_process_discovers_both_from_the_metadata() -> None:
    nodes = json.loads(_python(LIST_NODES))
    assert nodes == {
        "word_count": [f"entry point 'word_count' of {DIST}", DIST],
        "uppercase": ["plugin 'example-nodes'", DIST],
    }


def test_plugin_selection_applies_to_node_plugins() -> None:
    # Selecting the distribution by name loads both of its entry points.
    only = json.loads(_python(LIST_NODES, POCKETCORE_PLUGINS="pocketcore-example-nodes"))
    assert set(only) == {"word_count", "uppercase"}
    # Selecting an entry point by name loads just that one.
    one = json.loads(_python(LIST_NODES, POCKETCORE_PLUGINS="word_count"))
    assert set(one) == {"word_count"}
    assert json.loads(_python(LIST_NODES, POCKETCORE_DISABLE_PLUGIN_AUTOLOAD="1")) == {}


class Dupe:
    """A plugin that registers names the example already uses."""

    def __init__(self, *names: str) -> None:
        self.names = names

    @pocketcore.hookimpl
    def pocketcore_register_nodes(self, register: Any) -> None:
        for name in self.names:
            register(name, WordCount)


def test_a_hook_reusing_an_entry_point_name_names_both_suppliers() -> None:
    registry = Registry.from_environment()
    registry.register(Dupe("word_count"), name="dupe")
    with pytest.raises(PluginError) as info:
        _ = registry.nodes
    assert str(info.value) == (
        f"node 'word_count' is registered twice: by entry point 'word_count' of {DIST} "
        "and by plugin 'dupe'"
    )


def test_two_hooks_registering_one_name_name_both_plugins() -> None:
    registry = Registry.from_environment()
    registry.register(Dupe("uppercase"), name="dupe")
    with pytest.raises(PluginError, match="node 'uppercase' is registered twice: by ") as info:
        _ = registry.nodes
    # Which of the two is named first is the plugin manager's calling order.
    assert "plugin 'example-nodes'" in str(info.value)
    assert "plugin 'dupe'" in str(info.value)


def _fake_distribution(folder: Path, name: str, entry_points: str) -> None:
    """Metadata of an installed distribution with no code: enough for importlib.metadata."""
    info = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_a_broken_entry_point_is_reported_and_the_others_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "pocketcore-broken-nodes",
        """
        [pocketcore.nodes]
        broken = no_such_module:Thing
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.from_environment()
    with pytest.warns(PluginWarning) as caught:
        nodes = registry.nodes
    message = (
        "node 'broken' (distribution pocketcore-broken-nodes 0.1) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_module'"
    )
    assert [str(w.message) for w in caught] == [message]
    assert [str(f) for f in registry.failures] == [message]
    assert set(nodes) == {"word_count", "uppercase"}
    # A flow naming the broken node is told why it is missing.
    with pytest.raises(pocketcore.ConfigError, match="unknown node 'broken'") as info:
        registry.create_node("broken")
    assert message in str(info.value)


def test_a_second_distribution_with_the_same_entry_point_name_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "pocketcore-other-nodes",
        """
        [pocketcore.nodes]
        word_count = pocketcore_example_nodes.nodes:WordCount
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.from_environment()
    with pytest.raises(PluginError, match="node 'word_count' is registered twice") as info:
        _ = registry.nodes
    assert f"of {DIST}" in str(info.value)
    assert "of pocketcore-other-nodes 0.1" in str(info.value)
