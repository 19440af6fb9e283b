"""``pocketcore graph``: Mermaid output for Python targets, and its errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pocketcore._front.graph import to_mermaid

from .support import call

# --- graph -----------------------------------------------------------------------------------


def test_graph_prints_mermaid(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    code, out, err = call(capsys, "graph", f"{flows}:double")
    assert (code, err) == (0, "")
    module = sys.modules["flows"]
    assert out == to_mermaid(module.double)
    assert out.startswith("flowchart TD\n")
    assert "Double [parallel batch]" in out


def test_graph_errors_are_bad_input(capsys: pytest.CaptureFixture[str], flows: Path) -> None:
    code, out, err = call(capsys, "graph", f"{flows}:number")
    assert (code, out) == (2, "")
    assert err.startswith("pocketcore: error: ")
