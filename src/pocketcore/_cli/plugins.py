"""``pocketcore plugins``: every loaded plugin, what it contributes, and what failed to load."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pocketcore._core.plugin import ReportsState
from pocketcore._plugins.entries import NodeEntry
from pocketcore._plugins.registry import Registry

from .listing import class_path, collect, listing_command, problems, split_dist, with_problems
from .output import table, write
from .targets import load_registry

__all__ = ["add_command"]


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry = load_registry(report=False)
    executors, nodes, errors = collect(registry)
    plugins = [
        {
            "name": name,
            **split_dist(registry.distributions.get(name)),
            "executors": sorted(e.name for e in executors.values() if e.plugin == name),
            "nodes": sorted(n.name for n in nodes.values() if n.plugin == name),
            "hooks": sorted(c.name for c in registry.pm.get_hookcallers(plugin) or []),
            **_state(plugin),
        }
        for name, plugin in sorted(registry.pm.list_name_plugin(), key=lambda np: np[0])
    ]
    from_entry_points = [
        n for n in sorted(nodes.values(), key=lambda n: n.name) if n.plugin is None
    ]
    if args.json:
        entry_points = [
            {"name": n.name, "class": class_path(n.cls), **split_dist(n.distribution)}
            for n in from_entry_points
        ]
        report = {"plugins": plugins, "node_entry_points": entry_points}
        write(json.dumps({**report, **problems(registry, errors)}, indent=2))
    else:
        out = _plugin_lines(plugins, registry) + _entry_point_lines(from_entry_points)
        write(with_problems(out, registry, errors))
    return 0


def _plugin_lines(plugins: list[dict[str, Any]], registry: Registry) -> list[str]:
    out: list[str] = []
    for p in plugins:
        out.append(f"{p['name']}  ({registry.distributions.get(p['name'], 'registered in code')})")
        out += [
            f"  {key + ':':<10} {', '.join(p[key])}"
            for key in ("executors", "nodes", "hooks")
            if p[key]
        ]
        state = p.get("state")
        if state is not None:
            shown = "active" if state["active"] else "inactive"
            out.append(
                f"  {'state:':<10} {shown}" + (f": {state['reason']}" if state["reason"] else "")
            )
    return out or ["no plugins loaded"]


def _state(plugin: object) -> dict[str, Any]:
    """What a plugin that declares its state says of it now (nothing for the others)."""
    if not isinstance(plugin, ReportsState):
        return {}
    state = plugin.plugin_state()
    return {"state": {"active": state.active, "reason": state.reason}}


def _entry_point_lines(entries: list[NodeEntry]) -> list[str]:
    if not entries:
        return []
    rows = [[n.name, class_path(n.cls), n.distribution] for n in entries]
    lines = table(["name", "class", "distribution"], rows)
    return ["", "node classes from the entry-point group pocketcore.nodes:"] + [
        "  " + line for line in lines
    ]


add_command = listing_command(
    "plugins",
    _cmd_plugins,
    help="list loaded plugins, what they contribute, and failures",
    description=(
        "List every loaded plugin with its distribution and version, the executors "
        "and nodes it contributes, the hooks it implements and, for a plugin that "
        "says so, whether it is active now (and if not, why); node classes declared "
        "in the pocketcore.nodes entry-point group; and entry points that failed to "
        "load, with the reason."
    ),
)
