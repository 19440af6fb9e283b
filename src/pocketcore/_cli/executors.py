"""``pocketcore executors``: the executors that can be named, and who supplies each."""

from __future__ import annotations

import argparse
import json

from .listing import collect, problems, split_dist, with_problems
from .output import table, write
from .targets import load_registry

__all__ = ["add_command"]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``executors`` command to ``commands``."""
    p = commands.add_parser(
        "executors",
        help="list the executors that can be named",
        description="List the executors that can be named, with the plugin and "
        "distribution that supply each.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=_cmd_executors, command_parser=p)


def _cmd_executors(args: argparse.Namespace) -> int:
    registry = load_registry(report=False)
    executors, _, errors = collect(registry)
    entries = sorted(executors.values(), key=lambda e: e.name)
    if args.json:
        rows = [
            {
                "name": e.name,
                "backend": e.executor.backend,
                "plugin": e.plugin,
                **split_dist(registry.distributions.get(e.plugin)),
            }
            for e in entries
        ]
        write(json.dumps({"executors": rows, **problems(registry, errors)}, indent=2))
    else:
        cells = [
            [e.name, e.executor.backend or "any", e.plugin, registry.distributions.get(e.plugin)]
            for e in entries
        ]
        out = table(["name", "backend", "plugin", "distribution"], cells) if entries else []
        write(with_problems(out or ["no executors installed"], registry, errors))
    # A conflict between plugins makes every run fail: say so in the status too.
    return 2 if errors else 0
