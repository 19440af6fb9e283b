"""The store suite's values that prove themselves whole, and its child processes.

A *stamp* is a value that says which key, writer and sequence number it was
written for and carries a digest of that, padded to a chosen size: whoever
reads it can rebuild it and compare, so a torn, mixed or foreign value is
never mistaken for one that was written.

The properties about several processes and about a killed process run
children: ``python -c`` with the parent's own interpreter and ``sys.path``,
which import the suite class by its module and qualified name, open the
store on the same directory with its ``open_store``, and run a job
(:func:`child_main`). The parent side is :func:`start_child` and the
:class:`Children` that keeps them from outliving a property.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import itertools
import json
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from pocketcore._core.store import Store

#: The node class the suite's writers put their stamps under.
NODE = "pocketcore.testing.StoreConformance"
#: The seconds a property waits for its children before it fails.
CHILD_TIMEOUT = 60.0
_HEAD = struct.Struct(">IIIH")  # writer, seq, size of the padding, length of the key
_SALT = b"pocketcore store suite\x00"
_CHILD_CODE = (
    "import json, sys; job = json.loads(sys.argv[1]); sys.path[:] = job['path']; "
    "from pocketcore.testing._store_processes import child_main; child_main(job)"
)


class _OpensStores(Protocol):
    """What a child needs of the suite class: a no-argument constructor and ``open_store``."""

    def open_store(self, directory: Path) -> Store: ...


@attrs.frozen
class Stamp:
    """Who wrote a value: its key, the writer's number and the writer's sequence number."""

    key: bytes
    writer: int
    seq: int


def stamp(key: bytes, writer: int, seq: int, size: int) -> bytes:
    """What ``writer`` puts under ``key`` as its write ``seq``, with ``size`` bytes of padding."""
    head = _HEAD.pack(writer, seq, size, len(key)) + key
    digest = hashlib.sha256(_SALT + head).digest()
    return head + (digest * (size // len(digest) + 1))[:size] + digest


def read_stamp(value: bytes) -> Stamp | None:
    """Who wrote ``value``, or ``None`` when it is not, byte for byte, a whole stamp."""
    if not isinstance(value, bytes) or len(value) < _HEAD.size:
        return None
    writer, seq, size, length = _HEAD.unpack_from(value)
    key = value[_HEAD.size : _HEAD.size + length]
    if len(key) != length or stamp(key, writer, seq, size) != value:
        return None
    return Stamp(key, writer, seq)


def damaged(found: Mapping[bytes, bytes]) -> list[str]:
    """What is wrong with the values ``get_many`` returned, when they should all be stamps."""
    problems = []
    for key, value in found.items():
        mark = read_stamp(value)
        if mark is None:
            problems.append(f"key {key!r}: {len(value)} bytes that are not a whole written value")
        elif mark.key != key:
            problems.append(f"key {key!r}: the value written for key {mark.key!r}")
    return problems


@attrs.frozen
class WritePlan:
    """Concurrent writers: each puts every key once per round, in an order of its own.

    Writer ``w`` (numbered from 1) writes round ``r`` with padding
    ``sizes[(w + r) % len(sizes)]``.
    """

    keys: tuple[bytes, ...]
    writers: int
    rounds: int
    sizes: tuple[int, ...]

    def value(self, key: bytes, writer: int, seq: int) -> bytes:
        """What ``writer`` puts under ``key`` in round ``seq``."""
        return stamp(key, writer, seq, self.sizes[(writer + seq) % len(self.sizes)])

    def write(self, store: Store, writer: int) -> list[str]:
        """Run writer ``writer``'s rounds, reading every key back after each; return the damage."""
        shift = writer % len(self.keys)
        order = self.keys[shift:] + self.keys[:shift]
        problems: list[str] = []
        for seq in range(self.rounds):
            for key in order:
                store.put(key, self.value(key, writer, seq), NODE)
            problems += damaged(store.get_many(self.keys))
        return problems

    def check_final(self, found: Mapping[bytes, bytes]) -> None:
        """Every key holds the last value one of the writers put under it.

        The last put of all under a key is its writer's last under that key,
        so any other value (an older one, a torn one, none) is wrong.
        """
        last = self.rounds - 1
        for key in self.keys:
            finals = {self.value(key, w, last) for w in range(1, self.writers + 1)}
            value = found.get(key)
            assert value in finals, (
                f"after {self.writers} writers, key {key!r} holds "
                f"{_describe(value)}, not the last value of any of them"
            )

    def to_json(self) -> dict[str, Any]:
        """The plan as a child's job receives it."""
        return {
            "keys": [k.hex() for k in self.keys],
            "writers": self.writers,
            "rounds": self.rounds,
            "sizes": list(self.sizes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WritePlan:
        """The plan :meth:`to_json` gave."""
        keys = tuple(bytes.fromhex(k) for k in data["keys"])
        return cls(keys, data["writers"], data["rounds"], tuple(data["sizes"]))


@attrs.frozen
class KillPlan:
    """A writer that puts large values until it is killed, reporting each put that returned.

    Its ``seq``-th put (from 1) goes under ``keys[seq % len(keys)]``, with
    padding ``sizes[seq % len(sizes)]``. The writer appends ``> seq`` and a
    newline to the report file as it calls the put, and ``seq`` and a
    newline once it has returned, so the parent can aim its kill into a
    put. Before it starts, the parent puts a stamp of writer 0 and seq 0
    under every key.
    """

    keys: tuple[bytes, ...]
    sizes: tuple[int, ...]

    def key(self, seq: int) -> bytes:
        """The key of put ``seq`` (seq 0 is the parent's, under every key)."""
        return self.keys[seq % len(self.keys)]

    def value(self, seq: int) -> bytes:
        """The value of put ``seq`` (from 1)."""
        return stamp(self.key(seq), 1, seq, self.sizes[seq % len(self.sizes)])

    def run(self, store: Store, report: Path) -> None:
        """Put and report until killed."""
        fd = os.open(report, os.O_WRONLY | os.O_APPEND)
        for seq in itertools.count(1):
            key, value = self.key(seq), self.value(seq)
            os.write(fd, b"> %d\n" % seq)
            store.put(key, value, NODE)
            # A write(2) is in the kernel once it returns: it outlives a SIGKILL.
            os.write(fd, b"%d\n" % seq)

    def check(self, found: Mapping[bytes, bytes], reported: Sequence[int]) -> None:
        """After the kill: whole values, none lost that was reported, none never written.

        Each key holds the value of its last reported put or of a later one
        (the put in flight at the kill, at most one past the last reported).
        """
        newest = reported[-1] if reported else 0
        for key in self.keys:
            floor = max((s for s in reported if self.key(s) == key), default=0)
            value = found.get(key)
            assert value is not None, f"key {key!r} lost its value (put {floor} had returned)"
            mark = read_stamp(value)
            assert mark is not None, f"key {key!r} holds {_describe(value)} after the kill"
            assert mark.key == key, f"key {key!r} holds {_describe(value)} after the kill"
            assert (mark.writer, mark.seq == 0) in ((0, True), (1, False)), (
                f"key {key!r} holds {_describe(value)}"
            )
            assert mark.seq == 0 or self.key(mark.seq) == key, f"key {key!r} holds put {mark.seq}"
            assert floor <= mark.seq <= newest + 1, (
                f"key {key!r} holds put {mark.seq}, but put {floor} had returned "
                f"and the last reported was put {newest}"
            )

    def to_json(self) -> dict[str, Any]:
        """The plan as a child's job receives it."""
        return {"keys": [k.hex() for k in self.keys], "sizes": list(self.sizes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KillPlan:
        """The plan :meth:`to_json` gave."""
        return cls(tuple(bytes.fromhex(k) for k in data["keys"]), tuple(data["sizes"]))


def _describe(value: bytes | None) -> str:
    if value is None:
        return "nothing"
    mark = read_stamp(value)
    if mark is None:
        return f"{len(value)} bytes that are not a whole written value"
    return f"the value of writer {mark.writer}'s put {mark.seq} for key {mark.key!r}"


def suite_path(suite: type) -> str:
    """Where a child finds the suite class: ``module:qualname``.

    Raises:
        TypeError: When a child could not import it (a class made in a function).
    """
    if "<locals>" in suite.__qualname__:
        raise TypeError(
            f"{suite.__qualname__} is defined inside a function; the store suite's child "
            "processes import the test class by name, so define it at module level"
        )
    return f"{suite.__module__}:{suite.__qualname__}"


class Children:
    """The children of one property: started here, and killed when it ends, whatever happens."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._timer = threading.Timer(CHILD_TIMEOUT, self.kill_all)
        self._timer.daemon = True
        self._timer.start()

    def start(self, suite: type, directory: Path, job: dict[str, Any]) -> subprocess.Popen[bytes]:
        """Start a child that opens the store on ``directory`` and runs ``job``."""
        job = {**job, "suite": suite_path(suite), "directory": str(directory), "path": sys.path}
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, json.dumps(job)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._procs.append(proc)
        return proc

    def kill_all(self) -> None:
        """Kill every child still running (at the deadline, or when the property ends)."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()

    def close(self) -> None:
        """Kill what still runs, reap it and close its pipes."""
        self._timer.cancel()
        self.kill_all()
        for proc in self._procs:
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):  # a pipe its end broke
                        stream.close()


@contextlib.contextmanager
def children() -> Iterator[Children]:
    """Children for one property; none outlives it, nor the deadline :data:`CHILD_TIMEOUT`."""
    group = Children()
    try:
        yield group
    finally:
        group.close()


def finish(proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait for a child to exit, and fail with its error output unless it exited with 0."""
    _, err = proc.communicate()
    assert proc.returncode == 0, f"{what} exited with {proc.returncode}:\n{_tail(err)}"


def await_ready(proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait for a write job's child to have opened its store."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != b"ready\n":
        finish(proc, what)
        raise AssertionError(f"{what} did not get ready: {line!r}")


def await_put(proc: subprocess.Popen[bytes], report: Path, count: int) -> None:
    """Wait until a kill job's child has reported ``count`` puts and is in the next one."""
    while not _in_put(report.read_bytes(), count):
        if proc.poll() is not None:
            finish(proc, "the writer to be killed")
            raise AssertionError("the writer to be killed exited on its own")
        time.sleep(0.0005)


def _in_put(text: bytes, count: int) -> bool:
    lines = text.split(b"\n")[:-1]
    returned = len(lines) // 2
    return returned >= count and lines[-1].startswith(b">")


def reported_puts(report: Path) -> list[int]:
    """The puts a killed child reported as returned, in order (a line cut short is left out)."""
    lines = report.read_bytes().split(b"\n")[:-1]
    return [int(line) for line in lines if not line.startswith(b">")]


def _tail(err: bytes) -> str:
    return "\n".join(err.decode(errors="replace").splitlines()[-25:])


def child_main(job: dict[str, Any]) -> None:
    """The body of a suite's child process: open the store and run the job.

    ``job`` has the suite class (``suite``), the store's ``directory``, its
    ``kind`` (``"write"`` or ``"kill"``) and the plan. A write job says
    ``ready`` once its store is open and waits for ``go`` on its standard
    input, so the writers start together; damage it reads back makes it exit
    with 1. A kill job writes until it is killed.
    """
    module, _, qualname = job["suite"].partition(":")
    suite: Any = importlib.import_module(module)
    for name in qualname.split("."):
        suite = getattr(suite, name)
    opener: _OpensStores = suite()
    store = opener.open_store(Path(job["directory"]))
    try:
        if job["kind"] == "kill":
            KillPlan.from_json(job["plan"]).run(store, Path(job["report"]))
        else:
            _write_job(store, WritePlan.from_json(job["plan"]), job["writer"])
    finally:
        store.close()


def _write_job(store: Store, plan: WritePlan, writer: int) -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline() != "go\n":
        return  # the parent gave up
    problems = plan.write(store, writer)
    if problems:
        sys.exit(f"writer {writer} read back damaged values:\n" + "\n".join(problems[:10]))
