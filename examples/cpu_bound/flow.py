"""A CPU-bound batch: the same ``ParallelBatchNode`` run with each kind of executor.

Each of the 8 items counts the steps of the Collatz sequences of 60,000
numbers, in pure Python: from 0.7 to 1 s of work that holds the GIL the whole
time. Run it from the repository root (``pocketcore-dask`` installed)::

    python -m examples.cpu_bound.flow
    CPU_ITEMS=4 CPU_SPAN=10000 CPU_REPEAT=1 python -m examples.cpu_bound.flow  # smaller

and it prints the wall time of each run (the best of ``CPU_REPEAT``, default
2) and its speed-up over ``sequential``:

* ``sequential``: one item after another, in this process;
* ``asyncio``: the items on 8 worker threads of this process, which the GIL
  lets run only one at a time;
* ``dask``: the items on a ``LocalCluster`` of 2 worker processes with one
  thread each, first started by the run itself (the process's cluster, closed
  before each such run so that every one starts it), then
  already running and warmed up by an earlier tiny run, as a cluster you
  connect to would be.

Worker processes re-import the main module, so the code that starts the runs
sits under ``if __name__ == "__main__"``, as for any multiprocessing program.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pocketcore

ITEMS = int(os.environ.get("CPU_ITEMS", "8"))
SPAN = int(os.environ.get("CPU_SPAN", "60000"))
#: Each run is repeated and the best time kept: the machine may be shared.
REPEAT = int(os.environ.get("CPU_REPEAT", "2"))
WORKERS = 2


def collatz_steps(n: int) -> int:
    """How many steps the Collatz sequence of ``n`` takes to reach 1."""
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


class CollatzSteps(pocketcore.ParallelBatchNode):
    """Item ``i``: the total Collatz steps of the numbers ``i * span + 1`` to ``(i + 1) * span``."""

    def prep(self, shared: dict[str, Any]) -> list[range]:
        span = shared.get("span", SPAN)
        return [range(i * span + 1, (i + 1) * span + 1) for i in range(shared.get("items", ITEMS))]

    def exec(self, numbers: range) -> int:
        return sum(collatz_steps(n) for n in numbers)

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: list[int]) -> None:
        shared["steps"] = exec_res


def timed(executor: Any, **shared: Any) -> tuple[float, list[int]]:
    """Run the batch with ``executor``; return the wall time and the per-item results."""
    start = time.perf_counter()
    pocketcore.run(CollatzSteps(), shared, executor=executor)
    return time.perf_counter() - start, shared["steps"]


def main() -> int:
    """Run the batch with each executor and print the wall times and speed-ups."""
    from distributed import LocalCluster

    import pocketcore_dask
    from pocketcore_dask import DaskExecutor

    print(
        f"{ITEMS} items of pure-Python work ({SPAN:,} Collatz sequences each), "
        f"{len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"best of {REPEAT} runs\n"
    )
    print(f"{'executor':<44} {'wall time':>9} {'speed-up':>9}")
    rows: list[tuple[str, float, list[int]]] = []

    def row(label: str, executor: Any, cold: bool = False) -> None:
        def once() -> tuple[float, list[int]]:
            if cold:  # runs reuse the process's LocalCluster: close it, so this one starts it
                pocketcore_dask.shutdown()
            return timed(executor)

        seconds, steps = min(once() for _ in range(REPEAT))
        base = rows[0][1] if rows else seconds
        rows.append((label, seconds, steps))
        print(f"{label:<44} {seconds:>8.2f}s {base / seconds:>8.2f}x", flush=True)

    row("sequential", "sequential")
    row(f"asyncio ({ITEMS} threads, one GIL)", "asyncio")
    row(
        f"dask, LocalCluster of {WORKERS} started by the run",
        DaskExecutor(n_workers=WORKERS, threads_per_worker=1),
        cold=True,
    )
    pocketcore_dask.shutdown()
    with LocalCluster(  # type: ignore[no-untyped-call]  # distributed is not annotated
        n_workers=WORKERS, threads_per_worker=1, dashboard_address="127.0.0.1:0"
    ) as cluster:
        running = DaskExecutor(cluster.scheduler_address)
        # Like a cluster that has served runs before: its workers have already
        # imported pocketcore and this module.
        timed(running, items=WORKERS * 2, span=10)
        row(f"dask, LocalCluster of {WORKERS} already running", running)
    if any(steps != rows[0][2] for _, _, steps in rows):
        print("different results!")
        return 1
    print(f"\ntotal Collatz steps: {sum(rows[0][2]):,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
