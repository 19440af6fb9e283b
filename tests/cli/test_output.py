"""What ``pocketcore run`` prints: the shared store as JSON, whatever the store holds.

And what a user chooses to see: ``--print KEY``, ``--output text|json|none``, and
the one-line summary that stands for a store too long for a screen by default.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketcore._cli import main
from pocketcore._cli.output import MAX_PRINT_DEPTH, dumps
from pocketcore._cli.run import SUMMARY_LINES, print_result

from .support import REPO, assert_bad_input, call


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


def test_an_int_too_long_for_str_is_printed_by_its_digits(
    capsys: pytest.CaptureFixture[str], flows: Path
) -> None:
    for output in ("json", "text"):
        code, out, err = call(capsys, "run", f"{flows}:huge", "--output", output)
        assert (code, err) == (0, "")
        assert out.count("<int of 5001 digits, too long to print>") == 3  # value, key, action


class Raises:
    """An object whose ``repr`` raises ``error``."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def __repr__(self) -> str:
        raise self.error("no repr")


def nested(depth: int, kind: str) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"k": value} if kind == "dict" else [value] if kind == "list" else (value,)
    return value


def looped() -> Any:
    loop: list[Any] = []
    loop.append({"self": loop})
    return loop


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(0, 12_000).map(lambda n: -(10**n)),  # any number of digits
    st.floats(),
    st.text(st.characters(codec=None)),  # lone surrogates too
    st.binary(max_size=5),
    st.sets(st.integers(), max_size=3),
    st.builds(Raises, st.sampled_from([ValueError, RuntimeError, RecursionError, TypeError])),
    st.builds(nested, st.integers(0, 3000), st.sampled_from(["dict", "list", "tuple"])),
    st.builds(looped),
    st.just(object),
)
keys = st.one_of(
    st.text(max_size=3),
    st.integers(),
    st.integers(4000, 6000).map(lambda n: 10**n),
    st.floats(),
    st.none(),
    st.booleans(),
    st.tuples(st.integers()),
    st.builds(Raises, st.just(ValueError)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(keys, inner, max_size=3),
    ),
    max_leaves=10,
)


@given(value=values)
def test_dumps_is_json_whatever_the_value(value: Any) -> None:
    json.loads(dumps(value))


@given(value=values, action=values, output=st.sampled_from(["json", "text"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_printing_the_result_never_fails(
    capsys: pytest.CaptureFixture[str], value: Any, action: Any, output: str
) -> None:
    print_result({"value": value}, action, output)
    out = capsys.readouterr().out
    if output == "json":
        assert set(json.loads(out)) == {"shared", "action"}
    else:
        shared, _, action_text = out.partition("\n\naction: ")
        assert json.loads(shared.removeprefix("shared:\n")).keys() == {"value"}
        json.loads(action_text)


def test_depth_is_cut_at_the_limit() -> None:
    printed = json.loads(dumps(nested(MAX_PRINT_DEPTH + 5, "list")))
    for _ in range(MAX_PRINT_DEPTH):
        printed = printed[0]
    assert printed == "<list nested too deeply to print>"
    assert json.loads(dumps(nested(MAX_PRINT_DEPTH, "list"))) == nested(MAX_PRINT_DEPTH, "list")


# --- choosing what is printed: --print, --output, the summary of a large store -------------

stores = st.dictionaries(
    st.text(alphabet="abcxyz_", min_size=1, max_size=6),
    st.lists(st.integers(), max_size=12),
    max_size=6,
)


@given(shared=stores, data=st.data())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_print_keys_shows_those_keys_whole_in_their_order(
    capsys: pytest.CaptureFixture[str], shared: dict[str, Any], data: st.DataObject
) -> None:
    keys = data.draw(
        st.lists(st.sampled_from(sorted(shared)), unique=True) if shared else st.just([])
    )
    output = data.draw(st.sampled_from([None, "text", "json"]))
    print_result(shared, "done", output, keys)
    out = capsys.readouterr().out
    chosen = {k: shared[k] for k in keys} if keys else shared
    if output == "json":
        printed = json.loads(out)
        assert printed == {"shared": chosen, "action": "done"}
        assert list(printed["shared"]) == list(chosen)
        return
    head, _, action = out.partition("\n\naction: ")
    assert action == '"done"\n'
    whole = dumps(chosen)
    if output is None and not keys and whole.count("\n") >= SUMMARY_LINES:
        # Too long for a screen: one line, naming every key.
        assert head.startswith(f"shared: {len(shared)} keys (")
        assert "\n" not in head
        assert all(key in head for key in list(shared)[:10])
        assert f"{whole.count(chr(10)) + 1} lines of JSON, not shown" in head
    else:
        assert head == f"shared:\n{whole}"


@given(shared=stores, output=st.sampled_from([None, "text", "json", "none"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_output_none_prints_nothing_and_the_others_something(
    capsys: pytest.CaptureFixture[str], shared: dict[str, Any], output: str | None
) -> None:
    print_result(shared, None, output)
    out = capsys.readouterr().out
    assert (out == "") == (output == "none")


def test_the_readme_rerun_prints_a_summary_not_every_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMMARY_DELAY", "0")
    target = str(REPO / "examples" / "parallel_summaries" / "target.py") + ":flow"
    code, out, err = call(capsys, "run", target)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "shared: 2 keys (texts, summaries), 46 lines of JSON, not shown (--print KEY shows a "
        "key, --output text or json the whole store)",
        "",
        "action: null",
    ]
    code, out, err = call(capsys, "run", target, "--print", "summaries", "--print", "texts")
    assert (code, err) == (0, "")
    printed = json.loads(out.partition("\n\naction: ")[0].removeprefix("shared:\n"))
    assert list(printed) == ["summaries", "texts"]
    assert len(printed["summaries"]) == 8
    code, out, err = call(capsys, "run", target, "--output", "text")
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 46 + 3
    assert call(capsys, "run", target, "--output", "none") == (0, "", "")


def test_a_key_the_store_lacks_is_bad_input_after_the_run(
    capsys: pytest.CaptureFixture[str], flows: Path
) -> None:
    code, out, err = call(capsys, "run", f"{flows}:greet", "--print", "greeting", "--print", "nope")
    assert_bad_input(code, out, err)
    assert err == (
        "pocketcore: error: --print 'nope': the final shared store has no such key; "
        "its keys: greeting, params\n"
    )
    code, out, err = call(
        capsys, "run", f"{flows}:greet", "--print", "greeting", "--output", "json"
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == {"shared": {"greeting": "hello world"}, "action": "greeted"}
