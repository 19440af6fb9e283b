"""Where the dask executor pays off: CPU-bound batches on sequential, threads and dask.

``python -m benchmarks.dask_scale`` (from the repository root, with
``pocketcore-dask`` installed) prints two tables for docs/choosing-an-executor.md:

1. ``examples/cpu_bound``: the 8-item Collatz batch with ``sequential``, then with
   ``dask`` on the process's ``LocalCluster`` of 2 worker processes: its first
   run, which starts the cluster, and then warm runs on the same cluster (best
   of ``--repeat``). The speed-up is sequential / dask.
2. A grid of items x item duration x dask workers: each item spins the CPU in
   pure Python for a calibrated amount of work, and the batch runs with
   ``sequential``, ``asyncio`` (a ``ParallelBatchNode`` on threads, which share
   one GIL) and ``dask`` (warm). Wall times, best of ``--repeat``.

Not part of ``python -m benchmarks``: it starts clusters of processes and takes
a minute or two.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pocketcore
import pocketcore_dask
from examples.cpu_bound.flow import CollatzSteps
from pocketcore_dask import DaskExecutor


def spin(n: int) -> int:
    """``n`` turns of a pure-Python loop: CPU work that holds the GIL."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate() -> int:
    n = 200_000
    best = min(_time(lambda: spin(n)) for _ in range(3))
    return max(1, int(n / (best * 1000)))


def _time(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class Spin(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return [shared["spins"]] * shared["items"]

    def exec(self, spins: int) -> int:
        return spin(spins)

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["done"] = len(exec_res)


def best(call: Callable[[], Any], repeat: int) -> float:
    return min(_time(call) for _ in range(repeat))


def cpu_bound(repeat: int) -> None:
    workers = 2
    dask = DaskExecutor(n_workers=workers, threads_per_worker=1)

    def run(executor: Any) -> None:
        pocketcore.run(CollatzSteps(), {}, executor=executor)

    print(f"examples/cpu_bound: 8 items, {workers} dask worker processes, best of {repeat}")
    sequential = best(lambda: run("sequential"), repeat)
    pocketcore_dask.shutdown()
    first = _time(lambda: run(dask))  # starts the process's LocalCluster
    warm = best(lambda: run(dask), repeat)
    for label, seconds in [
        ("sequential", sequential),
        ("dask, first run (starts the cluster)", first),
        ("dask, warm cluster (later runs)", warm),
    ]:
        print(f"  {label:<42} {seconds:6.2f}s  {sequential / seconds:.2f}x")
    print(f"  start-up of the cluster, about: {first - warm:.2f}s\n")


def grid(repeat: int, items: list[int], durations: list[float], workers: list[int]) -> None:
    spins_per_ms = calibrate()
    print(
        f"grid: each item spins the CPU for about the given time; wall time, best of {repeat}; "
        "speed-up over sequential"
    )
    header = f"  {'items':>5} {'item':>7} {'sequential':>10} {'threads':>14}"
    header += "".join(f" {f'dask x{w}':>14}" for w in workers)
    print(header)
    for n in items:
        for ms in durations:
            shared = {"items": n, "spins": int(spins_per_ms * ms)}

            def run(executor: Any, shared: dict[str, Any] = shared) -> None:
                pocketcore.run(Spin(), dict(shared), executor=executor)

            seq = best(lambda: run("sequential"), repeat)
            cells = [f"{seq:9.3f}s"]
            threads = best(lambda: run("asyncio"), repeat)
            cells.append(f"{threads:7.3f}s {seq / threads:4.2f}x")
            for w in workers:
                dask = DaskExecutor(n_workers=w, threads_per_worker=1)
                run(dask)  # starts (or reshapes) the cluster, and warms it
                t = best(partial(run, dask), repeat)
                cells.append(f"{t:7.3f}s {seq / t:4.2f}x")
            print(f"  {n:>5} {ms:>5g}ms " + " ".join(f"{c:>10}" for c in cells))
    pocketcore_dask.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_scale")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--items", default="8,64")
    parser.add_argument("--durations", default="1,10,100,500", help="milliseconds per item")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()
    print(f"{len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.2f}\n")
    cpu_bound(args.repeat)
    if not args.skip_grid:
        grid(
            args.repeat,
            [int(x) for x in args.items.split(",")],
            [float(x) for x in args.durations.split(",")],
            [int(x) for x in args.workers.split(",")],
        )


if __name__ == "__main__":
    main()
