"""``pocketcore run``: the forms of TARGET, the options, and its errors (status 1, 2 and 130)."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pocketcore._cli import run as cli_run

from .support import EXECUTORS, FLOWS, REPO, call, run_json

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
    assert "pocketcore/_cli/" not in err  # the command's own frames are left out


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

    monkeypatch.setattr(cli_run, "run_flow", interrupt)
    assert call(capsys, "run", f"{flows}:greet") == (130, "", "pocketcore: interrupted\n")
