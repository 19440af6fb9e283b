"""Bad input beyond a parser's limits: status 2 and one line, never a traceback.

Nesting too deep for a parser, integers too long for ``int``, and ``[flows]``
nested too deep are input the command cannot use, whatever the depth or the
number of digits: each property below holds for any of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketcore._front.flowfile import MAX_FLOW_DEPTH, FlowFileError, load_flow

from .support import assert_bad_input, call

# The files are rewritten by every example, in the test's own folder.
FILES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
INT_LIMIT = getattr(sys, "get_int_max_str_digits", lambda: 0)() or 4300

LEAF = """
import pocketcore

class Leaf(pocketcore.Node):
    def post(self, shared, prep_res, exec_res):
        shared["reached"] = True
"""


@pytest.fixture(autouse=True)
def _leaf_module(tmp_path: Path) -> None:
    (tmp_path / "leaf_nodes.py").write_text(LEAF)


def nested_arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def flow_file_with_params(value: str) -> str:
    return (
        '[flow]\nstart = "a"\n'
        f"params = {{ v = {value} }}\n"
        '[flow.nodes.a]\nuse = "leaf_nodes:Leaf"\n'
    )


def chain_of_flows(length: int) -> str:
    """A [flow] whose node is flow f0, whose node is flow f1, ... down to a Leaf."""
    parts = ['[flow]\nstart = "a"\n[flow.nodes.a]\nflow = "f0"\n']
    for i in range(length):
        inner = f'flow = "f{i + 1}"' if i < length - 1 else 'use = "leaf_nodes:Leaf"'
        parts.append(f'[flows.f{i}]\nstart = "a"\n[flows.f{i}.nodes.a]\n{inner}\n')
    return "".join(parts)


def assert_flow_file_rejected(code: int, out: str, err: str, problem: str) -> None:
    """Status 2: the file's header line, then its one problem; no traceback."""
    assert (code, out) == (2, ""), err
    assert err.splitlines() == ["pocketcore: error: flow.toml: 1 problem(s)", f"  {problem}"]


# --- flow files -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "graph"])
def test_500_nested_arrays_in_a_flow_file(capsys: pytest.CaptureFixture[str], command: str) -> None:
    Path("flow.toml").write_text(f"[flow]\nx = {nested_arrays(500)}\n")
    code, out, err = call(capsys, command, "flow.toml")
    assert_flow_file_rejected(code, out, err, "invalid TOML: nested too deeply to read")


def test_load_flow_raises_flow_file_error_for_deep_nesting(tmp_path: Path) -> None:
    path = tmp_path / "flow.toml"
    path.write_text(f"[flow]\nx = {nested_arrays(500)}\n")
    with pytest.raises(FlowFileError) as info:
        load_flow(path)
    assert info.value.problems == ["invalid TOML: nested too deeply to read"]


def test_an_integer_too_long_for_python_in_a_flow_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("flow.toml").write_text(flow_file_with_params("1" * (INT_LIMIT + 1)))
    code, out, err = call(capsys, "run", "flow.toml")
    assert (code, out) == (2, "")
    assert err.splitlines()[1].startswith("  invalid TOML: ValueError: ")


@FILES
@given(depth=st.integers(1, 3000), command=st.sampled_from(["run", "graph"]))
def test_any_nesting_depth_of_a_flow_file_loads_or_is_rejected_in_one_problem(
    capsys: pytest.CaptureFixture[str], depth: int, command: str
) -> None:
    Path("flow.toml").write_text(flow_file_with_params(nested_arrays(depth)))
    code, out, err = call(capsys, command, "flow.toml")
    if code == 0:
        assert err == ""
        assert depth < 1000  # the interpreter's recursion limit bounds any parser
    else:
        assert_flow_file_rejected(code, out, err, "invalid TOML: nested too deeply to read")


@pytest.mark.parametrize("command", ["run", "graph"])
def test_a_400_deep_chain_of_nested_flows(capsys: pytest.CaptureFixture[str], command: str) -> None:
    Path("flow.toml").write_text(chain_of_flows(400))
    code, out, err = call(capsys, command, "flow.toml")
    place = f"[flows.f{MAX_FLOW_DEPTH - 1}.nodes.a] flow"
    assert_flow_file_rejected(
        code, out, err, f"{place}: [flows] tables nested more than {MAX_FLOW_DEPTH} deep"
    )


