"""``pocketcore executors``: the executors that can be named, and who supplies each."""

from __future__ import annotations

import argparse

from .listing import collect, listing_command, split_dist, write_listing
from .targets import load_registry

__all__ = ["add_command"]


def _cmd_executors(args: argparse.Namespace) -> int:
    registry = load_registry(report=False)
    executors, _, errors = collect(registry)
    entries = sorted(executors.values(), key=lambda e: e.name)
    rows = [
        {
            "name": e.name,
            "backend": e.executor.backend,
            "plugin": e.plugin,
            **split_dist(registry.distributions.get(e.plugin)),
        }
        for e in entries
    ]
    cells = [
        [e.name, e.executor.backend or "any", e.plugin, registry.distributions.get(e.plugin)]
        for e in entries
    ]
    headers = ["name", "backend", "plugin", "distribution"]
    text = (headers, cells, "no executors installed")
    return write_listing(args, registry, errors, "executors", rows, text)


add_command = listing_command(
    "executors",
    _cmd_executors,
    help="list the executors that can be named",
    description="List the executors that can be named, with the plugin and "
    "distribution that supply each.",
)
