"""What ``pocketcore run`` prints: the shared store as JSON, whatever the store holds."""

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
from pocketcore._cli.run import print_result

from .support import call


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
