"""The argument parser: the program's options, and one subcommand per command module."""

from __future__ import annotations

import argparse
from importlib import metadata
from typing import Any

from . import cache, demo, executors, graph, nodes, plugins, run
from .output import PROG, error

__all__ = ["build_parser"]

# In the order ``pocketcore --help`` lists them; each module adds its own subcommand.
COMMANDS = (run, cache, graph, plugins, executors, nodes, demo)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> Any:
        """Report a usage error in one line and exit with status 2."""
        error(f"{message} (see '{self.prog} --help')")
        raise SystemExit(2)


class CommandListFormatter(argparse.HelpFormatter):
    """Lines up the command list: argparse measures subcommands without their indent."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog)
        self._action_max_length = len("    executors")


def _version() -> str:
    try:
        return metadata.version("pocketcore")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``pocketcore`` parser; each command's parser sets ``handler`` and ``command_parser``."""
    parser = Parser(
        prog=PROG,
        description=(
            "Run pocketcore flows, draw them, and list the installed executors, nodes and plugins."
        ),
        epilog="Run 'pocketcore COMMAND --help' for the options of a command.",
        formatter_class=CommandListFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True
    for command in COMMANDS:
        command.add_command(commands)
    return parser
