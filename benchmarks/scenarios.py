"""The benchmark scenarios, as groups of contenders measured side by side.

pocketcore is always driven through its public API, as a user would: a sync
flow with ``flow.run(shared)``, an async flow or node with
``await x.run_async(shared)`` inside an event loop started the way
``pocketcore.run`` starts it, the executor and limit given with the node's
``executor=`` / ``max_concurrency=`` keywords. Times are taken inside the
running loop, so loop start-up is not part of any figure.
"""

from __future__ import annotations

import importlib.util
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pocketflow  # type: ignore[import-untyped]

import pocketcore

from . import cache
from . import workloads as w
from .harness import Contender, Group, Row

#: The performance targets (at most, as a median ratio pocketcore / reference).
STEP_TARGET = 0.5
ASYNCIO_TARGET = 1.1
TRIO_TARGET = 1.2
BOUNDED_TARGET = 1.5
LATENCY_TARGET = 1.25
MEMORY_TARGET = 0.1
PACED_TARGET = 1.05  # and no faster than 0.95: checked in the group's notes
LIMITER_TARGET = 1.2
#: The uvloop executor against raw ``asyncio.gather`` on asyncio's default loop.
UVLOOP_FANOUT_TARGET = 0.75
#: The uvloop executor's latency-bound batch against the ideal (one item's delay).
UVLOOP_LATENCY_TARGET = 1.15


@dataclass(frozen=True)
class Sizes:
    """How big and how often: ``FULL`` for the real run, ``QUICK`` for a smoke run."""

    chain: int
    chain_runs: int
    loop_steps: int
    loop_runs: int
    fanout: tuple[int, ...]
    anyio_at: int
    items_per_sample: int
    sequential_items: int
    bounded_items: int
    bounded_sizes: tuple[int, ...]
    latency_items: int
    memory_items: int
    langgraph_items: int
    repeats: int
    repeats_cheap: int
    repeats_large: int
    repeats_memory: int
    repeats_langgraph: int
    # A sample of a million unbounded items takes half a minute on each side.
    repeats_huge: int = 2
    bounded_limit: int = 64
    memory_limit: int = 100
    paced_items: int = 200
    paced_rate: float = 100.0
    repeats_paced: int = 5  # a sample takes 2 s, and the ratio barely moves
    uvloop_items: int = 10_000
    cache_items: int = 10_000


FULL = Sizes(
    chain=1000,
    chain_runs=20,
    loop_steps=10_000,
    loop_runs=2,
    fanout=(1_000, 10_000, 100_000, 1_000_000),
    anyio_at=10_000,
    items_per_sample=10_000,
    sequential_items=10_000,
    bounded_items=10_000,
    bounded_sizes=(1_000, 10_000, 100_000, 1_000_000),
    latency_items=1000,
    memory_items=100_000,
    langgraph_items=10_000,
    repeats=9,
    repeats_cheap=11,
    repeats_large=4,
    repeats_memory=2,
    repeats_langgraph=3,
)

QUICK = Sizes(
    chain=1000,
    chain_runs=3,
    loop_steps=2_000,
    loop_runs=1,
    fanout=(1_000, 10_000),
    anyio_at=10_000,
    items_per_sample=5_000,
    sequential_items=2_000,
    bounded_items=5_000,
    bounded_sizes=(1_000, 5_000),
    latency_items=1000,
    memory_items=10_000,
    langgraph_items=300,
    repeats=3,
    repeats_cheap=3,
    repeats_large=3,
    repeats_memory=1,
    repeats_langgraph=1,
    repeats_paced=2,
)


def _n(n: int) -> str:
    """1000 -> '1e3'."""
    exp = len(str(n)) - 1
    return f"1e{exp}" if n == 10**exp else f"{n:,}"


# --- node steps --------------------------------------------------------------------------


