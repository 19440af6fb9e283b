"""A dask batch killed with SIGKILL part-way resumes from its cache file.

The kernel's kill test (tests/test_cache_kill.py) on the dask executor: a
script, written to a temporary folder, runs a parallel batch with
``cache=<tmp>/cache.db`` on the process's own ``LocalCluster`` (two worker
processes). Each ``exec`` notes ``start i`` and ``end i`` (and the worker's
process id) in a side file around a short sleep. The test kills the script
(the dispatching process: its workers then exit by themselves), then:

* a *probe* run (``exec`` raises, ``on_error="collect"``, on the asyncio
  executor: the key does not depend on the executor) reads back what the
  killed run stored: the results that had come back to it;
* the same script runs to completion on dask: it sends exactly the items not
  stored, and its results equal those of an uninterrupted run without cache.

Items the kill caught in flight (started and not ended, or ended on a worker
while their result was on its way back) run twice; they are at most the
batch's limit. In the killed run the items from ``GATE`` on wait forever, so
a slow test process can be late to kill it without the batch finishing first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from process_groups import kill_group, left_after

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SIGKILL, process groups and /proc"
)

N, LIMIT, KILL_AFTER, GATE = 80, 4, 20, 60
#: Generous bounds for a loaded machine (a run takes a few seconds, most of
#: them starting the cluster).
PATIENCE = 120.0

SCRIPT = textwrap.dedent(
    '''
    """A cached parallel batch on dask whose exec notes its start and end in a side file."""

    import json
    import os
    import sys
    import time

    import anyio

    import pocketcore

    MODE, KIND, SIDE, CACHE, OUT = sys.argv[1:6]
    LAST, LIMIT, GATE = (int(a) for a in sys.argv[6:9])
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
            return list(range(LAST))

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


    class SyncItems(pocketcore.ParallelBatchNode):
        def prep(self, shared):
            return list(range(LAST))

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
        node = SyncItems() if KIND == "sync" else AsyncItems()
        shared = {}
        pocketcore.run(
            node,
            shared,
            executor="asyncio" if MODE == "probe" else "dask",
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
        self.env.update(POCKETCORE_DASK_N_WORKERS="2", POCKETCORE_DASK_THREADS_PER_WORKER="2")
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, mode: str, side: Path, out: Path) -> subprocess.Popen[bytes]:
        """Start the script in a process group of its own; its output goes to ``out.stderr``."""
        args = [mode, self.kind, str(side), str(self.cache), str(out), str(N), str(LIMIT)]
        with open(f"{out}.stderr", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(self.script), *args, str(GATE)],
                cwd=self.folder,
                env=self.env,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        self.started.append(proc)
        return proc

    def run(self, mode: str, side: Path, out: Path) -> list[Any]:
        """Run the script to its end; its results (the test fails with its output if it failed)."""
        proc = self.start(mode, side, out)
        code = proc.wait(timeout=PATIENCE)
        err = Path(f"{out}.stderr").read_text()
        assert code == 0, f"the {mode} run failed ({code}):\n{err}"
        assert "Traceback" not in err, err
        results: list[Any] = json.loads(out.read_text())
        return results

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the dispatching process; wait until its workers have exited by themselves."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=PATIENCE)
        assert not left_after(proc, PATIENCE), "the killed run's workers live on"

    def cleanup(self) -> None:
        """Kill whatever of the runs is left (a failed test's), by their process groups."""
        for proc in self.started:
            kill_group(proc)


@pytest.fixture
def batch(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Batch]:
    made = Batch(tmp_path, request.param)
    try:
        yield made
    finally:
        made.cleanup()


def items(side: Path, what: str) -> list[int]:
    """The items that noted ``what`` (``start`` or ``end``) in the side file, in order."""
    if not side.exists():
        return []
    lines = [line.split() for line in side.read_text().splitlines()]
    return [int(i) for w, i, _pid in lines if w == what]


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    """Poll ``check`` until it holds; fail if ``proc`` ends first or it takes too long."""
    deadline = time.monotonic() + PATIENCE
    while not check():
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {PATIENCE:g} s"
        time.sleep(0.01)


@pytest.mark.parametrize("batch", ["async", "sync"], indirect=True)
def test_a_killed_dask_batch_resumes_and_sends_only_what_it_had_not_stored(batch: Batch) -> None:
    side, folder = batch.folder / "side", batch.folder
    first = batch.start("hold", side, folder / "killed.json")
    wait_until(lambda: len(items(side, "end")) >= KILL_AFTER, first, f"{KILL_AFTER} items ended")
    batch.kill(first)
    started, ended = items(side, "start"), items(side, "end")
    assert len(set(started)) == len(started), "an item started twice in one run"
    assert KILL_AFTER <= len(ended) < N

    probe_side = folder / "probe-side"
    probed = batch.run("probe", probe_side, folder / "probe.json")
    assert not probe_side.exists()  # the probe computes nothing
    stored = {i for i, r in enumerate(probed) if r is not None}
    assert all(probed[i] == value(i) for i in stored)
    assert stored <= set(ended), "a result was stored for an item that did not end"
    lost = set(started) - stored
    # Results were written as they came back, not at the batch's end.
    assert len(lost) <= LIMIT, f"{len(lost)} started items were not stored, limit {LIMIT}"

    mark = len(items(side, "start"))
    resumed = batch.run("run", side, folder / "resumed.json")
    # Only the items not stored were sent, each once.
    assert sorted(items(side, "start")[mark:]) == sorted(set(range(N)) - stored)
    counts = Counter(items(side, "start"))
    assert set(counts) == set(range(N))
    twice = {i for i, n in counts.items() if n == 2}
    assert set(counts.values()) <= {1, 2}
    assert twice == lost

    plain = batch.run("plain", folder / "plain-side", folder / "plain.json")
    assert plain == [value(i) for i in range(N)]
    assert resumed == plain
    report = {
        "items": N,
        "ended before the kill": len(ended),
        "stored before the kill": len(stored),
        "in flight (started, not ended)": len(set(started) - set(ended)),
        "ended, not yet stored": len(set(ended) - stored),
        "run twice": len(twice),
    }
    print(f"\nkill test, dask ({batch.kind} items): {report}")
