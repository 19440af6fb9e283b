"""``pocketcore nodes``: the registered node classes that flow files can name."""

from __future__ import annotations

import argparse
import json

from .listing import class_path, collect, problems, split_dist, with_problems
from .output import table, write
from .targets import load_registry

__all__ = ["add_command"]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``nodes`` command to ``commands``."""
    p = commands.add_parser(
        "nodes",
        help="list the node classes that can be named in flow files",
        description="List the registered node classes that flow files can name, with "
        "where each comes from.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=_cmd_nodes, command_parser=p)


def _cmd_nodes(args: argparse.Namespace) -> int:
    registry = load_registry(report=False)
    _, nodes, errors = collect(registry)
    entries = sorted(nodes.values(), key=lambda n: n.name)
    if args.json:
        rows = [
            {
                "name": n.name,
                "class": class_path(n.cls),
                "supplier": n.supplier,
                **split_dist(n.distribution),
            }
            for n in entries
        ]
        write(json.dumps({"nodes": rows, **problems(registry, errors)}, indent=2))
    else:
        # The distribution has a column of its own; "from" says only by which route.
        cells = [
            [n.name, class_path(n.cls), n.supplier.split(" of ")[0], n.distribution]
            for n in entries
        ]
        out = table(["name", "class", "from", "distribution"], cells) if entries else []
        write(with_problems(out or ["no nodes registered"], registry, errors))
    return 2 if errors else 0