def sync_steps(s: Sizes) -> list[Group]:
    pc_flow, pc_nodes = w.chain(pocketcore.Flow, w.PcStep, s.chain)
    pf_flow, _ = w.chain(pocketflow.Flow, w.PfStep, s.chain)

    def bare_chain() -> None:
        shared: w.Shared = {}
        for node in pc_nodes:
            p = node.prep(shared)
            e = node.exec(p)
            node.post(shared, p, e)

    units = s.chain * s.chain_runs
    chain_group = Group(
        key="sync-chain",
        section="node steps",
        scenario=f"sync Flow, chain of {s.chain} nodes",
        kind="time",
        unit="step",
        contenders=[
            Contender(
                "pc",
                "pocketcore",
                partial(w.sync_timed, lambda: pc_flow.run({}), s.chain_runs),
                units,
            ),
            Contender(
                "pf",
                "PocketFlow",
                partial(w.sync_timed, lambda: pf_flow.run({}), s.chain_runs),
                units,
            ),
            Contender(
                "bare",
                "bare prep/exec/post loop",
                partial(w.sync_timed, bare_chain, s.chain_runs),
                units,
            ),
        ],
        rows=[Row("pc", "pf", STEP_TARGET), Row("pc", "bare")],
        repeats=s.repeats_cheap,
    )

    steps = s.loop_steps
    pc_loop, pc_node = w.self_loop(pocketcore.Flow, w.PcLoop, w.PcStep)
    pf_loop, _ = w.self_loop(pocketflow.Flow, w.PfLoop, w.PfStep)

    def bare_loop() -> None:
        shared: w.Shared = {"n": 0, "stop": steps}
        node = pc_node
        while True:
            p = node.prep(shared)
            e = node.exec(p)
            if node.post(shared, p, e) != "again":
                break

    units = steps * s.loop_runs
    loop_group = Group(
        key="sync-loop",
        section="node steps",
        scenario=f"sync Flow, self-loop x {steps}",
        kind="time",
        unit="step",
        contenders=[
            Contender(
                "pc",
                "pocketcore",
                partial(w.sync_timed, partial(w.run_loop, pc_loop, steps), s.loop_runs),
                units,
            ),
            Contender(
                "pf",
                "PocketFlow",
                partial(w.sync_timed, partial(w.run_loop, pf_loop, steps), s.loop_runs),
                units,
            ),
            Contender(
                "bare",
                "bare prep/exec/post loop",
                partial(w.sync_timed, bare_loop, s.loop_runs),
                units,
            ),
        ],
        rows=[Row("pc", "pf", STEP_TARGET), Row("pc", "bare")],
        repeats=s.repeats_cheap,
    )
    return [chain_group, loop_group]


def async_steps(s: Sizes) -> list[Group]:
    pc_flow, pc_nodes = w.chain(pocketcore.AsyncFlow, w.PcAStep, s.chain)
    pf_flow, _ = w.chain(pocketflow.AsyncFlow, w.PfAStep, s.chain)

    async def bare_chain() -> None:
        shared: w.Shared = {}
        for node in pc_nodes:
            p = await node.prep_async(shared)
            e = await node.exec_async(p)
            await node.post_async(shared, p, e)

    def on_asyncio(body: w.Body, times: int) -> Callable[[], float]:
        return partial(w.on_backend, "asyncio", w.timed, body, times)

    units = s.chain * s.chain_runs
    chain_group = Group(
        key="async-chain",
        section="node steps",
        scenario=f"AsyncFlow, chain of {s.chain} nodes (asyncio)",
        kind="time",
        unit="step",
        contenders=[
            Contender(
                "pc", "pocketcore", on_asyncio(lambda: pc_flow.run_async({}), s.chain_runs), units
            ),
            Contender(
                "pf", "PocketFlow", on_asyncio(lambda: pf_flow.run_async({}), s.chain_runs), units
            ),
            Contender(
                "bare",
                "bare await prep/exec/post loop",
                on_asyncio(bare_chain, s.chain_runs),
                units,
            ),
        ],
        rows=[Row("pc", "pf", STEP_TARGET), Row("pc", "bare")],
        repeats=s.repeats_cheap,
    )

    steps = s.loop_steps
    pc_loop, pc_node = w.self_loop(pocketcore.AsyncFlow, w.PcALoop, w.PcAStep)
    pf_loop, _ = w.self_loop(pocketflow.AsyncFlow, w.PfALoop, w.PfAStep)

    async def bare_loop() -> None:
        shared: w.Shared = {"n": 0, "stop": steps}
        node = pc_node
        while True:
            p = await node.prep_async(shared)
            e = await node.exec_async(p)
            if await node.post_async(shared, p, e) != "again":
                break

    units = steps * s.loop_runs
    loop_group = Group(
        key="async-loop",
        section="node steps",
        scenario=f"AsyncFlow, self-loop x {steps} (asyncio)",
        kind="time",
        unit="step",
        contenders=[
            Contender(
                "pc",
                "pocketcore",
                on_asyncio(partial(w.run_loop_async, pc_loop, steps), s.loop_runs),
                units,
            ),
            Contender(
                "pf",
                "PocketFlow",
                on_asyncio(partial(w.run_loop_async, pf_loop, steps), s.loop_runs),
                units,
            ),
            Contender(
                "bare", "bare await prep/exec/post loop", on_asyncio(bare_loop, s.loop_runs), units
            ),
        ],
        rows=[Row("pc", "pf", STEP_TARGET), Row("pc", "bare")],
        repeats=s.repeats_cheap,
    )
    return [chain_group, loop_group]