@FILES
@given(length=st.integers(1, 3 * MAX_FLOW_DEPTH))
def test_any_chain_of_nested_flows_runs_or_is_rejected_at_the_limit(
    capsys: pytest.CaptureFixture[str], length: int
) -> None:
    Path("flow.toml").write_text(chain_of_flows(length))
    code, out, err = call(capsys, "run", "flow.toml", "--output", "json")
    if length <= MAX_FLOW_DEPTH:
        assert (code, err) == (0, "")
        assert json.loads(out)["shared"] == {"reached": True}
    else:
        assert (code, out) == (2, "")
        assert f"nested more than {MAX_FLOW_DEPTH} deep" in err
        assert len(err.splitlines()) == 2


def test_a_file_that_would_build_too_many_objects(capsys: pytest.CaptureFixture[str]) -> None:
    # Two uses of the next table at each of 20 levels: a million flows.
    parts = ['[flow]\nstart = "a"\n[flow.nodes.a]\nflow = "f0"\n']
    for i in range(20):
        inner = f'flow = "f{i + 1}"' if i < 19 else 'use = "leaf_nodes:Leaf"'
        parts.append(f'[flows.f{i}]\nstart = "a"\n')
        parts += [f"[flows.f{i}.nodes.{n}]\n{inner}\n" for n in "ab"]
    Path("flow.toml").write_text("".join(parts))
    code, out, err = call(capsys, "graph", "flow.toml")
    assert (code, out) == (2, "")
    assert err.splitlines()[1].startswith("  the file builds more than 10000 nodes and flows")


# --- --shared and --set ------------------------------------------------------------------


def test_a_5000_digit_number_in_shared(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    code, out, err = call(capsys, "run", "flows.py:greet", "--shared", '{"x": 1' + "0" * 4999 + "}")
    assert_bad_input(code, out, err)
    assert err == (
        f"pocketcore: error: --shared holds an integer of 5000 digits, more than can be read "
        f"(at most {INT_LIMIT})\n"
    )


@pytest.mark.parametrize("option", ["--shared", "--set"])
def test_deeply_nested_json(capsys: pytest.CaptureFixture[str], flows: Path, option: str) -> None:
    value = nested_arrays(100_000)
    arg = '{"x": ' + value + "}" if option == "--shared" else f"x={value}"
    code, out, err = call(capsys, "run", "flows.py:greet", option, arg)
    assert_bad_input(code, out, err)
    where = "--shared" if option == "--shared" else "--set x"
    assert err == f"pocketcore: error: {where} is nested too deeply to read\n"


@given(digits=st.integers(1, 3 * INT_LIMIT), option=st.sampled_from(["--shared", "--set"]))
@FILES
def test_any_number_of_digits_is_read_or_is_bad_input(
    capsys: pytest.CaptureFixture[str], flows: Path, digits: int, option: str
) -> None:
    number = "9" * digits
    arg = '{"x": -' + number + "}" if option == "--shared" else f"x=-{number}"
    code, out, err = call(capsys, "run", "flows.py:greet", option, arg, "--output", "json")
    if digits <= INT_LIMIT:
        assert (code, err) == (0, "")
        shared = json.loads(out)["shared"]
        got = shared["x"] if option == "--shared" else shared["params"]["x"]
        assert got == -int(number)
    else:
        assert_bad_input(code, out, err)
        assert f"holds an integer of {digits} digits" in err


@given(
    depth=st.integers(1, 5000),
    opener=st.sampled_from(["[", '{"k": ']),
    option=st.sampled_from(["--shared", "--set"]),
)
@FILES
def test_any_nesting_depth_is_read_or_is_bad_input(
    capsys: pytest.CaptureFixture[str], flows: Path, depth: int, opener: str, option: str
) -> None:
    closer = "]" if opener == "[" else "}"
    value = opener * depth + "1" + closer * depth
    arg = '{"x": ' + value + "}" if option == "--shared" else f"x={value}"
    code, out, err = call(capsys, "run", "flows.py:greet", option, arg, "--output", "json")
    if code == 0:
        assert err == ""
        json.loads(out)  # printed whatever the depth (deep parts as a placeholder)
    else:
        assert_bad_input(code, out, err)
        assert err.endswith("is nested too deeply to read\n")
        assert depth > 100
