"""The program itself: help for every command, the version, usage errors in one line."""

from __future__ import annotations

import pytest

from .support import call

# --- help and usage ---------------------------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--help")
    assert code == 0
    for command in ("run", "cache", "graph", "plugins", "executors", "nodes", "demo"):
        assert f"\n    {command} " in out


@pytest.mark.parametrize(
    "command",
    ["run", "cache", "cache info", "cache clear", "graph", "plugins", "executors", "nodes", "demo"],
)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, err = call(capsys, *command.split(), "--help")
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: pocketcore {command}")


def test_run_help_documents_targets_and_set(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = call(capsys, "run", "--help")
    for option in (
        "--shared",
        "--executor",
        "--max-concurrency",
        "--cache",
        "--no-cache",
        "--set",
        "--output",
        "--quiet",
    ):
        assert option in out
    assert "package.module:object" in out
    assert "parsed as JSON" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert call(capsys, "--version") == (0, "pocketcore 0.1.0\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: COMMAND (see 'pocketcore --help')"),
        (["fly"], "argument COMMAND: invalid choice: 'fly'"),
        (["run"], "the following arguments are required: TARGET (see 'pocketcore run --help')"),
        (["run", "x.py:y", "--bogus"], "unrecognized arguments: --bogus (see 'pocketcore run"),
        (["run", "x.py:y", "--output", "xml"], "argument --output: invalid choice: 'xml'"),
        (["graph", "x.py:y", "--format", "dot"], "argument --format: invalid choice: 'dot'"),
        (
            ["cache"],
            "the following arguments are required: SUBCOMMAND (see 'pocketcore cache --help')",
        ),
        (
            ["cache", "info", "a.db", "b.db"],
            "unrecognized arguments: b.db (see 'pocketcore cache info",
        ),
        (["cache", "clear", "--node"], "argument --node: expected one argument"),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = call(capsys, *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"pocketcore: error: {message}")
    assert err.count("\n") == 1
