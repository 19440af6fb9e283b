"""The result cache against real processes: killed with SIGKILL, and two sharing one file.

A script, written to a temporary folder, runs a parallel batch with
``cache=<tmp>/cache.db`` on the asyncio executor, the trio executor, or
worker threads (a ``ParallelBatchNode``). Each ``exec`` notes ``start i``
and ``end i`` (and its process id) in a side file, one ``O_APPEND`` write
each, around a short sleep. The test kills the script part-way, then:

* a *probe* run (whose ``exec`` raises, with ``on_error="collect"``) reads
  the file back: the items it finds are what the killed run had stored;
* the same script runs to completion: it computes exactly the items not
  stored, and its results equal those of an uninterrupted run without cache.

So every item's ``exec`` runs once across both runs, except those the kill
caught in flight: started and not ended, or ended in the instant between
``exec`` returning and its result being written. Those are at most the
batch's limit, and are counted.

In the killed run the items from ``GATE`` on wait forever, so a slow test
process can be late to kill it without the batch finishing first.

Two processes sharing one file run overlapping batches (items 0-199 and
100-299, 50 at a time) at the same instant, then a probe run must find
every item of the union, each value whole and right.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SIGKILL, process groups and /proc"
)

#: Items in the batch, at most this many at once, each sleeping DELAY s.
N, LIMIT = 80, 4
#: The killed run is killed once this many items have ended ...
KILL_AFTER = 20
#: ... and its items from this one on never end, so it cannot finish first.
GATE = 60
#: Generous bounds for a loaded machine (a run takes about a second).
PATIENCE = 90.0

SCRIPT = textwrap.dedent(
    '''
    """A cached parallel batch whose exec notes its start and end in a side file."""

    import json
    import os
    import sys
    import time

    import anyio

    import pocketcore

    MODE, KIND, SIDE, CACHE, OUT = sys.argv[1:6]
    FIRST, LAST, LIMIT, GATE = (int(a) for a in sys.argv[6:10])
    GO = sys.argv[10] if len(sys.argv) > 10 else None
    DELAY = 0.04


    def note(what, i):
        fd = os.open(SIDE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{what} {i} {os.getpid()}\\n".encode())
        finally:
            os.close(fd)


    def value(i):
        return {"item": i, "square": i * i, "word": "ab" * (i % 5), "pair": [i, -i]}


    class AsyncItems(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return list(range(FIRST, LAST))

        async def exec_async(self, i):
            if MODE == "probe":
                raise LookupError(i)
            note("start", i)
            await anyio.sleep(DELAY)
            if MODE == "hold" and i >= GATE:
                await anyio.sleep(3600)  # until killed
            note("end", i)
            return value(i)

        async def post_async(self, shared, prep_res, exec_res):
            shared["results"] = exec_res


    class ThreadItems(pocketcore.ParallelBatchNode):
        def prep(self, shared):
            return list(range(FIRST, LAST))

        def exec(self, i):
            if MODE == "probe":
                raise LookupError(i)
            note("start", i)
            time.sleep(DELAY)
            if MODE == "hold" and i >= GATE:
                time.sleep(3600)  # until killed
            note("end", i)
            return value(i)

        def post(self, shared, prep_res, exec_res):
            shared["results"] = exec_res


    def main():
        node = ThreadItems() if KIND == "threads" else AsyncItems()
        executor = "trio" if KIND == "trio" else "asyncio"
        if GO is not None:  # start together with another process
            open(OUT + ".ready", "w").close()
            while not os.path.exists(GO):
                time.sleep(0.01)
        shared = {}
        pocketcore.run(
            node,
            shared,
            executor=executor,
            max_concurrency=LIMIT,
            cache="off" if MODE == "plain" else CACHE,
            on_error="collect" if MODE == "probe" else "raise",
        )
        results = [None if isinstance(r, pocketcore.Failed) else r for r in shared["results"]]
        with open(OUT + ".part", "w") as f:
            json.dump(results, f)
        os.replace(OUT + ".part", OUT)


    if __name__ == "__main__":
        main()
    '''
)


def value(i: int) -> dict[str, Any]:
    """What the script's exec returns for item ``i`` (as JSON gives it back)."""
    return {"item": i, "square": i * i, "word": "ab" * (i % 5), "pair": [i, -i]}


