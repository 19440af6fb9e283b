"""The settings table: every place a setting is given is derived from its row, and agrees."""

from __future__ import annotations

import typing

import attrs
import pytest

import pocketcore
from pocketcore._cli import main
from pocketcore._runtime.settings import SETTINGS, SettingKeywords

NAMES = (
    "executor",
    "max_concurrency",
    "max_per_second",
    "limiter",
    "on_error",
    "timeout",
    "cache",
    "cache_ttl",
)


def test_the_table_holds_the_documented_settings_in_order() -> None:
    assert tuple(SETTINGS) == NAMES
    assert [spec.env for spec in SETTINGS.values()] == [f"POCKETCORE_{n.upper()}" for n in NAMES]


def test_the_keyword_typing_matches_the_table_and_the_attributes() -> None:
    # The TypedDict is what type checkers and IDEs show as the constructors'
    # keywords; it cannot be generated from the table, so it is held to it here.
    keywords = SettingKeywords.__annotations__
    assert tuple(keywords) == NAMES
    attributes = pocketcore.BaseNode.__annotations__
    for name in NAMES:
        # Both are the text of the annotation (postponed evaluation).
        typed = keywords[name]
        assert getattr(typed, "__forward_arg__", typed) == attributes[name]


@pytest.mark.parametrize(
    "make",
    [
        lambda: pocketcore.BaseNode(exector="trio"),  # type: ignore[call-arg]
        lambda: pocketcore.Node(2, exector="trio"),  # type: ignore[call-arg]
        lambda: pocketcore.AsyncFlow(None, exector="trio"),  # type: ignore[call-arg]
        lambda: pocketcore.run(pocketcore.Node(), exector="trio"),  # type: ignore[call-arg]
    ],
)
def test_an_unknown_keyword_is_a_type_error(make: typing.Callable[[], object]) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'exector'"):
        make()


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_is_a_keyword_of_nodes_flows_and_run(name: str) -> None:
    # None means "not set", everywhere.
    node = pocketcore.Node(**{name: None})  # type: ignore[misc]
    flow = pocketcore.Flow(node, **{name: None})  # type: ignore[misc]
    assert getattr(node, name) is None
    assert getattr(flow, name) is None
    assert pocketcore.run(flow, {}, **{name: None}) is None  # type: ignore[misc]


def test_a_loaded_flow_file_holds_every_setting_of_its_config() -> None:
    fields = {field.name for field in attrs.fields(pocketcore.LoadedFlow)}
    assert set(NAMES) <= fields


def test_every_setting_is_an_option_of_pocketcore_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for spec in SETTINGS.values():
        assert f"{spec.option} " in out
