"""Problems of a flow file: all reported at once, each at its place; files that cannot be read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import Registry
from pocketcore._front.flowfile import FlowFileError, load_flow
from tests import flowfile_nodes as nodes

from .support import load, problems

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
        "wait, executor, max_concurrency, max_per_second, limiter, on_error, timeout, cache, "
        "cache_ttl; did you mean 'next'?)",
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
            "[config] max_concurency: unknown key (known keys: executor, max_concurrency, "
            "max_per_second, limiter, on_error, timeout, cache, cache_ttl; did you mean "
            "'max_concurrency'?)",
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
            "max_concurrency, max_per_second, limiter, on_error, timeout, cache, cache_ttl, batch, "
            "batch_key, nodes; did you mean 'start'?)",
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
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record"\ntimeout = 5',
            "[flow.nodes.a] timeout: timeout (from the flow file) does nothing for Record: "
            "it applies to the async nodes",
            id="timeout on a blocking exec",
        ),
        pytest.param(
            '[flow]\nstart = "a"\n[flow.nodes.a]\nuse = "record_async"\non_error = "collect"',
            "[flow.nodes.a] on_error: on_error (from the flow file) does nothing for AsyncRecord: "
            "it applies to the items of the parallel batch classes",
            id="on_error on a plain node",
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