class Batch:
    """The script in a temporary folder, and the runs of it a test makes."""

    def __init__(self, folder: Path, kind: str) -> None:
        self.folder, self.kind = folder, kind
        self.script = folder / "batch.py"
        self.script.write_text(SCRIPT)
        self.cache = folder / "cache.db"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_")}
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        mode: str,
        side: Path,
        out: Path,
        first: int = 0,
        last: int = N,
        *,
        limit: int = LIMIT,
        go: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start the script; its output goes to ``out`` with ``.stderr`` added.

        With ``go``, the script says it is ready (``out.ready``) and waits
        for that file before it runs its batch.
        """
        args = [mode, self.kind, str(side), str(self.cache), str(out)]
        args += [str(first), str(last), str(limit), str(GATE)]
        if go is not None:
            args.append(str(go))
        with open(f"{out}.stderr", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(self.script), *args],
                cwd=self.folder,
                env=self.env,
                stdout=err,
                stderr=err,
                start_new_session=True,  # a group of its own, for the cleanup below
            )
        self.started.append(proc)
        return proc

    def finish(self, proc: subprocess.Popen[bytes], out: Path) -> list[Any]:
        """Wait for a run to end; its results (the test fails with its output if it failed)."""
        code = proc.wait(timeout=PATIENCE)
        err = Path(f"{out}.stderr").read_text()
        assert code == 0, f"the {self.kind} run failed ({code}):\n{err}"
        assert "Traceback" not in err, err
        results: list[Any] = json.loads(out.read_text())
        return results

    def run(self, mode: str, side: Path, out: Path, first: int = 0, last: int = N) -> list[Any]:
        """Run the script to its end; its results."""
        return self.finish(self.start(mode, side, out, first, last), out)

    def cleanup(self) -> None:
        """Kill whatever of the runs is left (a failed test's), by their process groups."""
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def batch(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Batch]:
    made = Batch(tmp_path, request.param)
    try:
        yield made
    finally:
        made.cleanup()


def noted(side: Path) -> list[tuple[str, int, int]]:
    """The side file's lines: what (``start``/``end``), item, process id."""
    if not side.exists():
        return []
    lines = [line.split() for line in side.read_text().splitlines()]
    return [(what, int(i), int(pid)) for what, i, pid in lines]


def items(side: Path, what: str) -> list[int]:
    """The items that noted ``what``, in the order noted."""
    return [i for w, i, _ in noted(side) if w == what]


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    """Poll ``check`` until it holds; fail if ``proc`` ends first or it takes too long."""
    deadline = time.monotonic() + PATIENCE
    while not check():
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {PATIENCE:g} s"
        time.sleep(0.01)


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def kill(proc: subprocess.Popen[bytes], side: Path) -> None:
    """SIGKILL the run, and wait until no process that noted an item lives on."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=PATIENCE)
    pids = {pid for _, _, pid in noted(side)}
    deadline = time.monotonic() + PATIENCE
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, "processes of the killed run live on"
        time.sleep(0.05)


def killed_and_resumed(batch: Batch) -> dict[str, int]:
    """Kill a run part-way, check what it stored, resume it; the counts, for the report."""
    side, probe_side = batch.folder / "side", batch.folder / "probe-side"
    first = batch.start("hold", side, batch.folder / "killed.json")
    wait_until(lambda: len(items(side, "end")) >= KILL_AFTER, first, f"{KILL_AFTER} items ended")
    kill(first, side)
    started, ended = items(side, "start"), items(side, "end")
    assert len(set(started)) == len(started), "an item started twice in one run"
    assert len(ended) >= KILL_AFTER
    assert len(ended) < N

    # What the killed run left in the file: every entry reads back whole.
    probed = batch.run("probe", probe_side, batch.folder / "probe.json")
    assert not probe_side.exists()  # the probe computes nothing
    stored = {i for i, r in enumerate(probed) if r is not None}
    assert all(probed[i] == value(i) for i in stored)
    assert stored <= set(ended), "a result was stored for an item that did not end"
    lost = set(started) - stored
    assert len(lost) <= LIMIT, f"{len(lost)} started items were not stored, limit {LIMIT}"

    mark = len(noted(side))
    resumed = batch.run("run", side, batch.folder / "resumed.json")
    again = [i for w, i, _ in noted(side)[mark:] if w == "start"]
    # The resumed run computed each item that was not stored, once, and nothing else.
    assert sorted(again) == sorted(set(range(N)) - stored)
    counts = Counter(items(side, "start"))
    twice = {i for i, n in counts.items() if n == 2}
    assert set(counts) == set(range(N))
    assert set(counts.values()) <= {1, 2}
    assert twice == lost

    plain = batch.run("plain", batch.folder / "plain-side", batch.folder / "plain.json")
    assert plain == [value(i) for i in range(N)]
    assert resumed == plain
    return {
        "items": N,
        "ended before the kill": len(ended),
        "stored before the kill": len(stored),
        "in flight (started, not ended)": len(set(started) - set(ended)),
        "ended, not yet stored": len(set(ended) - stored),
        "run twice": len(twice),
    }


@pytest.mark.parametrize("batch", ["asyncio", "trio", "threads"], indirect=True)
def test_a_killed_batch_resumes_and_computes_only_what_it_had_not_stored(batch: Batch) -> None:
    counts = killed_and_resumed(batch)
    print(f"\nkill test, {batch.kind}: {counts}")


@pytest.mark.parametrize("batch", ["asyncio", "threads"], indirect=True)
def test_two_processes_share_one_cache_file(batch: Batch) -> None:
    """Overlapping batches at once on one new file: no error, every value right, all stored."""
    go = batch.folder / "go"
    spans = [(0, 200), (100, 300)]
    outs = [batch.folder / "a.json", batch.folder / "b.json"]
    sides = [batch.folder / "a-side", batch.folder / "b-side"]
    procs = [
        batch.start("run", side, out, first, last, limit=50, go=go)
        for side, out, (first, last) in zip(sides, outs, spans, strict=True)
    ]
    for proc, out in zip(procs, outs, strict=True):
        wait_until(Path(f"{out}.ready").exists, proc, "both runs ready")
    go.touch()  # both open the file (new) and write to it at the same time
    for proc, out, (first, last) in zip(procs, outs, spans, strict=True):
        assert batch.finish(proc, out) == [value(i) for i in range(first, last)]
    for side, (first, last) in zip(sides, spans, strict=True):
        started = items(side, "start")
        assert len(set(started)) == len(started)
        assert set(started) <= set(range(first, last))
    computed = set(items(sides[0], "start")) | set(items(sides[1], "start"))
    assert computed == set(range(300))

    # A third run finds every item of the union, whole and right, and computes nothing.
    probe_side = batch.folder / "probe-side"
    probed = batch.run("probe", probe_side, batch.folder / "probe.json", 0, 300)
    assert probed == [value(i) for i in range(300)]
    assert not probe_side.exists()
    with contextlib.closing(sqlite3.connect(batch.cache)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