# --- fan-out -----------------------------------------------------------------------------


_batch = w.batch


def _timed_on(backend: str, body: w.Body, times: int) -> Callable[[], float]:
    return partial(w.on_backend, backend, w.timed, body, times)


def _unbounded_group(s: Sizes, backend: str, n: int) -> Group:
    times = max(1, s.items_per_sample // n)
    units = n * times
    items = range(n)

    # The smaller sizes ran first and warmed everything up; a 1e5 sample takes seconds.
    warmup = n < 100_000

    def c(key: str, label: str, body: w.Body) -> Contender:
        return Contender(key, label, _timed_on(backend, body, times), units, warmup)

    if backend == "asyncio":
        contenders = [
            c("pc", "pocketcore", _batch(w.PcAsyncioItem(executor="asyncio"), n)),
            c("raw", "raw asyncio.gather", partial(w.raw_gather, w.asyncio_work, items)),
            c("pf", "PocketFlow", _batch(w.PfAsyncioItem(), n)),
        ]
        rows = [Row("pc", "raw", ASYNCIO_TARGET), Row("pc", "pf")]
        work = w.asyncio_work
    else:
        contenders = [
            c("pc", "pocketcore", _batch(w.PcTrioItem(executor="trio"), n)),
            c("raw", "raw trio nursery", partial(w.raw_nursery, w.trio_work, items)),
        ]
        rows = [Row("pc", "raw", TRIO_TARGET)]
        work = w.trio_work
    if n == s.anyio_at:
        contenders.append(c("anyio", "anyio task group", partial(w.anyio_task_group, work, items)))
        rows.append(Row("pc", "anyio"))
    return Group(
        key=f"unbounded-{backend}-{_n(n)}",
        section=f"unbounded fan-out, executor {backend}, each item await sleep(0)",
        scenario=f"{_n(n)} items",
        kind="time",
        unit="item",
        contenders=contenders,
        rows=rows,
        repeats=_repeats(s, n),
    )


def _repeats(s: Sizes, n: int) -> int:
    """Fewer repeats for the big fan-outs, whose samples take seconds."""
    if n >= 1_000_000:
        return s.repeats_huge
    return s.repeats_large if n >= 100_000 else s.repeats


def unbounded(s: Sizes) -> list[Group]:
    groups = [_unbounded_group(s, b, n) for b in ("asyncio", "trio") for n in s.fanout]

    # sequential executor: one item at a time (PocketFlow's equivalent is AsyncBatchNode)
    n = s.sequential_items
    times = max(1, s.items_per_sample // n)
    units = n * times
    groups.append(
        Group(
            key=f"sequential-asyncio-{_n(n)}",
            section="executor sequential (one item at a time), each item await sleep(0)",
            scenario=f"{_n(n)} items, on asyncio",
            kind="time",
            unit="item",
            contenders=[
                Contender(
                    "pc",
                    "pocketcore",
                    _timed_on("asyncio", _batch(w.PcAsyncioItem(executor="sequential"), n), times),
                    units,
                ),
                Contender(
                    "bare",
                    "bare await loop",
                    _timed_on(
                        "asyncio", partial(w.raw_sequential, w.asyncio_work, range(n)), times
                    ),
                    units,
                ),
                Contender(
                    "pf",
                    "PocketFlow AsyncBatchNode",
                    _timed_on("asyncio", _batch(w.PfAsyncioSeqItem(), n), times),
                    units,
                ),
            ],
            rows=[Row("pc", "bare"), Row("pc", "pf")],
            repeats=s.repeats_cheap,
        )
    )
    return groups


def _bounded_group(s: Sizes, backend: str, n: int) -> Group:
    limit = s.bounded_limit
    times = max(1, s.items_per_sample // n)
    units = n * times
    node_cls = w.PcAsyncioItem if backend == "asyncio" else w.PcTrioItem
    pool = (
        partial(w.asyncio_pool, w.asyncio_work)
        if backend == "asyncio"
        else partial(w.trio_pool, w.trio_work)
    )
    node = node_cls(executor=backend, max_concurrency=limit)
    return Group(
        key=f"bounded-{backend}-{_n(n)}",
        section=f"bounded fan-out, limit {limit}, each item await sleep(0)",
        scenario=f"executor {backend}, {_n(n)} items",
        kind="time",
        unit="item",
        contenders=[
            Contender("pc", "pocketcore", _timed_on(backend, _batch(node, n), times), units),
            Contender(
                "pool",
                f"{limit} {backend} worker tasks",
                _timed_on(backend, partial(pool, range(n), limit), times),
                units,
            ),
        ],
        rows=[Row("pc", "pool", BOUNDED_TARGET)],
        repeats=s.repeats_cheap if n <= 10_000 else _repeats(s, n),
    )


def bounded(s: Sizes) -> list[Group]:
    return [_bounded_group(s, b, n) for b in ("asyncio", "trio") for n in s.bounded_sizes]


def _floor_vs_ideal(raw: str) -> Callable[[Group], list[str]]:
    def notes(g: Group) -> list[str]:
        floor = g.contender(raw)
        ideal = g.contender("ideal").median()
        ratios = sorted(x / ideal for x in floor.figures())
        return [
            f"latency-bound, {g.scenario}: {floor.label} itself takes "
            f"{statistics.median(ratios):.2f} x the ideal (the floor on this machine)."
        ]

    return notes


def latency(s: Sizes) -> list[Group]:
    n = s.latency_items
    ms = round(w.LATENCY * 1000)
    section = f"latency-bound: {n} items x {ms} ms sleep, unbounded"

    def ideal() -> float:
        return w.LATENCY

    return [
        Group(
            key="latency-asyncio",
            section=section,
            scenario="executor asyncio",
            kind="time",
            unit="batch",
            contenders=[
                Contender(
                    "pc",
                    "pocketcore",
                    _timed_on("asyncio", _batch(w.PcAsyncioSleep(executor="asyncio"), n), 1),
                    1,
                ),
                Contender("ideal", f"ideal ({ms} ms)", ideal, 1, warmup=False),
                Contender(
                    "gather",
                    "raw asyncio.gather",
                    _timed_on("asyncio", partial(w.raw_gather, w.asyncio_sleep_work, range(n)), 1),
                    1,
                ),
                Contender(
                    "pf", "PocketFlow", _timed_on("asyncio", _batch(w.PfAsyncioSleep(), n), 1), 1
                ),
            ],
            rows=[Row("pc", "ideal", LATENCY_TARGET), Row("pc", "gather"), Row("pc", "pf")],
            repeats=s.repeats,
            notes=_floor_vs_ideal("gather"),
        ),
        Group(
            key="latency-trio",
            section=section,
            scenario="executor trio",
            kind="time",
            unit="batch",
            contenders=[
                Contender(
                    "pc",
                    "pocketcore",
                    _timed_on("trio", _batch(w.PcTrioSleep(executor="trio"), n), 1),
                    1,
                ),
                Contender("ideal", f"ideal ({ms} ms)", ideal, 1, warmup=False),
                Contender(
                    "nursery",
                    "raw trio nursery",
                    _timed_on("trio", partial(w.raw_nursery, w.trio_sleep_work, range(n)), 1),
                    1,
                ),
            ],
            rows=[Row("pc", "ideal", LATENCY_TARGET), Row("pc", "nursery")],
            repeats=s.repeats,
            notes=_floor_vs_ideal("nursery"),
        ),
    ]


# --- per-item controls ------------------------------------------------------------------


def _within(low: float, high: float) -> Callable[[Group], list[str]]:
    def notes(g: Group) -> list[str]:
        ratios = sorted(
            x / y for x, y in zip(g.subject.samples, g.contender("ideal").samples, strict=True)
        )
        median = statistics.median(ratios)
        verdict = "within" if low <= median <= high else "OUTSIDE"
        return [
            f"paced, {g.scenario}: wall time / ideal = {median:.3f} (range {ratios[0]:.3f} - "
            f"{ratios[-1]:.3f}), {verdict} {low:g} - {high:g}."
        ]

    return notes


def _paced_group(s: Sizes, backend: str) -> Group:
    n, rate = s.paced_items, s.paced_rate
    ideal_seconds = n / rate
    node_cls = w.PcAsyncioItem if backend == "asyncio" else w.PcTrioItem
    node = node_cls(executor=backend, max_per_second=rate)
    contenders = [
        Contender("pc", "pocketcore", _timed_on(backend, _batch(node, n), 1), 1),
        Contender("ideal", f"ideal ({ideal_seconds:g} s)", lambda: ideal_seconds, 1, warmup=False),
    ]
    rows = [Row("pc", "ideal", PACED_TARGET)]
    if backend == "asyncio":
        raw = partial(w.raw_paced_gather, w.asyncio_work, range(n), rate)
        contenders.append(
            Contender("raw", "raw gather, item i sleeps i/rate", _timed_on(backend, raw, 1), 1)
        )
        rows.append(Row("pc", "raw"))
    return Group(
        key=f"paced-{backend}",
        section=f"max_per_second: {n} items at max_per_second={rate:g}, each item await sleep(0)",
        scenario=f"executor {backend}",
        kind="time",
        unit="batch",
        contenders=contenders,
        rows=rows,
        repeats=s.repeats_paced,
        notes=_within(1 - (PACED_TARGET - 1), PACED_TARGET),
    )


def _limiter_group(s: Sizes, backend: str) -> Group:
    n = s.bounded_items
    times = max(1, s.items_per_sample // n)
    node_cls = w.PcAsyncioItem if backend == "asyncio" else w.PcTrioItem
    # One limiter for every sample, as a module-level limiter would be; it never limits.
    limiter = pocketcore.Limiter(max_concurrency=10**6, name="never")

    def c(key: str, label: str, node: Any) -> Contender:
        return Contender(key, label, _timed_on(backend, _batch(node, n), times), n * times)

    return Group(
        key=f"limiter-{backend}",
        section="a limiter that never limits: per-item overhead, each item await sleep(0)",
        scenario=f"executor {backend}, {_n(n)} items",
        kind="time",
        unit="item",
        contenders=[
            c(
                "pc",
                "pocketcore, limiter=Limiter(max_concurrency=10**6)",
                node_cls(executor=backend, limiter=limiter),
            ),
            c("none", "pocketcore, no limiter", node_cls(executor=backend)),
        ],
        rows=[Row("pc", "none", LIMITER_TARGET)],
        repeats=s.repeats_cheap,
    )


def controls(s: Sizes) -> list[Group]:
    return [
        *(_paced_group(s, b) for b in ("asyncio", "trio")),
        *(_limiter_group(s, b) for b in ("asyncio", "trio")),
    ]


# --- memory ------------------------------------------------------------------------------


def _peak_on(backend: str, body: w.Body) -> Callable[[], float]:
    return partial(w.on_backend, backend, w.traced_peak, body)


def _marginal(small: int, large: int) -> Callable[[Group], list[str]]:
    def notes(g: Group) -> list[str]:
        lo = g.contender("pc_small").median(totals=True)
        hi = g.contender("pc_lim").median(totals=True)
        extra = (hi - lo) / (large - small)
        return [
            f"{g.scenario}: with the limit, each extra item beyond {_n(small)} adds "
            f"{extra:.1f} B to the peak ({_n(small)}: {lo / 2**10:.0f} KiB, "
            f"{_n(large)}: {hi / 2**10:.0f} KiB); one slot of the results list is 8 B."
        ]

    return notes


def _cached_node(item_cls: type[Any], backend: str, limit: int, path: str) -> Any:
    return item_cls(executor=backend, max_concurrency=limit, cache=path)


def memory(s: Sizes) -> list[Group]:
    n, limit = s.memory_items, s.memory_limit
    small = n // 10
    section = f"peak traced memory per item (tracemalloc), {_n(n)} items"
    groups = []
    for backend in ("asyncio", "trio"):
        if backend == "asyncio":
            item_cls: type[Any] = w.PcAsyncioItem
            raw_label, raw = "raw asyncio.gather", partial(w.raw_gather, w.asyncio_work, range(n))
            pool = partial(w.asyncio_pool, w.asyncio_work, range(n), limit)
        else:
            item_cls = w.PcTrioItem
            raw_label, raw = "raw trio nursery", partial(w.raw_nursery, w.trio_work, range(n))
            pool = partial(w.trio_pool, w.trio_work, range(n), limit)
        contenders = [
            Contender(
                "pc_unb",
                "pocketcore unbounded",
                _peak_on(backend, _batch(item_cls(executor=backend), n)),
                n,
                warmup=False,
            ),
            Contender(
                "pc_lim",
                f"pocketcore limit {limit}",
                _peak_on(backend, _batch(item_cls(executor=backend, max_concurrency=limit), n)),
                n,
                warmup=False,
            ),
            Contender(
                "pc_small",
                f"pocketcore limit {limit}, {_n(small)} items",
                _peak_on(backend, _batch(item_cls(executor=backend, max_concurrency=limit), small)),
                small,
                warmup=False,
            ),
            Contender(
                "pc_cache",
                f"pocketcore limit {limit}, cache on (every item a miss, written)",
                _peak_on(
                    backend,
                    cache.fresh_cache_batch(partial(_cached_node, item_cls, backend, limit), n),
                ),
                n,
                warmup=False,
            ),
            Contender("raw", f"{raw_label}", _peak_on(backend, raw), n, warmup=False),
            Contender(
                "pool", f"{limit} {backend} worker tasks", _peak_on(backend, pool), n, warmup=False
            ),
        ]
        rows = [
            Row("pc_unb", "raw", label=f"executor {backend}, unbounded"),
        ]
        if backend == "asyncio":
            contenders.append(
                Contender(
                    "pf",
                    "PocketFlow unbounded",
                    _peak_on(backend, _batch(w.PfAsyncioItem(), n)),
                    n,
                    warmup=False,
                )
            )
            rows.append(Row("pc_unb", "pf", label=f"executor {backend}, unbounded"))
        rows += [
            Row("pc_lim", "pc_unb", MEMORY_TARGET, label=f"executor {backend}, limit {limit}"),
            Row("pc_lim", "pool", label=f"executor {backend}, limit {limit}"),
            Row(
                "pc_cache",
                "pc_unb",
                MEMORY_TARGET,
                label=f"executor {backend}, limit {limit}, cache on",
            ),
            Row("pc_cache", "pc_lim", label=f"executor {backend}, limit {limit}, cache on"),
            Row(
                "pc_lim",
                "pc_small",
                label=f"executor {backend}, limit {limit}: whole peak, {_n(n)} vs {_n(small)}",
                totals=True,
            ),
        ]
        groups.append(
            Group(
                key=f"memory-{backend}",
                section=section,
                scenario=f"executor {backend}",
                kind="memory",
                unit="item",
                contenders=contenders,
                rows=rows,
                repeats=s.repeats_memory,
                notes=_marginal(small, n),
            )
        )
    return groups


# --- uvloop (optional) -------------------------------------------------------------------


def uvloop_available() -> bool:
    """uvloop and the uvloop executor are both installed (never on Windows)."""
    return all(importlib.util.find_spec(m) is not None for m in ("uvloop", "pocketcore_uvloop"))


def uvloop_groups(s: Sizes) -> list[Group]:
    """The uvloop executor on uvloop, against raw gather on the default loop and on uvloop."""
    n = s.uvloop_items
    times = max(1, s.items_per_sample // n)
    units = n * times
    fanout = Group(
        key=f"uvloop-fanout-{_n(n)}",
        section="executor uvloop, unbounded fan-out, each item await sleep(0)",
        scenario=f"{_n(n)} items",
        kind="time",
        unit="item",
        contenders=[
            Contender(
                "pc",
                "pocketcore uvloop",
                _timed_on("uvloop", _batch(w.PcAsyncioItem(executor="uvloop"), n), times),
                units,
            ),
            Contender(
                "raw",
                "raw gather, default loop",
                _timed_on("asyncio", partial(w.raw_gather, w.asyncio_work, range(n)), times),
                units,
            ),
            Contender(
                "raw-uv",
                "raw gather, uvloop",
                _timed_on("uvloop", partial(w.raw_gather, w.asyncio_work, range(n)), times),
                units,
            ),
            Contender(
                "pc-asyncio",
                "pocketcore asyncio, default loop",
                _timed_on("asyncio", _batch(w.PcAsyncioItem(executor="asyncio"), n), times),
                units,
            ),
        ],
        rows=[
            Row("pc", "raw", UVLOOP_FANOUT_TARGET),
            Row("pc", "raw-uv"),
            Row("pc", "pc-asyncio"),
        ],
        repeats=s.repeats,
    )
    m = s.latency_items
    ms = round(w.LATENCY * 1000)

    def ideal() -> float:
        return w.LATENCY

    latency = Group(
        key="uvloop-latency",
        section=f"executor uvloop, latency-bound: {m} items x {ms} ms sleep, unbounded",
        scenario="executor uvloop",
        kind="time",
        unit="batch",
        contenders=[
            Contender(
                "pc",
                "pocketcore uvloop",
                _timed_on("uvloop", _batch(w.PcAsyncioSleep(executor="uvloop"), m), 1),
                1,
            ),
            Contender("ideal", f"ideal ({ms} ms)", ideal, 1, warmup=False),
            Contender(
                "gather",
                "raw gather, default loop",
                _timed_on("asyncio", partial(w.raw_gather, w.asyncio_sleep_work, range(m)), 1),
                1,
            ),
            Contender(
                "gather-uv",
                "raw gather, uvloop",
                _timed_on("uvloop", partial(w.raw_gather, w.asyncio_sleep_work, range(m)), 1),
                1,
            ),
        ],
        rows=[
            Row("pc", "ideal", UVLOOP_LATENCY_TARGET),
            Row("pc", "gather"),
            Row("pc", "gather-uv"),
        ],
        repeats=s.repeats,
        notes=_floor_vs_ideal("gather-uv"),
    )
    return [fanout, latency]


# --- LangGraph (optional) ----------------------------------------------------------------


def langgraph_available() -> bool:
    return importlib.util.find_spec("langgraph") is not None


def _langgraph_sample(n: int) -> Callable[[], float]:
    # LangGraph is imported on first use, so that its many objects do not change when the
    # garbage collector runs during the groups measured before it.
    body: w.Body | None = None

    def sample() -> float:
        nonlocal body
        if body is None:
            from .langgraph_fanout import send_fanout

            body = send_fanout(n)
        return w.on_backend("asyncio", w.timed, body, 1)

    return sample


def langgraph(s: Sizes) -> list[Group]:
    n = s.langgraph_items
    return [
        Group(
            key="langgraph",
            section="LangGraph (optional)",
            scenario=f"Send fan-out, {_n(n)} items, each await sleep(0)",
            kind="time",
            unit="item",
            contenders=[
                Contender(
                    "pc",
                    "pocketcore (asyncio)",
                    _timed_on("asyncio", _batch(w.PcAsyncioItem(executor="asyncio"), n), 1),
                    n,
                ),
                Contender("lg", "LangGraph Send", _langgraph_sample(n), n, warmup=False),
            ],
            rows=[Row("pc", "lg")],
            repeats=s.repeats_langgraph,
        )
    ]


def all_groups(s: Sizes, with_langgraph: bool) -> list[Group]:
    groups = [
        *sync_steps(s),
        *async_steps(s),
        *unbounded(s),
        *bounded(s),
        *latency(s),
        *controls(s),
        *cache.cache_groups(s.cache_items, s.repeats),
        *memory(s),
    ]
    if uvloop_available():
        groups += uvloop_groups(s)
    if with_langgraph:
        groups += langgraph(s)
    return groups
