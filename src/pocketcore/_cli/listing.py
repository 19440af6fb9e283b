"""What the listing commands (plugins, executors, nodes) share: options, collecting, problems."""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable
from typing import Any

from pocketcore._core.errors import PluginWarning, PocketcoreError
from pocketcore._plugins.entries import ExecutorEntry, NodeEntry
from pocketcore._plugins.registry import Registry

from .output import table, write

__all__ = [
    "class_path",
    "collect",
    "listing_command",
    "problems",
    "split_dist",
    "with_problems",
    "write_listing",
]


def listing_command(
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    help: str,  # argparse's own word for it
    description: str,
) -> Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]:
    """The ``add_command`` of listing command ``name``: text by default, ``--json`` on request."""

    def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        p = commands.add_parser(name, help=help, description=description)
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
        p.set_defaults(handler=handler, command_parser=p)

    add_command.__doc__ = f"Add the ``{name}`` command to ``commands``."
    return add_command


def split_dist(label: str | None) -> dict[str, str | None]:
    """``"name version"``, as the registry records a distribution, for JSON output."""
    if not label or label == "?":
        return {"distribution": None, "version": None}
    name, _, version = label.rpartition(" ")
    return (
        {"distribution": name, "version": version}
        if name
        else {"distribution": label, "version": None}
    )


def class_path(cls: type) -> str:
    """``module:Qual.Name`` of ``cls``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def collect(
    registry: Registry,
) -> tuple[dict[str, ExecutorEntry], dict[str, NodeEntry], list[str]]:
    """The executors and the nodes, with what went wrong collecting them.

    The listings are where one finds out what is broken, so a conflict
    between plugins is listed, not raised.
    """
    errors: list[str] = []
    executors: dict[str, ExecutorEntry] = {}
    nodes: dict[str, NodeEntry] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        try:
            executors = dict(registry.executors)
        except PocketcoreError as exc:  # e.g. two plugins registering one name
            errors.append(str(exc))
        try:
            nodes = dict(registry.nodes)
        except PocketcoreError as exc:
            errors.append(str(exc))
    return executors, nodes, errors


def problems(registry: Registry, errors: list[str]) -> dict[str, Any]:
    """The ``failures`` and ``errors`` members of a listing's JSON."""
    failures = [
        {
            "entry_point": f.entry_point,
            "group": f.group,
            **split_dist(f.distribution),
            "error": f.error,
        }
        for f in registry.failures
    ]
    return {"failures": failures, "errors": errors}


def with_problems(out: list[str], registry: Registry, errors: list[str]) -> str:
    """``out``, then a blank line and what failed to load (and why so little), if anything."""
    lines = [str(f) for f in registry.failures]
    lines += [f"error: {e}" for e in errors]
    note = registry.selection_note()
    if note is not None:
        lines.append(f"({note})")
    return "\n".join([*out, "", *lines] if lines else out)


def write_listing(
    args: argparse.Namespace,
    registry: Registry,
    errors: list[str],
    key: str,
    rows: list[dict[str, Any]],
    text: tuple[list[str], list[list[Any]], str],
) -> int:
    """Print a listing as JSON (``--json``: ``rows`` under ``key``) or as a table, with problems.

    ``text`` is the table's headers, its cells and what to say when it is
    empty. Returns the exit status: 2 when plugins conflict, which makes
    every run fail, else 0.
    """
    if args.json:
        write(json.dumps({key: rows, **problems(registry, errors)}, indent=2))
    else:
        headers, cells, empty = text
        out = table(headers, cells) if cells else []
        write(with_problems(out or [empty], registry, errors))
    return 2 if errors else 0
