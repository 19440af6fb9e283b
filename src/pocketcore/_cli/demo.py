"""``pocketcore demo``: the demo flows with every executor, and a table of wall times."""

from __future__ import annotations

import argparse
import time
from typing import Any

from pocketcore._core.executor import Executor, capabilities
from pocketcore._front.run import run as run_flow
from pocketcore._nodes.flows import AsyncParallelBatchFlow, ParallelBatchFlow
from pocketcore._nodes.nodes import AsyncParallelBatchNode, BaseNode
from pocketcore._plugins.registry import Registry

from .demos import DEMOS, Demo
from .errors import BadInput, TargetFailed, user_code
from .targets import load_registry

__all__ = ["add_command", "skip_reason", "start_up"]

DESCRIPTION = """\
Run the demo flows (parallel summaries, image filter) one by one and in parallel with
each installed executor, remote ones included, and print a table of wall times. Each
executor is started before the table with a one-item batch (its event loop, and the
local cluster of the dask executor), and that start-up is printed on its own line, so a
row is the time of its batch alone. The flows ship with
pocketcore, so the demo runs from any folder. Each demo that an
executor cannot run is listed as skipped, with the reason (a remote executor cannot
fan out a batch flow, whose passes share the store of this process). SUMMARY_DELAY and
FILTER_DELAY set the simulated slow call's seconds (0.5 and 0.25).
"""

HEADER = f"{'example':<20} {'class':<24} {'executor':<12} {'wall time':>10} {'x delay':>8}"

FOOTER = (
    "\nx delay: wall time / the simulated slow call's delay. One by one it grows with "
    "the\nnumber of items; in parallel it stays near 1, or near items / threads on a "
    "cluster\nwith fewer worker threads than items. Start-up (an event loop, a local "
    "cluster) is\ntimed apart, above the table."
)


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command to ``commands``."""
    p = commands.add_parser(
        "demo",
        help="run the demos with each executor and print their wall times",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "executors",
        metavar="EXECUTOR",
        nargs="*",
        help="the executors to run with (default: every installed one)",
    )
    p.set_defaults(handler=_cmd_demo, command_parser=p)


def skip_reason(flow: BaseNode, executor: Executor) -> str | None:
    """Why ``executor`` cannot run ``flow``, or ``None`` when it can."""
    if capabilities(executor, warn=False).remote and isinstance(
        flow, (AsyncParallelBatchFlow, ParallelBatchFlow)
    ):
        return (
            "a remote executor cannot fan out a batch flow: its passes read and write "
            "the shared store, which stays in this process"
        )
    return None


def _cmd_demo(args: argparse.Namespace) -> int:
    registry = load_registry()
    wanted = _executors(registry, args.executors)
    delays = [_delay(demo) for demo in DEMOS]
    started = ", ".join(f"{name} {start_up(name):.2f}s" for name in wanted)
    print(f"started, not counted below: {started}\n", flush=True)
    print(HEADER)
    for demo, delay in zip(DEMOS, delays, strict=True):
        _run_demo(demo, delay, wanted, registry)
    print(FOOTER)
    return 0


class _Echo(AsyncParallelBatchNode):
    """One item, returned as it is: what it takes to start an executor."""

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return [0]

    async def exec_async(self, prep_res: Any) -> Any:
        return prep_res


def start_up(executor: str) -> float:
    """Run a one-item batch on ``executor``, so that what it starts once is not timed.

    That is its event loop (importing trio, say), and whatever else it keeps
    for the process: the ``LocalCluster`` of the dask executor, its worker
    processes and what they import. The demo's rows then time the batches.

    Returns:
        The seconds it took.
    """
    start = time.perf_counter()
    with user_code():
        run_flow(_Echo(), {}, executor=executor)
    return time.perf_counter() - start


def _executors(registry: Registry, named: list[str]) -> list[str]:
    installed = sorted(registry.executors)
    unknown = [name for name in named if name not in installed]
    if unknown:
        raise BadInput(
            f"unknown executor(s) {', '.join(map(repr, unknown))}; installed executors: "
            f"{registry.describe_choices()}"
        )
    wanted = named or installed
    if not wanted:
        raise BadInput("no executors installed")
    return wanted


def _delay(demo: Demo) -> float:
    try:
        return demo.delay()
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _run_demo(demo: Demo, delay: float, wanted: list[str], registry: Registry) -> None:
    """Print a row for the one-by-one run, then one per executor for the parallel runs."""
    runs = [(False, wanted[0]), *((True, name) for name in wanted)]
    first: list[object] = []  # the first run's result, once there is one
    for parallel, name in runs:
        flow = demo.build(parallel)
        row = f"{demo.title:<20} {demo.kinds[parallel]:<24} {name:<12}"
        reason = skip_reason(flow, registry.executors[name].executor)
        if reason is not None:
            print(f"{row} {'skipped':>10}  ({reason})", flush=True)
            continue
        seconds, shared = _timed(flow, demo.start(delay), name)
        result = demo.result(shared)
        if first and result != first[0]:
            raise TargetFailed(
                RuntimeError(f"{demo.title} with {name} gave other results than the first run")
            )
        first[:] = [result]
        ratio = f"{seconds / delay:>7.1f}x" if delay else f"{'-':>8}"
        print(f"{row} {seconds:>9.2f}s {ratio}", flush=True)


def _timed(flow: BaseNode, shared: dict[str, Any], executor: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    with user_code():
        run_flow(flow, shared, executor=executor)
    return time.perf_counter() - start, shared
