"""Every test sees the installed plugins as a user would, whatever the developer's shell says."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The selection variables would hide the installed plugin; a pocketcore.toml
    # in the working directory could change the executor.
    for name in (
        "POCKETCORE_EXECUTOR",
        "POCKETCORE_MAX_CONCURRENCY",
        "POCKETCORE_DISABLE_PLUGIN_AUTOLOAD",
        "POCKETCORE_PLUGINS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
