"""The ``pocketcore`` command: in-process through ``main``, and end to end as a real script."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from rich.console import Console

import pocketcore
from examples.image_filter import flow as image_filter
from examples.parallel_summaries import flow as summaries
from pocketcore import PluginFailure, Registry
from pocketcore import _cli as cli
from pocketcore._cli import PROGRESS_PLUGIN, ProgressObserver, main
from pocketcore._front.graph import to_mermaid

REPO = Path(__file__).resolve().parent.parent
EXECUTORS = ["sequential", "asyncio", "trio"]

# Written to tmp_path and run as `flows.py:OBJECT`.
FLOWS = """
import anyio
import sniffio
import pocketcore


class Greet(pocketcore.Node):
    def post(self, shared, prep_res, exec_res):
        shared["greeting"] = "hello " + str(self.params.get("who", "world"))
        shared["params"] = dict(self.params)
        return "greeted"


class Double(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return shared.get("items", [1, 2, 3])

    async def exec_async(self, item):
        self.params.setdefault("live", [0, 0])
        live = self.params["live"]
        live[0] += 1
        live[1] = max(live)
        await anyio.sleep(0.01)
        live[0] -= 1
        return item * 2

    async def post_async(self, shared, prep_res, exec_res):
        shared["out"] = exec_res
        shared["backend"] = sniffio.current_async_library()
        shared["most_in_flight"] = self.params["live"][1] if exec_res else 0
        return "doubled"


class Boom(pocketcore.Node):
    def exec(self, prep_res):
        raise ValueError("boom")


class Odd(pocketcore.Node):
    def post(self, shared, prep_res, exec_res):
        shared["type"] = object
        shared[(1, 2)] = {3}
        shared["nan"] = float("nan")
        shared["loop"] = loop = []
        loop.append(loop)
        shared["bad"] = BadRepr()
        shared["ok"] = ["é", 1.5, None, True]


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


class UnknownExecutor(pocketcore.AsyncParallelBatchNode):
    executor = "nope"


greet = Greet()
double = pocketcore.AsyncFlow(start=Double())
boom = Boom()
odd = Odd()
misconfigured = pocketcore.AsyncFlow(start=UnknownExecutor())
number = 3
holder = type("Holder", (), {"flow": double})


def build():
    return pocketcore.AsyncFlow(start=Double())


def needs_arguments(size):
    return Greet()


def not_a_node():
    return 42


def fails():
    raise KeyError("no flow today")
"""


@pytest.fixture(autouse=True)
def _restore_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Undo what loading targets does to sys.path and sys.modules.

    Modules of the test's files, and the repository's files loaded by path
    (as top-level modules named after the file, ``flow``), are dropped so the
    next test loads its own. Libraries imported meanwhile (trio, rich) stay.
    """
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        where = Path(getattr(sys.modules[name], "__file__", None) or "/")
        if where.is_relative_to(tmp_path) or ("." not in name and where.is_relative_to(REPO)):
            del sys.modules[name]


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    path = tmp_path / "flows.py"
    path.write_text(FLOWS)
    return path


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = call(capsys, "run", *args, "--output", "json")
    assert (code, err) == (0, "")
    result: dict[str, Any] = json.loads(out)
    return result


# --- help and usage ---------------------------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--help")
    assert code == 0
    for command in ("run", "graph", "plugins", "executors", "nodes", "demo"):
        assert f"\n    {command} " in out


@pytest.mark.parametrize("command", ["run", "graph", "plugins", "executors", "nodes", "demo"])
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, err = call(capsys, command, "--help")
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: pocketcore {command}")


def test_run_help_documents_targets_and_set(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = call(capsys, "run", "--help")
    for option in ("--shared", "--executor", "--max-concurrency", "--set", "--output", "--quiet"):
        assert option in out
    assert "package.module:object" in out
    assert "parsed as JSON" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert call(capsys, "--version") == (0, "pocketcore 0.1.0\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: COMMAND (see 'pocketcore --help')"),
        (["fly"], "argument COMMAND: invalid choice: 'fly'"),
        (["run"], "the following arguments are required: TARGET (see 'pocketcore run --help')"),
        (["run", "x.py:y", "--bogus"], "unrecognized arguments: --bogus (see 'pocketcore run"),
        (["run", "x.py:y", "--output", "xml"], "argument --output: invalid choice: 'xml'"),
        (["graph", "x.py:y", "--format", "dot"], "argument --format: invalid choice: 'dot'"),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = call(capsys, *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"pocketcore: error: {message}")
    assert err.count("\n") == 1


# --- run: targets -------------------------------------------------------------------------


def test_run_prints_the_shared_store_and_the_action(
    capsys: pytest.CaptureFixture[str], flows: Path
) -> None:
    code, out, err = call(capsys, "run", f"{flows}:greet")
    assert (code, err) == (0, "")
    shared, action = out.split("\n\naction: ")
    assert shared.startswith("shared:\n")
    assert json.loads(shared.removeprefix("shared:\n")) == {
        "greeting": "hello world",
        "params": {},
    }
    assert action == '"greeted"\n'


def test_json_output_is_one_object(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    result = run_json(capsys, f"{flows}:double", "--shared", '{"items": [1, 5]}')
    assert result["action"] == "doubled"
    assert result["shared"]["out"] == [2, 10]


def test_a_relative_file_target_and_its_neighbours(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The file's folder comes first on sys.path, as with `python file.py`.
    sub = tmp_path / "proj"
    sub.mkdir()
    (sub / "helper.py").write_text("WHO = 'neighbour'\n")
    (sub / "main.py").write_text(
        "import pocketcore, helper\n"
        "class N(pocketcore.Node):\n"
        "    def post(self, shared, p, e):\n"
        "        shared['who'] = helper.WHO\n"
        "node = N()\n"
    )
    assert run_json(capsys, "proj/main.py:node")["shared"] == {"who": "neighbour"}


def test_module_targets_are_found_from_the_working_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(FLOWS)
    assert str(tmp_path) not in sys.path  # the command puts it there
    result = run_json(capsys, "mypkg.flows:double")
    assert result["shared"]["out"] == [2, 4, 6]


def test_dotted_objects_and_factories(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    assert run_json(capsys, f"{flows}:holder.flow")["shared"]["out"] == [2, 4, 6]
    assert run_json(capsys, f"{flows}:build")["shared"]["out"] == [2, 4, 6]
    # A class is a callable without arguments too.
    assert run_json(capsys, f"{flows}:Greet")["action"] == "greeted"


def test_the_examples_run_as_targets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMMARY_DELAY", "0")  # read when the file is imported
    target = f"{REPO}/examples/parallel_summaries/flow.py:build_flow"
    assert len(run_json(capsys, target)["shared"]["summaries"]) >= 5
    shared = json.dumps({"filters": ["invert"], "output_dir": str(tmp_path), "delay": 0})
    result = run_json(capsys, f"{REPO}/examples/image_filter/flow.py:flow", "--shared", shared)
    outputs = result["shared"]["outputs"]
    assert outputs == sorted(str(p) for p in tmp_path.glob("*-invert.ppm"))
    assert len(outputs) >= 3


# --- run: options ---------------------------------------------------------------------------


def test_shared_from_a_file_and_from_stdin(
    capsys: pytest.CaptureFixture[str], flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("shared.json").write_text('{"items": [4]}')
    assert run_json(capsys, f"{flows}:double", "--shared", "@shared.json")["shared"]["out"] == [8]
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"items": [5]}'))
    assert run_json(capsys, f"{flows}:double", "--shared", "@-")["shared"]["out"] == [10]


def test_set_values_are_json_when_they_parse(
    capsys: pytest.CaptureFixture[str], flows: Path
) -> None:
    args = [
        *("--set", "n=3", "--set", "flag=true", "--set", 'tags=["a"]', "--set", "who=you"),
        *("--set", 'quoted="3"', "--set", "empty=", "--set", "eq=a=b", "--set", "nan=NaN"),
        *("--set", "n=4"),  # the last one wins
    ]
    shared = run_json(capsys, f"{flows}:greet", *args)["shared"]
    assert shared["params"] == {
        "n": 4,
        "flag": True,
        "tags": ["a"],
        "who": "you",
        "quoted": "3",
        "empty": "",
        "eq": "a=b",
        "nan": "NaN",
    }
    assert shared["greeting"] == "hello you"


def test_set_reaches_the_nodes_of_a_flow(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    # The flow's params are what it hands each node it runs.
    tmp = flows.parent / "chain.py"
    tmp.write_text(
        "import pocketcore\nfrom flows import Greet\nflow = pocketcore.Flow(start=Greet())\n"
    )
    assert run_json(capsys, f"{tmp}:flow", "--set", "who=flow")["shared"]["greeting"] == (
        "hello flow"
    )


@pytest.mark.parametrize("executor", EXECUTORS)
def test_executor_option(capsys: pytest.CaptureFixture[str], flows: Path, executor: str) -> None:
    backend = "trio" if executor == "trio" else "asyncio"
    result = run_json(capsys, f"{flows}:double", "--executor", executor)
    assert result["shared"]["backend"] == backend


def test_max_concurrency_option(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    items = '{"items": [1, 2, 3, 4, 5, 6, 7]}'
    limited = run_json(capsys, f"{flows}:build", "--shared", items, "--max-concurrency", "2")
    assert limited["shared"]["most_in_flight"] == 2
    free = run_json(capsys, f"{flows}:build", "--shared", items)
    assert free["shared"]["most_in_flight"] == 7


def test_values_json_cannot_hold_are_printed_with_repr(
    capsys: pytest.CaptureFixture[str], flows: Path
) -> None:
    for output in ("json", "text"):
        code, out, err = call(capsys, "run", f"{flows}:odd", "--output", output)
        assert (code, err) == (0, "")
        assert "é" in out
    shared = json.loads(out.split("\n\naction: ")[0].removeprefix("shared:\n"))
    assert shared == {
        "type": "<class 'object'>",
        "(1, 2)": "{3}",
        "nan": "nan",
        "loop": ["[[...]]"],
        "bad": "<BadRepr object (repr failed)>",
        "ok": ["é", 1.5, None, True],
    }


def test_unencodable_output_is_escaped(
    capsys: pytest.CaptureFixture[str], flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="ascii"))
    assert main(["run", f"{flows}:odd"]) == 0
    sys.stdout.flush()
    assert "\\xe9" in raw.getvalue().decode("ascii")


# --- run: errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py:flow"], "no such file: 'missing.py'"),
        (["missing.toml"], "no such flow file: 'missing.toml'"),
        (["{flows}"], "TARGET '{flows}' names a file but no object in it"),
        (["nonsense"], "TARGET must be a flow file (*.toml), path/to/file.py:object"),
        (["no_such_module:flow"], "cannot import module 'no_such_module': ModuleNotFoundError"),
        (["{flows}:nothing"], "'{flows}' has no attribute 'nothing'"),
        (["{flows}:number"], "'{flows}:number' is not a node or flow (it is of type int)"),
        (["{flows}:needs_arguments"], "'{flows}:needs_arguments' needs arguments"),
        (["{flows}:not_a_node"], "returned an object of type int, not a node or flow"),
        (["{flows}:greet", "--shared", "{x"], "--shared is not valid JSON: Expecting property"),
        (["{flows}:greet", "--shared", "[1]"], "--shared must be a JSON object, got list"),
        (["{flows}:greet", "--shared", "@nope.json"], "cannot read --shared file 'nope.json'"),
        (["{flows}:greet", "--set", "who"], "--set needs KEY=VALUE, got 'who'"),
        (["{flows}:greet", "--set", "=1"], "--set needs KEY=VALUE, got '=1'"),
        (
            ["{flows}:greet", "--executor", "nope"],
            # (the list goes on with whatever else is installed)
            "unknown executor 'nope' (from --executor); installed executors: asyncio, ",
        ),
        (["{flows}:greet", "--max-concurrency", "0"], "argument --max-concurrency: must be"),
        (["{flows}:greet", "--max-concurrency", "x"], "argument --max-concurrency: must be"),
        # A ConfigError from the kernel, found before the flow runs.
        (["{flows}:misconfigured"], "unknown executor 'nope' (from attribute executor of"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], flows: Path, args: list[str], message: str
) -> None:
    args = [a.replace("{flows}", str(flows)) for a in args]
    code, out, err = call(capsys, "run", *args)
    assert (code, out) == (2, "")
    assert err.startswith("pocketcore: error: ")
    assert message.replace("{flows}", str(flows)) in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_a_module_that_fails_to_import_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    Path("broken.py").write_text("import pocketcore\nraise RuntimeError('half written')\n")
    Path("syntax.py").write_text("def (:\n")
    code, _, err = call(capsys, "run", "broken.py:flow")
    assert (code, err) == (
        2,
        "pocketcore: error: cannot import 'broken.py': RuntimeError: half written\n",
    )
    code, _, err = call(capsys, "run", "syntax.py:flow")
    assert code == 2
    assert err.startswith("pocketcore: error: cannot import 'syntax.py': ")
    assert err.count("\n") == 1


def test_a_failing_flow_is_status_1_with_type_and_message(
    capsys: pytest.CaptureFixture[str], flows: Path
) -> None:
    assert call(capsys, "run", f"{flows}:boom") == (1, "", "ValueError: boom\n")
    # A factory that raises is the program failing too.
    assert call(capsys, "run", f"{flows}:fails") == (1, "", "KeyError: 'no flow today'\n")


def test_traceback_option_shows_the_flow_frames(
    capsys: pytest.CaptureFixture[str], flows: Path
) -> None:
    code, out, err = call(capsys, "run", f"{flows}:boom", "--traceback")
    assert (code, out) == (1, "")
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith("ValueError: boom\n")
    assert 'raise ValueError("boom")' in err
    assert "_cli.py" not in err  # the command's own frames are left out


def test_parallel_failures_keep_their_notes(capsys: pytest.CaptureFixture[str]) -> None:
    Path("fail.py").write_text(
        textwrap.dedent(
            """
            import anyio, pocketcore

            class Fail(pocketcore.AsyncParallelBatchNode):
                async def prep_async(self, shared):
                    return [1, 2]

                async def exec_async(self, item):
                    raise ValueError(item)

            flow = pocketcore.AsyncFlow(start=Fail())
            """
        )
    )
    code, _, err = call(capsys, "run", "fail.py:flow", "--executor", "asyncio")
    assert code == 1
    assert err.startswith("ValueError: 1\n")


def test_interrupted(
    capsys: pytest.CaptureFixture[str], flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupt)
    assert call(capsys, "run", f"{flows}:greet") == (130, "", "pocketcore: interrupted\n")


# --- flow files ----------------------------------------------------------------------------

NODES = """
import sniffio
import pocketcore

class Note(pocketcore.AsyncNode):
    async def post_async(self, shared, prep_res, exec_res):
        shared.setdefault("notes", []).append(
            {"who": self.params.get("who"), "backend": sniffio.current_async_library()}
        )
"""

FLOW_FILE = """
[config]
executor = "trio"

[flow]
type = "AsyncFlow"
start = "first"

[flow.nodes.first]
use = "cli_nodes:Note"
next = "second"

[flow.nodes.second]
use = "cli_nodes:Note"
params = { who = "second" }
"""


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    (tmp_path / "cli_nodes.py").write_text(NODES)
    path = tmp_path / "flow.toml"
    path.write_text(FLOW_FILE)
    return path


def test_flow_files_run_with_their_config(
    capsys: pytest.CaptureFixture[str], flow_file: Path
) -> None:
    notes = run_json(capsys, "flow.toml")["shared"]["notes"]
    assert notes == [{"who": None, "backend": "trio"}, {"who": "second", "backend": "trio"}]
    # --set gives the top-level flow params, which it hands to its nodes.
    notes = run_json(capsys, "flow.toml", "--set", "who=cli")["shared"]["notes"]
    assert notes[0] == {"who": "cli", "backend": "trio"}
    notes = run_json(capsys, "flow.toml", "--executor", "sequential")["shared"]["notes"]
    assert {n["backend"] for n in notes} == {"asyncio"}


def test_flow_file_problems_are_listed_one_per_line(
    capsys: pytest.CaptureFixture[str], flow_file: Path
) -> None:
    flow_file.write_text(
        FLOW_FILE.replace('"cli_nodes:Note"\nnext', '"no_such_node"\nnext').replace(
            'start = "first"', 'start = "zeroth"'
        )
    )
    code, out, err = call(capsys, "run", "flow.toml")
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0].startswith("pocketcore: error: flow.toml: ")
    assert lines[0].endswith("problem(s)")
    assert len(lines) == 1 + int(lines[0].split(": ")[-1].split()[0]) >= 3
    assert all(line.startswith("  [") for line in lines[1:])
    assert "no_such_node" in err
    assert "zeroth" in err


def test_flow_file_syntax_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    Path("bad.toml").write_text("[flow\n")
    code, _, err = call(capsys, "run", "bad.toml")
    assert code == 2
    assert err.startswith("pocketcore: error: bad.toml: 1 problem(s)\n  ")
    assert err.count("\n") == 2


def test_graph_of_a_flow_file_names_its_nodes(
    capsys: pytest.CaptureFixture[str], flow_file: Path
) -> None:
    code, out, err = call(capsys, "graph", "flow.toml")
    assert (code, err) == (0, "")
    assert '["first: Note"]' in out
    assert '["second: Note"]' in out


# --- graph -----------------------------------------------------------------------------------


def test_graph_prints_mermaid(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    code, out, err = call(capsys, "graph", f"{flows}:double")
    assert (code, err) == (0, "")
    module = sys.modules["flows"]
    assert out == to_mermaid(module.double)
    assert out.startswith("flowchart TD\n")
    assert "Double [parallel batch]" in out


def test_graph_errors_are_bad_input(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    code, out, err = call(capsys, "graph", f"{flows}:number")
    assert (code, out) == (2, "")
    assert err.startswith("pocketcore: error: ")


# --- listings --------------------------------------------------------------------------------


def test_executors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "executors")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["name", "backend", "plugin", "distribution"]
    # Other executor plugins may be installed too: look at the three of ours.
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["asyncio"] == ["asyncio", "asyncio", "asyncio", "pocketcore-asyncio", "0.1.0"]
    assert rows["sequential"][:2] == ["sequential", "any"]
    assert rows["trio"][:2] == ["trio", "trio"]
    code, out, _ = call(capsys, "executors", "--json")
    data = json.loads(out)
    names = [e["name"] for e in data["executors"]]
    assert names == sorted(names)
    assert {"asyncio", "sequential", "trio"} <= set(names)
    assert data["executors"][names.index("trio")] == {
        "name": "trio",
        "backend": "trio",
        "plugin": "trio",
        "distribution": "pocketcore-trio",
        "version": "0.1.0",
    }


class TinyExecutor:
    """Just enough of an executor to be listed."""

    backend = None

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, fn: Any) -> Any:
        return anyio.run(fn)

    async def map(self, fn: Any, items: Any, *, limit: int | None) -> list[Any]:
        return [await fn(item) for item in items]


class Shout(pocketcore.Node):
    """A node class registered by the test plugin below."""


class ListedPlugin:
    """A plugin registered in code: an executor, a node, and an observer hook."""

    @pocketcore.hookimpl
    def pocketcore_register_executors(self, register: Any) -> None:
        register(TinyExecutor("recording"))

    @pocketcore.hookimpl
    def pocketcore_register_nodes(self, register: Any) -> None:
        register("shout", Shout)

    @pocketcore.hookimpl
    def pocketcore_node_start(self, node: Any) -> None:
        pass


@pytest.fixture
def listed() -> Iterator[ListedPlugin]:
    plugin = ListedPlugin()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="listed")
    yield plugin
    registry.unregister(plugin)


def test_plugins_lists_contributions_and_hooks(
    capsys: pytest.CaptureFixture[str], listed: ListedPlugin
) -> None:
    code, out, err = call(capsys, "plugins", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["listed"] == {
        "name": "listed",
        "distribution": None,
        "version": None,
        "executors": ["recording"],
        "nodes": ["shout"],
        "hooks": [
            "pocketcore_node_start",
            "pocketcore_register_executors",
            "pocketcore_register_nodes",
        ],
    }
    for name in EXECUTORS:
        assert plugins[name]["distribution"] == f"pocketcore-{name}"
        assert plugins[name]["executors"] == [name]
    code, out, _ = call(capsys, "plugins")
    assert "listed  (registered in code)\n  executors: recording\n  nodes:     shout\n" in out
    assert "trio  (pocketcore-trio 0.1.0)\n  executors: trio\n" in out


def test_nodes(capsys: pytest.CaptureFixture[str], listed: ListedPlugin) -> None:
    code, out, _ = call(capsys, "nodes")
    assert code == 0
    row = next(line.split() for line in out.splitlines() if line.startswith("shout"))
    assert row == ["shout", "tests.test_cli:Shout", "plugin", "'listed'", "-"]
    data = json.loads(call(capsys, "nodes", "--json")[1])
    entry = next(n for n in data["nodes"] if n["name"] == "shout")
    assert entry == {
        "name": "shout",
        "class": "tests.test_cli:Shout",
        "supplier": "plugin 'listed'",
        "distribution": None,
        "version": None,
    }


@pytest.fixture
def broken_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A registry with no plugins but two recorded load failures."""
    registry = Registry(pocketcore.make_plugin_manager())
    registry.failures.append(
        PluginFailure("pocketcore-broken 1.2", "broken", "ImportError: no module named 'x'")
    )
    registry.failures.append(
        PluginFailure("?", "ghost", "not installed (named in POCKETCORE_PLUGINS)")
    )
    monkeypatch.setattr(cli, "get_registry", lambda: registry)
    return registry


def test_failures_are_listed(capsys: pytest.CaptureFixture[str], broken_registry: Any) -> None:
    code, out, err = call(capsys, "plugins")
    assert (code, err) == (0, "")
    assert out.startswith("no plugins loaded\n\nplugin 'broken' (distribution pocketcore-broken")
    data = json.loads(call(capsys, "plugins", "--json")[1])
    assert data["failures"] == [
        {
            "entry_point": "broken",
            "group": "pocketcore",
            "distribution": "pocketcore-broken",
            "version": "1.2",
            "error": "ImportError: no module named 'x'",
        },
        {
            "entry_point": "ghost",
            "group": "pocketcore",
            "distribution": None,
            "version": None,
            "error": "not installed (named in POCKETCORE_PLUGINS)",
        },
    ]
    assert call(capsys, "executors")[1].startswith("no executors installed\n\nplugin 'broken'")
    assert call(capsys, "nodes")[1].startswith("no nodes registered\n\nplugin 'broken'")


def test_failures_are_warned_about_when_running(
    capsys: pytest.CaptureFixture[str], broken_registry: Any, flows: Path
) -> None:
    code, _, err = call(capsys, "run", f"{flows}:greet")
    assert code == 0
    assert err.splitlines() == [
        "pocketcore: warning: plugin 'broken' (distribution pocketcore-broken 1.2) failed to "
        "load: ImportError: no module named 'x'",
        "pocketcore: warning: plugin 'ghost' (distribution ?) failed to load: not installed "
        "(named in POCKETCORE_PLUGINS)",
    ]


def test_conflicting_plugins_are_listed_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    class Twin:
        @pocketcore.hookimpl
        def pocketcore_register_executors(self, register: Any) -> None:
            register(TinyExecutor("asyncio"))

    registry = pocketcore.get_registry()
    twin = Twin()
    registry.register(twin, name="twin")
    try:
        code, out, _ = call(capsys, "executors")
        assert code == 2  # listed, and the status says something is wrong
        assert "error: executor 'asyncio' is registered twice" in out
        code, _, err = call(capsys, "run", "x.py:y", "--executor", "asyncio")
        assert code == 2
        assert "registered twice" in err
    finally:
        registry.unregister(twin)


# --- progress -------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_output_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[str | None] = []
    real = Registry.register

    def spy(self: Registry, plugin: object, name: str | None = None) -> str:
        registered.append(name)
        return real(self, plugin, name)

    monkeypatch.setattr(Registry, "register", spy)
    code, _, err = call(capsys, "run", f"{flows}:double")
    assert (code, err) == (0, "")
    assert registered == []  # no observer, so the lifecycle hooks stay free


def test_a_terminal_gets_a_progress_bar(
    flows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", f"{flows}:double", "--shared", '{"items": [1, 2, 3, 4]}']) == 0
    assert "Double" in terminal.getvalue()
    assert "4/4" in terminal.getvalue()
    assert not pocketcore.get_registry().pm.has_plugin(PROGRESS_PLUGIN)  # gone after the run
    assert json.loads(capsys.readouterr().out.split("\n\naction")[0][8:])["out"] == [2, 4, 6, 8]


def test_quiet_means_no_bar_even_on_a_terminal(
    flows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", f"{flows}:double", "--quiet"]) == 0
    assert terminal.getvalue() == ""


def test_no_bar_without_batches(
    flows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["run", f"{flows}:greet"]) == 0
    assert terminal.getvalue() == ""


class Pass(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return list(range(self.params["n"]))

    async def exec_async(self, item: int) -> int:
        await anyio.lowlevel.checkpoint()
        return item


class Passes(pocketcore.AsyncParallelBatchFlow):
    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, int]]:
        return [{"n": n} for n in (1, 2, 3)]


class Endless(pocketcore.AsyncBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return iter([1, 2])  # no len(): the batch's size is unknown


@pytest.fixture
def observer() -> Iterator[ProgressObserver]:
    sink = io.StringIO()
    progress = ProgressObserver(Console(file=sink, force_terminal=True, width=100))
    registry = pocketcore.get_registry()
    registry.register(progress, name="test-progress")
    yield progress
    registry.unregister(progress)
    progress.close()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_observer_counts_items_per_batch_class(
    observer: ProgressObserver, executor: str
) -> None:
    assert observer.counts() == {}
    pocketcore.run(Passes(start=Pass()), {}, executor=executor)
    # One bar per class: Pass's three batches (1 + 2 + 3 items) add up on one.
    assert observer.counts() == {"Passes": (3, 3), "Pass": (6, 6)}


def test_the_observer_handles_unknown_sizes(observer: ProgressObserver) -> None:
    pocketcore.run(pocketcore.AsyncFlow(start=Endless()), {})
    assert observer.counts() == {"Endless": (2, None)}
    pocketcore.run(pocketcore.AsyncFlow(start=Endless()), {})
    assert observer.counts() == {"Endless": (4, None)}


def test_the_observer_counts_failed_items(observer: ProgressObserver) -> None:
    class Fails(Pass):
        async def exec_async(self, item: int) -> int:
            raise ValueError(item)

    node = Fails()
    node.set_params({"n": 1})
    with pytest.raises(ValueError, match="0"):
        pocketcore.run(node, {})
    assert observer.counts() == {"Fails": (1, 1)}


# --- demo ------------------------------------------------------------------------------------


@pytest.fixture
def fast_examples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(summaries, "DELAY", 0.01)
    monkeypatch.setattr(image_filter, "DELAY", 0.01)
    monkeypatch.setattr(image_filter, "OUT", tmp_path / "out")


def test_demo_prints_a_table_of_wall_times(
    capsys: pytest.CaptureFixture[str], fast_examples: None
) -> None:
    code, out, err = call(capsys, "demo")
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()[1:] if line.startswith(("parallel", "image"))]
    assert [r[2:4] for r in rows] == [
        ["AsyncBatchNode", "asyncio"],
        *(["AsyncParallelBatchNode", e] for e in sorted(EXECUTORS)),
        ["AsyncBatchFlow", "asyncio"],
        *(["AsyncParallelBatchFlow", e] for e in sorted(EXECUTORS)),
    ]
    assert all(r[4].endswith("s") and r[5].endswith("x") for r in rows)


def test_demo_with_chosen_executors(
    capsys: pytest.CaptureFixture[str], fast_examples: None
) -> None:
    code, out, _ = call(capsys, "demo", "trio")
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.startswith(("parallel", "image"))]
    assert {r[3] for r in rows} == {"trio"}
    code, out, err = call(capsys, "demo", "trio", "nope")
    assert (code, out) == (2, "")
    assert err.startswith("pocketcore: error: unknown executor(s) 'nope'; installed executors: ")


def test_demo_skips_an_example_it_cannot_import(
    capsys: pytest.CaptureFixture[str], fast_examples: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = cli._Example("missing", "examples.no_such_example", "A", "B")
    unfit = cli._Example("unfit", "examples", "A", "B")  # no build_flow() and timed()
    monkeypatch.setattr(cli, "_EXAMPLES", (cli._EXAMPLES[0], missing, unfit))
    code, out, err = call(capsys, "demo", "asyncio")
    assert code == 0
    assert err == (
        "pocketcore: missing example skipped: cannot import examples.no_such_example "
        "(ModuleNotFoundError: No module named 'examples.no_such_example')\n"
        "pocketcore: unfit example skipped: no build_flow() and timed()\n"
    )
    assert "parallel summaries" in out


# --- the real command, in a subprocess ---------------------------------------------------------

SCRIPT = Path(sys.executable).parent / ("pocketcore.exe" if os.name == "nt" else "pocketcore")
COMMANDS = [
    pytest.param([sys.executable, "-m", "pocketcore"], id="python -m pocketcore"),
    pytest.param(
        [str(SCRIPT)],
        id="pocketcore script",
        marks=pytest.mark.skipif(
            not SCRIPT.exists(), reason=f"console script not installed next to {sys.executable}"
        ),
    ),
]


def shell(
    command: list[str], *args: str, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_end_to_end_run(command: list[str], flows: Path, tmp_path: Path) -> None:
    # stderr is a pipe here, not a terminal: no progress output at all.
    done = shell(command, "run", "flows.py:double", "--output", "json", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["shared"]["out"] == [2, 4, 6]
    done = shell(command, "run", "flows.py:greet", "--set", "who=script", cwd=tmp_path)
    assert done.returncode == 0
    assert '"greeting": "hello script"' in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_end_to_end_errors(command: list[str], flows: Path, tmp_path: Path) -> None:
    cases = [
        (["run", "missing.py:flow"], 2, "pocketcore: error: no such file: 'missing.py'\n"),
        (["run", "flows.py:greet", "--shared", "nope"], 2, "pocketcore: error: --shared is"),
        (["run", "flows.py:greet", "--executor", "nope"], 2, "pocketcore: error: unknown exec"),
        (["run", "flows.py:number"], 2, "pocketcore: error: 'flows.py:number' is not a node"),
        (["run", "no_module:x"], 2, "pocketcore: error: cannot import module 'no_module'"),
        (["run", "flows.py:boom"], 1, "ValueError: boom\n"),
        (["demo"], 2, "pocketcore: error: the demo runs the examples/ folder"),
    ]
    for args, status, message in cases:
        done = shell(command, *args, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (status, ""), args
        assert done.stderr.startswith(message), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_end_to_end_plugins(command: list[str], tmp_path: Path) -> None:
    done = shell(command, "plugins", "--json", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    plugins = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    for name in EXECUTORS:
        assert plugins[name]["distribution"] == f"pocketcore-{name}"
        assert plugins[name]["version"]
        assert plugins[name]["executors"] == [name]
        assert plugins[name]["hooks"] == ["pocketcore_register_executors"]


def test_end_to_end_plugin_selection(tmp_path: Path) -> None:
    done = shell(
        [sys.executable, "-m", "pocketcore"],
        "executors",
        cwd=tmp_path,
        POCKETCORE_PLUGINS="trio,ghost",
    )
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "name  backend  plugin  distribution",
        "trio  trio     trio    pocketcore-trio 0.1.0",
        "",
        "plugin 'ghost' (distribution ?) failed to load: not installed "
        "(named in POCKETCORE_PLUGINS)",
        "(only the plugins named in POCKETCORE_PLUGINS were loaded)",
    ]


def test_end_to_end_rich_is_imported_only_for_a_bar(flows: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pocketcore._cli import main; "
        "code = main(['run', 'flows.py:double', '--quiet']); "
        "print('rich' in sys.modules, code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.stdout.splitlines()[-1] == "False 0"
