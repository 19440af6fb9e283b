"""Fixtures of the command-line tests: undoing what loading targets does, and test flows."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import FLOWS, REPO


@pytest.fixture(autouse=True)
def _restore_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Undo what loading targets does to sys.path and sys.modules.

    Modules of the test's files, and the repository's files loaded by path
    (as top-level modules named after the file, ``flow``), are dropped so the
    next test loads its own. Libraries imported meanwhile (trio, rich) stay.
    """
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        where = Path(getattr(sys.modules[name], "__file__", None) or "/")
        if where.is_relative_to(tmp_path) or ("." not in name and where.is_relative_to(REPO)):
            del sys.modules[name]


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """``flows.py`` in the test's folder (the working directory), holding :data:`FLOWS`."""
    path = tmp_path / "flows.py"
    path.write_text(FLOWS)
    return path
