"""Ray beside dask, in one run: where each pays off, and what each costs per item.

``python -m benchmarks.remote_executors`` (from the repository root, with
``pocketcore-dask`` and ``pocketcore-ray`` installed) prints two tables for
docs/choosing-an-executor.md, each executor on this machine's CPUs (2 dask
worker processes with a thread each; a local Ray instance of 2 CPUs):

1. ``examples/cpu_bound`` (8 items of about a second of pure-Python work):
   ``sequential``, then ``dask`` and ``ray`` on a warm cluster (started and
   warmed by an earlier run of the process). Speed-up = sequential / executor.
2. Per-item overhead: a batch of ``--items`` trivial items (each returns its
   input), through pocketcore on ``ray`` and on ``dask``, against Ray's own
   ``ray.get([f.remote(i) for i in ...])`` and dask's own
   ``client.gather(client.map(f, ...))`` on the same clusters. The ratio to
   raw Ray is what the ``ray`` executor adds.

Wall times, best of ``--repeat``, in one process, so that the machine's load
weighs on every row alike. Not part of ``python -m benchmarks``: it starts
clusters of processes and takes a minute or two.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import pocketcore
import pocketcore_dask
import pocketcore_ray
from examples.cpu_bound.flow import CollatzSteps
from pocketcore_dask import DaskExecutor
from pocketcore_ray import RayExecutor

CPUS = 2


def _time(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def best(call: Callable[[], Any], repeat: int) -> float:
    return min(_time(call) for _ in range(repeat))


def same(i: int) -> int:
    """A trivial item: returns its input."""
    return i


class Trivial(pocketcore.ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> Any:
        return range(shared["items"])

    def exec(self, i: int) -> int:
        return i

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


def cpu_bound(repeat: int, dask: DaskExecutor, ray: RayExecutor) -> None:
    def run(executor: Any) -> None:
        pocketcore.run(CollatzSteps(), {}, executor=executor)

    print(f"examples/cpu_bound: 8 items, {CPUS} CPUs for each engine, best of {repeat}")
    sequential = best(lambda: run("sequential"), repeat)
    rows = [("sequential", sequential)]
    for label, executor in (("dask, warm LocalCluster", dask), ("ray, warm local instance", ray)):
        run(executor)  # starts and warms the cluster
        rows.append((label, best(lambda executor=executor: run(executor), repeat)))
    for label, seconds in rows:
        print(f"  {label:<34} {seconds:6.2f}s  {sequential / seconds:.2f}x")
    print()


def overhead(repeat: int, items: int, dask: DaskExecutor, ray: RayExecutor) -> None:
    import ray as ray_module
    from distributed import Client

    from pocketcore_dask import _cluster as dask_cluster

    def through(executor: Any) -> Callable[[], None]:
        def run() -> None:
            shared: dict[str, Any] = {"items": items}
            pocketcore.run(Trivial(), shared, executor=executor)
            assert shared["results"] == list(range(items))

        return run

    remote_same = ray_module.remote(max_retries=0)(same)

    def raw_ray() -> None:
        assert ray_module.get([remote_same.remote(i) for i in range(items)]) == list(range(items))

    cluster = dask_cluster.get(dask.settings())  # the warm one the executor runs on
    try:
        with Client(cluster.scheduler_address, set_as_default=False) as client:

            def raw_dask() -> None:
                futures = client.map(same, range(items), pure=False)
                assert client.gather(futures) == list(range(items))

            rows = [
                ("ray.get([f.remote(i) ...]) (raw Ray)", raw_ray),
                ("pocketcore, ray executor", through(ray)),
                ("client.gather(client.map(f, ...)) (raw dask)", raw_dask),
                ("pocketcore, dask executor", through(dask)),
            ]
            for _, run in rows:
                run()  # warm: the workers have imported and run it once
            times = {label: best(run, repeat) for label, run in rows}
    finally:
        dask_cluster.release(cluster)
    raw = times["ray.get([f.remote(i) ...]) (raw Ray)"]
    print(f"per-item overhead: {items} trivial items, best of {repeat}")
    print(f"  {'':<46} {'wall':>8} {'per item':>10} {'x raw Ray':>10}")
    for label, seconds in times.items():
        per_item = seconds / items * 1e6
        print(f"  {label:<46} {seconds:7.3f}s {per_item:8.0f}us {seconds / raw:9.2f}x")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.remote_executors")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--skip-cpu-bound", action="store_true")
    args = parser.parse_args()
    print(f"{len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.2f}\n")
    dask = DaskExecutor(n_workers=CPUS, threads_per_worker=1)
    ray = RayExecutor(num_cpus=CPUS)
    try:
        if not args.skip_cpu_bound:
            cpu_bound(args.repeat, dask, ray)
        overhead(args.repeat, args.items, dask, ray)
    finally:
        pocketcore_dask.shutdown()
        pocketcore_ray.shutdown()


if __name__ == "__main__":
    main()
