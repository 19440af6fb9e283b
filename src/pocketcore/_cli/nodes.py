"""``pocketcore nodes``: the registered node classes that flow files can name."""

from __future__ import annotations

import argparse

from .listing import class_path, collect, listing_command, split_dist, write_listing
from .targets import load_registry

__all__ = ["add_command"]


def _cmd_nodes(args: argparse.Namespace) -> int:
    registry = load_registry(report=False)
    _, nodes, errors = collect(registry)
    entries = sorted(nodes.values(), key=lambda n: n.name)
    rows = [
        {
            "name": n.name,
            "class": class_path(n.cls),
            "supplier": n.supplier,
            **split_dist(n.distribution),
        }
        for n in entries
    ]
    # The distribution has a column of its own; "from" says only by which route.
    cells = [
        [n.name, class_path(n.cls), n.supplier.split(" of ")[0], n.distribution] for n in entries
    ]
    text = (["name", "class", "from", "distribution"], cells, "no nodes registered")
    return write_listing(args, registry, errors, "nodes", rows, text)


add_command = listing_command(
    "nodes",
    _cmd_nodes,
    help="list the node classes that can be named in flow files",
    description="List the registered node classes that flow files can name, with "
    "where each comes from.",
)
