"""``python -m benchmarks``: run the side-by-side benchmarks and print one table.

Run from the repository root. ``--quick`` is a smoke run (under a minute);
``--json PATH`` writes every sample and result; ``--markdown PATH`` writes the
table as Markdown (for docs/performance.md); ``--charts DIR`` draws the SVG
charts of docs/performance.md (``--from-json PATH`` draws them from a saved
run instead of measuring); ``--only`` picks groups by key;
``--profile`` runs pocketcore's side of the selected groups under cProfile
instead of benchmarking.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import fnmatch
import gc
import importlib.metadata
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import charts, scenarios
from .harness import Group, render_table, render_targets

DISTRIBUTIONS = (
    "pocketcore",
    "pocketcore-sequential",
    "pocketcore-asyncio",
    "pocketcore-trio",
    "pocketcore-uvloop",
    "pocketflow",
    "anyio",
    "trio",
    "sniffio",
    "uvloop",
    "langgraph",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}{' (modified)' if dirty else ''}"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    versions = {dist: _version(dist) for dist in DISTRIBUTIONS}
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "versions": versions,
        "git": _git(),
    }


def render_header(info: dict[str, Any], mode: str, repeats: int | None) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v is not None)
    missing = [k for k, v in info["versions"].items() if v is None]
    lines = [
        f"pocketcore benchmarks ({mode} run{f', {repeats} repeats' if repeats else ''})",
        f"  date      {info['date']}",
        f"  python    {info['python']} on {info['platform']}",
        f"  cpu       {info['cpu']}, {info['cpu_count']} CPUs ({info['cpus_usable']} usable)",
        f"  versions  {versions}",
    ]
    if missing:
        lines.append(f"  missing   {', '.join(missing)}")
    if info["git"]:
        lines.append(f"  commit    {info['git']}")
    lines.append(
        "  figures are medians over interleaved repeats; ratio = median over repeats of "
        "pocketcore / reference (lower is better for pocketcore)"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="pocketcore vs PocketFlow, raw asyncio/trio/anyio and LangGraph, side by side.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", type=Path, help="write samples and results as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown here")
    parser.add_argument(
        "--charts", type=Path, metavar="DIR", help="draw the SVG charts of the run into DIR"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="measure nothing: draw the --charts of a run saved with --json",
    )
    parser.add_argument("--repeats", type=int, help="repeats for every group (override)")
    parser.add_argument(
        "--only",
        help="comma-separated prefixes or glob patterns of group keys to run (see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    parser.add_argument(
        "--gc",
        choices=("on", "off"),
        default="on",
        help="'off' disables the cyclic garbage collector while measuring (diagnosis only: "
        "the default 'on' is what users get)",
    )
    parser.add_argument(
        "--no-langgraph", action="store_true", help="skip LangGraph even when installed"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of benchmarking, profile pocketcore's side of the selected groups",
    )
    parser.add_argument("--profile-lines", type=int, default=25, help="entries per profile")
    return parser.parse_args(argv)


def select(groups: list[Group], only: str | None) -> list[Group]:
    if not only:
        return groups
    wanted = [part.strip() for part in only.split(",") if part.strip()]
    return [
        g
        for g in groups
        if any(g.key.startswith(part) or fnmatch.fnmatchcase(g.key, part) for part in wanted)
    ]


def _short(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def _own(path: str) -> bool:
    """Code of pocketcore or one of its plugins (not the benchmark, not the peers)."""
    return any(part.startswith("pocketcore") for part in Path(path).parts[:-1])


def gc_time(sample: Callable[[], float]) -> tuple[float, float, list[int]]:
    """Run ``sample`` once: wall time, time spent collecting garbage, collections per generation."""
    gc.collect()
    spent = 0.0
    began = 0.0
    counts = [0, 0, 0]

    def callback(phase: str, info: dict[str, int]) -> None:
        nonlocal spent, began
        if phase == "start":
            began = time.perf_counter()
        else:
            spent += time.perf_counter() - began
            counts[info["generation"]] += 1

    gc.callbacks.append(callback)
    start = time.perf_counter()
    try:
        sample()
    finally:
        wall = time.perf_counter() - start
        gc.callbacks.remove(callback)
    return wall, spent, counts


def profile(groups: list[Group], lines: int) -> None:
    """cProfile pocketcore's side of each group: the hottest functions, by own time.

    cProfile adds a fixed cost to every call, so shares are indicative only.
    """
    for g in groups:
        subject = g.subject
        subject.sample()  # warm-up, outside the profile
        prof = cProfile.Profile()
        prof.enable()
        subject.sample()
        prof.disable()
        stats: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        total = sum(tt for _cc, _nc, tt, _ct, _callers in stats.values()) or 1.0
        own = sum(tt for (f, _l, _n), (_cc, _nc, tt, _ct, _c) in stats.items() if _own(f))
        print(f"\n=== {g.key}: {g.scenario}, {subject.label}, {subject.units} {g.unit}s")
        print(
            f"    total {total * 1e3:.1f} ms under cProfile; in pocketcore and its plugins' "
            f"own code: {own / total:.0%}; per {g.unit}: {total / subject.units * 1e6:.2f} us"
        )
        print(f"    {'own ms':>8} {'cum ms':>8} {'calls':>8}  function")
        ranked = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:lines]
        for (filename, lineno, name), (_cc, nc, tt, ct, _callers) in ranked:
            mark = "*" if _own(filename) else " "
            where = f"{_short(filename)}:{lineno}" if lineno else filename
            print(f"  {mark} {tt * 1e3:8.2f} {ct * 1e3:8.2f} {nc:8d}  {name} ({where})")
        print("    (* = pocketcore or a plugin)")
        print("    garbage collection, measured without cProfile (wall includes loop start-up):")
        for c in g.contenders:
            if g.kind != "time" or c.key == "ideal":
                continue
            wall, spent, counts = gc_time(c.sample)
            print(
                f"      {c.label:32} {spent * 1e3:8.1f} ms of {wall * 1e3:8.1f} ms "
                f"({spent / wall:4.0%}), collections gen0/1/2 = {counts[0]}/{counts[1]}/{counts[2]}"
            )


def _sizes(args: argparse.Namespace) -> scenarios.Sizes:
    """The scenario sizes for ``--quick`` or a full run, with ``--repeats`` applied to all."""
    sizes = scenarios.QUICK if args.quick else scenarios.FULL
    if not args.repeats:
        return sizes
    return replace(
        sizes,
        repeats=args.repeats,
        repeats_cheap=args.repeats,
        repeats_large=args.repeats,
        repeats_memory=args.repeats,
        repeats_langgraph=args.repeats,
        repeats_paced=args.repeats,
    )


def _measure(groups: list[Group], *, gc_off: bool) -> float:
    """Run every group, reporting progress on stderr; the seconds it took."""
    started = time.perf_counter()
    if gc_off:
        gc.disable()
    try:
        for g in groups:
            print(f"measuring {g.key} ...", file=sys.stderr, flush=True)
            g.run(lambda msg: print(msg, file=sys.stderr, flush=True))
    finally:
        gc.enable()
    return time.perf_counter() - started


def _notes(groups: list[Group], *, lg_installed: bool, no_langgraph: bool) -> list[str]:
    notes = [line for g in groups if g.notes for line in g.notes(g)]
    if not scenarios.uvloop_available():
        notes.append("uvloop: skipped (uvloop or pocketcore-uvloop not installed).")
    if not lg_installed:
        notes.append("LangGraph: skipped (not installed).")
    elif no_langgraph:
        notes.append("LangGraph: skipped (--no-langgraph).")
    notes.append(
        "PocketFlow has no equivalent for the trio executor nor for a concurrency limit "
        "(its AsyncParallelBatchNode is asyncio.gather of every item)."
    )
    return notes


def _report(groups: list[Group], notes: list[str], elapsed: float) -> tuple[int, int]:
    """Print the table, the notes and the targets; how many targets were met and missed."""
    print()
    print(render_table(groups))
    print()
    print("Notes:")
    for line in notes:
        print(f"  - {line}")
    summary, met, missed = render_targets(groups)
    print()
    print(f"Performance targets: {met} met, {missed} missed")
    if summary:
        print(summary)
    print(f"\n(measured in {elapsed:.0f} s)")
    return met, missed


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


def _run(
    args: argparse.Namespace, groups: list[Group], sizes: scenarios.Sizes, *, lg_installed: bool
) -> None:
    """Benchmark ``groups``: header, measurements, report, and the files asked for."""
    with_lg = lg_installed and not args.no_langgraph
    info = machine_info()
    mode = "quick" if args.quick else "full"
    if args.gc == "off":
        mode += ", garbage collector off"
    print(render_header(info, mode, args.repeats), flush=True)
    elapsed = _measure(groups, gc_off=args.gc == "off")
    notes = _notes(groups, lg_installed=lg_installed, no_langgraph=args.no_langgraph)
    met, missed = _report(groups, notes, elapsed)

    payload = {
        "machine": info,
        "mode": mode,
        "gc": args.gc,
        "sizes": sizes.__dict__,
        "langgraph": "measured" if with_lg else "skipped",
        "elapsed_seconds": elapsed,
        "groups": [g.to_json() for g in groups],
        "notes": notes,
        "targets": {"met": met, "missed": missed},
    }
    if args.json:
        _write(args.json, json.dumps(payload, indent=2) + "\n")
    if args.charts:
        for path in charts.write(payload, args.charts):
            print(f"wrote {path}")
    if args.markdown:
        _write(args.markdown, render_table(groups, markdown=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        if not args.charts:
            sys.exit("--from-json draws charts: give --charts DIR")
        return charts.main([str(args.from_json), str(args.charts)])
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    sizes = _sizes(args)
    lg_installed = scenarios.langgraph_available()
    with_lg = lg_installed and not args.no_langgraph
    groups = select(scenarios.all_groups(sizes, with_lg), args.only)
    if args.list:
        for g in groups:
            print(f"{g.key:28} {g.section}: {g.scenario}")
    elif args.profile:
        profile(groups, args.profile_lines)
    else:
        _run(args, groups, sizes, lg_installed=lg_installed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
