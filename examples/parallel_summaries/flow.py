"""Summarise every text file of a folder with a slow (simulated) LLM call.

The same flow is built twice: with an ``AsyncBatchNode``, which summarises
the files one after another, and with an ``AsyncParallelBatchNode``, which
hands them to the run's executor. Run it with each installed executor::

    python -m examples.parallel_summaries.flow                  # every executor
    python -m examples.parallel_summaries.flow asyncio trio     # just these
    SUMMARY_DELAY=0.2 python -m examples.parallel_summaries.flow

The LLM is simulated by ``anyio.sleep(SUMMARY_DELAY)`` so the demo needs no
network and runs on asyncio and trio alike.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

import pocketcore

TEXTS = Path(__file__).parent / "texts"
DELAY = float(os.environ.get("SUMMARY_DELAY", "0.5"))


async def call_llm(prompt: str) -> str:
    """Pretend to be an LLM: wait, then answer with the prompt's first sentence."""
    await anyio.sleep(DELAY)
    return prompt.split(". ")[0].strip().rstrip(".") + "."


class LoadTexts(pocketcore.Node):
    """Read every ``*.txt`` file of ``shared["folder"]`` into ``shared["texts"]``."""

    def prep(self, shared: dict[str, Any]) -> Path:
        return Path(shared.get("folder", TEXTS))

    def exec(self, folder: Path) -> list[tuple[str, str]]:
        return [(p.stem, p.read_text()) for p in sorted(folder.glob("*.txt"))]

    def post(self, shared: dict[str, Any], prep_res: Path, exec_res: Any) -> None:
        shared["texts"] = exec_res


class _Summarize:
    """The summary step, shared by the one-by-one and the parallel node."""

    async def prep_async(self, shared: dict[str, Any]) -> list[tuple[str, str]]:
        return list(shared["texts"])

    async def exec_async(self, item: tuple[str, str]) -> tuple[str, str]:
        name, text = item
        return name, await call_llm(text)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["summaries"] = dict(exec_res)


class SummarizeOneByOne(_Summarize, pocketcore.AsyncBatchNode):
    """Summarise the files one after another."""


class SummarizeAll(_Summarize, pocketcore.AsyncParallelBatchNode):
    """Summarise the files concurrently, through the run's executor."""


def build_flow(*, parallel: bool = True) -> pocketcore.AsyncFlow:
    """Load the texts, then summarise them (in parallel unless ``parallel=False``)."""
    load = LoadTexts()
    load >> (SummarizeAll() if parallel else SummarizeOneByOne())
    return pocketcore.AsyncFlow(start=load)


def timed(flow: pocketcore.AsyncFlow, executor: str) -> tuple[float, dict[str, Any]]:
    """Run ``flow`` with ``executor``; return the wall time and the shared store."""
    shared: dict[str, Any] = {"folder": TEXTS}
    start = time.perf_counter()
    pocketcore.run(flow, shared, executor=executor)
    return time.perf_counter() - start, shared


def main(argv: list[str]) -> int:
    """Run the flow with each executor named in ``argv`` (default: all installed)."""
    executors = pocketcore.get_registry().executors
    installed = sorted(executors)
    # Remote executors (dask) only on request: a cluster per run is no demo.
    wanted = argv or [n for n in installed if not getattr(executors[n].executor, "remote", False)]
    unknown = [name for name in wanted if name not in installed]
    if unknown:
        print(f"unknown executor(s): {', '.join(unknown)}; installed: {', '.join(installed)}")
        return 2
    n = len(list(TEXTS.glob("*.txt")))
    print(f"{n} files, simulated LLM call of {DELAY:.2f} s each\n")
    print(f"{'node':<24} {'executor':<12} {'wall time':>10} {'x delay':>8}")
    rows = [("AsyncBatchNode", name, build_flow(parallel=False)) for name in wanted[:1]]
    rows += [("AsyncParallelBatchNode", name, build_flow()) for name in wanted]
    summaries = None
    for node, name, flow in rows:
        seconds, shared = timed(flow, name)
        print(f"{node:<24} {name:<12} {seconds:>9.2f}s {seconds / DELAY:>7.1f}x")
        if summaries is not None and shared["summaries"] != summaries:
            print("  (different summaries than the first run!)")
            return 1
        summaries = shared["summaries"]
    print("\nsummaries:")
    for name, summary in (summaries or {}).items():
        print(f"  {name:<12} {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
