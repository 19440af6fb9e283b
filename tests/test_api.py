"""The public surface: __all__ is exactly what is public, and every public name is documented."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import pocketcore
import pocketcore.hookspecs
import pocketcore.testing

from .compat_programs import CLASS_NAMES


@pytest.mark.parametrize("module", [pocketcore, pocketcore.hookspecs, pocketcore.testing])
def test_all_lists_exactly_the_public_names(module: ModuleType) -> None:
    def defined_here(value: object) -> bool:
        where = getattr(value, "__module__", None)
        if where == module.__name__:
            return True
        # The package re-exports what its private modules define.
        return module is pocketcore and isinstance(where, str) and where.startswith("pocketcore._")

    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value) and defined_here(value)
    }
    declared = set(module.__all__)
    assert public <= declared, f"public but not in __all__: {public - declared}"
    assert all(hasattr(module, name) for name in declared)
    assert list(module.__all__) == sorted(module.__all__)


@pytest.mark.parametrize("name", pocketcore.__all__)
def test_every_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(pocketcore, name)
    assert inspect.getdoc(obj), f"pocketcore.{name} has no docstring"


def test_the_pocketflow_names_are_all_there() -> None:
    for name in CLASS_NAMES:
        assert isinstance(getattr(pocketcore, name), type)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(pocketcore.ConfigError, ValueError)
    assert issubclass(pocketcore.ConfigError, pocketcore.PocketcoreError)
    assert issubclass(pocketcore.PluginError, pocketcore.PocketcoreError)


def test_every_executor_map_takes_the_same_keywords() -> None:
    # The one signature the kernel calls, whatever the executor declares.
    for method in (pocketcore.BaseExecutor.map, pocketcore.BaseExecutor.map_blocking):
        keywords = [
            p.name
            for p in inspect.signature(method).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        assert keywords == ["limit", "gate", "on_result"]
