"""Shared fixtures: a clean configuration environment and a fresh plugin registry."""

from __future__ import annotations

from pathlib import Path

import pytest

import pocketcore
from pocketcore import Registry
from pocketcore._runtime import config


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's POCKETCORE_* variables or configuration files."""
    for name in (
        "POCKETCORE_EXECUTOR",
        "POCKETCORE_MAX_CONCURRENCY",
        "POCKETCORE_MAX_PER_SECOND",
        "POCKETCORE_LIMITER",
        "POCKETCORE_ON_ERROR",
        "POCKETCORE_TIMEOUT",
        "POCKETCORE_CACHE",
        "POCKETCORE_DISABLE_PLUGIN_AUTOLOAD",
        "POCKETCORE_PLUGINS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    # A `pocketcore run` of a file in an earlier test named its program.
    monkeypatch.setattr(config, "_program", [])


@pytest.fixture
def pm() -> Registry:
    """A registry around a fresh, empty plugin manager (no entry points loaded)."""
    return Registry(pocketcore.make_plugin_manager())
