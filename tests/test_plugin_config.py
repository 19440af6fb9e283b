"""pocketcore.PluginSettings: a plugin's keys declared once, resolved as every setting is.

The precedence (argument, environment variable, the plugin's table of the
configuration file) is a property over which sources set each key; the
errors name the argument, the variable, or the key and the file, in the
kernel's words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pocketcore import ConfigError, PluginKey, PluginSettings, Setting

from .helpers import configured

SETTINGS = PluginSettings(
    "tiny",
    [
        PluginKey.text("address", "'tcp://10.0.0.5:1'"),
        PluginKey.count("workers"),
        PluginKey.seconds("patience"),
        PluginKey.flag("verbose"),
        PluginKey.table("extra", "options for the engine"),
    ],
    owner="TinyExecutor()",
)
#: Two values of each key, written as code, as TOML and as environment text.
VALUES: dict[str, tuple[tuple[Any, str, str], ...]] = {
    "address": (("a:1", '"a:1"', "a:1"), ("b:2", '"b:2"', " b:2 ")),
    "workers": ((3, "3", "3"), (7, "7", "7")),
    "patience": ((0.5, "0.5", "0.5"), (2.0, "2", "2")),
    "verbose": ((True, "true", "yes"), (False, "false", "0")),
    "extra": (({"a": 1}, "{ a = 1 }", '{"a": 1}'), ({"b": "x"}, '{ b = "x" }', '{"b": "x"}')),
}
SOURCES = st.sets(st.sampled_from(["argument", "environment", "file"]))


@given(st.fixed_dictionaries(dict.fromkeys(VALUES, SOURCES)), st.sampled_from(["toml", "py"]))
def test_the_most_specific_source_wins_and_is_named(
    sources: dict[str, set[str]], file: str
) -> None:
    """Each key comes from its argument, else its variable, else the file; unset keys are absent.

    The argument holds the first value of each key, the variable and the
    file the second, so which one won shows in the value as well as in the
    source.
    """
    arguments: dict[str, Any] = {}
    env: dict[str, str] = {}
    lines: list[str] = []
    for key, where in sources.items():
        (code, _, _), (value, toml, text) = VALUES[key]
        arguments[key] = code if "argument" in where else None
        if "environment" in where:
            env[SETTINGS.variable(key)] = text
        if "file" in where:
            lines.append(f"{key} = {toml}")
    table = "[tiny]" if file == "toml" else "[tool.pocketcore.tiny]"
    name = "pocketcore.toml" if file == "toml" else "pyproject.toml"
    with configured(env, {name: "\n".join([table, *lines, ""])}):
        found = SETTINGS.resolve(SETTINGS.check_arguments(**arguments))
    expected: dict[str, Setting] = {}
    for key, where in sources.items():
        (code, _, _), (value, _, _) = VALUES[key]
        if "argument" in where:
            expected[key] = Setting(code, f"argument {key}= of TinyExecutor()")
        elif "environment" in where:
            expected[key] = Setting(value, f"environment variable POCKETCORE_TINY_{key.upper()}")
        elif "file" in where:
            expected[key] = Setting(value, f"key {key!r} in {table} in {name}")
    assert found == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"workers": 0}, "workers must be >= 1, got 0 from argument workers= of TinyExecutor()"),
        (
            {"workers": True},
            "workers must be an integer >= 1, got True (bool) from argument workers= of "
            "TinyExecutor()",
        ),
        (
            {"patience": math.inf},
            "patience must be a positive, finite number, got inf from argument patience= of "
            "TinyExecutor()",
        ),
        (
            {"verbose": 1},
            "verbose must be true or false, got 1 (int) from argument verbose= of TinyExecutor()",
        ),
        (
            {"address": " "},
            "address must be a non-empty string such as 'tcp://10.0.0.5:1', got ' ' (str) from "
            "argument address= of TinyExecutor()",
        ),
        (
            {"extra": ["a"]},
            "extra must be a table (options for the engine), got ['a'] (list) from argument "
            "extra= of TinyExecutor()",
        ),
    ],
)
def test_a_bad_argument_is_named_where_it_is_given(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        SETTINGS.check_arguments(**given)
    assert str(info.value) == message


def test_an_argument_that_is_not_a_key_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="TinyExecutor\\(\\) has no setting 'wokers'"):
        SETTINGS.check_arguments(wokers=2)


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("WORKERS", "four", "workers must be an integer >= 1, got 'four' (str)"),
        ("PATIENCE", "0", "patience must be a positive, finite number, got 0.0"),
        ("VERBOSE", "maybe", "verbose must be true or false, got 'maybe' (str)"),
        ("EXTRA", "{not json", "extra must be a table (options for the engine), got '{not json'"),
    ],
)
def test_a_bad_variable_is_named(variable: str, text: str, message: str) -> None:
    with configured({f"POCKETCORE_TINY_{variable}": text}), pytest.raises(ConfigError) as info:
        SETTINGS.resolve()
    assert str(info.value).startswith(message)
    assert str(info.value).endswith(f"from environment variable POCKETCORE_TINY_{variable}")


def test_a_bad_value_is_an_error_even_where_a_more_specific_source_wins() -> None:
    files = {"pocketcore.toml": "[tiny]\nworkers = 0\n"}
    with configured({"POCKETCORE_TINY_WORKERS": "2"}, files), pytest.raises(ConfigError) as info:
        SETTINGS.resolve(SETTINGS.check_arguments(workers=3))
    assert str(info.value) == "workers must be >= 1, got 0 from key 'workers' in [tiny] in " + (
        "pocketcore.toml"
    )


def test_an_unknown_key_in_the_file_lists_the_known_ones() -> None:
    files = {"pyproject.toml": "[tool.pocketcore.tiny]\nworker = 2\n"}
    with configured(None, files), pytest.raises(ConfigError) as info:
        SETTINGS.resolve()
    assert str(info.value) == (
        "unknown key 'worker' in [tool.pocketcore.tiny] in pyproject.toml; known keys: "
        "address, workers, patience, verbose, extra"
    )


def test_an_empty_variable_is_unset_and_nothing_set_is_nothing_found() -> None:
    with configured({"POCKETCORE_TINY_WORKERS": " "}):
        assert SETTINGS.resolve() == {}


def test_a_key_of_its_own_kind() -> None:
    """A key made directly: its own reading of the variable's text and its own check."""

    def check(value: object, source: str) -> str:
        if value not in ("low", "high"):
            raise ConfigError(f"level must be 'low' or 'high', got {value!r} from {source}")
        return str(value)

    settings = PluginSettings("tiny", [PluginKey("level", check, str.lower)], owner="Tiny()")
    with configured({"POCKETCORE_TINY_LEVEL": "HIGH"}):
        assert settings.resolve() == {
            "level": Setting("high", "environment variable POCKETCORE_TINY_LEVEL")
        }
    with configured({"POCKETCORE_TINY_LEVEL": "mid"}), pytest.raises(ConfigError, match="mid"):
        settings.resolve()


def test_build_hands_the_values_that_are_set_and_their_sources_to_make() -> None:
    """``make`` gets each key set somewhere, with ``sources``; its defaults keep the others."""

    @attrs.frozen
    class Tiny:
        address: str | None = None
        workers: int = 1
        patience: float = 10.0
        verbose: bool = False
        sources: Mapping[str, str] = attrs.field(factory=dict)

    toml = "[tiny]\nworkers = 2\npatience = 0.5\n"
    env = {"POCKETCORE_TINY_WORKERS": "3"}
    with configured(env, {"pocketcore.toml": toml}):
        built = SETTINGS.build(Tiny, SETTINGS.check_arguments(address="a:1"))
    assert built == Tiny(
        address="a:1",
        workers=3,
        patience=0.5,
        sources={
            "address": "argument address= of TinyExecutor()",
            "workers": "environment variable POCKETCORE_TINY_WORKERS",
            "patience": "key 'patience' in [tiny] in pocketcore.toml",
        },
    )
    with configured():
        assert SETTINGS.build(Tiny) == Tiny()
