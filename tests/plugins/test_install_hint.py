"""An unknown executor that ships as an extra of pocketcore says how to install it.

Covers reading the extras from pocketcore's installed metadata (an extra
``NAME`` installing ``pocketcore-NAME`` offers the executor ``NAME``) and the
hint in the ``ConfigError`` for an unknown executor, given only when that
distribution is missing.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

import pocketcore
from pocketcore import Registry
from pocketcore._plugins import extras

from .distributions import fake_distribution


def test_the_extras_come_from_pocketcores_own_metadata() -> None:
    offered = extras.executor_extras()
    assert offered["trio"] == "pocketcore-trio"
    assert offered["dask"] == "pocketcore-dask"
    assert "testing" not in offered  # installs pytest and Hypothesis, no executor


@pytest.fixture
def pocketcore_with_zap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pocketcore's metadata, shadowed by one whose extras offer ``zap`` (not installed)."""
    fake_distribution(
        tmp_path,
        "pocketcore",
        version="9.9",
        requires=[
            "pocketcore-zap>=1; extra == 'zap'",
            'pocketcore_trio>=0.1 ; extra == "trio"',
            'pytest>=8; extra == "testing"',
            "anyio>=4",
        ],
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_missing_extra_is_named_with_the_pip_command(
    pm: Registry, pocketcore_with_zap: None
) -> None:
    assert extras.executor_extras() == {"zap": "pocketcore-zap", "trio": "pocketcore_trio"}
    with pytest.raises(pocketcore.ConfigError) as info:
        pm.get_executor("zap", source="argument executor= of pocketcore.run()")
    assert str(info.value) == (
        "unknown executor 'zap' (from argument executor= of pocketcore.run()); "
        "installed executors: none; "
        """the 'zap' executor is installed with: pip install "pocketcore[zap]\""""
    )


@pytest.mark.parametrize("name", ["trio", "testing", "Zap", "nope"])
def test_no_hint_for_an_installed_extra_or_another_name(
    pm: Registry, pocketcore_with_zap: None, name: str
) -> None:
    # pocketcore-trio is installed: it is missing because it failed or was not
    # selected, which the failures and the selection note say.
    with pytest.raises(pocketcore.ConfigError) as info:
        pm.get_executor(name, source="a test")
    assert "pip install" not in str(info.value)


def test_trio_left_out_by_the_selection_gets_no_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POCKETCORE_PLUGINS", "asyncio")
    registry = Registry.from_environment()
    with pytest.raises(pocketcore.ConfigError) as info:
        registry.get_executor("trio", source="a test")
    assert str(info.value).endswith("(only the plugins named in POCKETCORE_PLUGINS were loaded)")


def test_a_missing_trio_plugin_is_named_with_the_pip_command(
    pm: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = metadata.distribution

    def without_trio(name: str) -> metadata.Distribution:
        if name == "pocketcore-trio":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(extras.metadata, "distribution", without_trio)
    with pytest.raises(pocketcore.ConfigError, match=r'pip install "pocketcore\[trio\]"$'):
        pm.get_executor("trio", source="a test")


def test_without_pocketcores_metadata_there_is_no_hint(
    pm: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_installed(name: str) -> list[str]:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(extras.metadata, "requires", not_installed)
    assert extras.executor_extras() == {}
    with pytest.raises(pocketcore.ConfigError) as info:
        pm.get_executor("dask", source="a test")
    assert str(info.value) == "unknown executor 'dask' (from a test); installed executors: none"
