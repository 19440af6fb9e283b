"""Flow files on the command line: run with their [config], and their problems one per line."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import call, run_json

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
