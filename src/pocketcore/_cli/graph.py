"""``pocketcore graph``: print a flow as a Mermaid flowchart."""

from __future__ import annotations

import argparse
import sys

from pocketcore._front.graph import to_mermaid

from .targets import TARGET_HELP, load_registry, load_target

__all__ = ["add_command"]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``graph`` command to ``commands``."""
    p = commands.add_parser(
        "graph",
        help="print a flow as a Mermaid flowchart",
        description=(
            "Print a flow as a Mermaid flowchart: nodes with their class names, edges "
            "labelled with their actions (except 'default'), nested flows as subgraphs, "
            "batch nodes and flows marked, start nodes with a thick border. Loading a "
            "flow file or a Python TARGET imports the modules it names, so their code "
            "runs: draw only flows you trust, as you would run any Python code."
        ),
    )
    p.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    p.add_argument(
        "--format", choices=("mermaid",), default="mermaid", help="the output format (mermaid)"
    )
    p.set_defaults(handler=_cmd_graph, command_parser=p)


def _cmd_graph(args: argparse.Namespace) -> int:
    target = load_target(args.target, load_registry())
    sys.stdout.write(to_mermaid(target.node, names=target.names))
    return 0
