"""The real command in a subprocess: the console script and ``python -m pocketcore``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .support import COMMANDS, EXECUTORS, shell


@pytest.mark.parametrize("command", COMMANDS)
def test_end_to_end_run(command: list[str], flows: Path, tmp_path: Path) -> None:
    # stderr is a pipe here, not a terminal: no progress output at all.
    done = shell(command, "run", "flows.py:double", "--output", "json", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["shared"]["out"] == [2, 4, 6]
    done = shell(command, "run", "flows.py:greet", "--set", "who=script", cwd=tmp_path)
    assert done.returncode == 0
    assert '"greeting": "hello script"' in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_end_to_end_errors(command: list[str], flows: Path, tmp_path: Path) -> None:
    cases = [
        (["run", "missing.py:flow"], 2, "pocketcore: error: no such file: 'missing.py'\n"),
        (["run", "flows.py:greet", "--shared", "nope"], 2, "pocketcore: error: --shared is"),
        (["run", "flows.py:greet", "--executor", "nope"], 2, "pocketcore: error: unknown exec"),
        (["run", "flows.py:number"], 2, "pocketcore: error: 'flows.py:number' is not a node"),
        (["run", "no_module:x"], 2, "pocketcore: error: cannot import module 'no_module'"),
        (["run", "flows.py:boom"], 1, "ValueError: boom\n"),
        (["demo", "nope"], 2, "pocketcore: error: unknown executor(s) 'nope'"),
    ]
    for args, status, message in cases:
        done = shell(command, *args, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (status, ""), args
        assert done.stderr.startswith(message), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_end_to_end_plugins(command: list[str], tmp_path: Path) -> None:
    done = shell(command, "plugins", "--json", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    plugins = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    for name in EXECUTORS:
        assert plugins[name]["distribution"] == f"pocketcore-{name}"
        assert plugins[name]["version"]
        assert plugins[name]["executors"] == [name]
        assert plugins[name]["hooks"] == ["pocketcore_register_executors"]


def test_end_to_end_plugin_selection(tmp_path: Path) -> None:
    done = shell(
        [sys.executable, "-m", "pocketcore"],
        "executors",
        cwd=tmp_path,
        POCKETCORE_PLUGINS="trio,ghost",
    )
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "name  backend  plugin  distribution",
        "trio  trio     trio    pocketcore-trio 0.1.0",
        "",
        "plugin 'ghost' (distribution ?) failed to load: not installed "
        "(named in POCKETCORE_PLUGINS)",
        "(only the plugins named in POCKETCORE_PLUGINS were loaded)",
    ]


def test_end_to_end_rich_is_imported_only_for_a_bar(flows: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pocketcore._cli import main; "
        "code = main(['run', 'flows.py:double', '--quiet']); "
        "print('rich' in sys.modules, code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.stdout.splitlines()[-1] == "False 0"
