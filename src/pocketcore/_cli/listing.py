"""What the listings (``plugins``, ``executors``, ``nodes``) share: collecting and problems."""

from __future__ import annotations

import warnings
from typing import Any

from pocketcore._core.errors import PluginWarning, PocketcoreError
from pocketcore._plugins.registry import ExecutorEntry, NodeEntry, Registry

__all__ = ["class_path", "collect", "problems", "split_dist", "with_problems"]


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
