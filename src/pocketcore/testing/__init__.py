"""Tools for testing executors, stores and flows: the conformance suites and a recording executor.

Every executor must meet the contract of :class:`pocketcore.Executor`. An
executor plugin proves it by subclassing :class:`ExecutorConformance` in its
own tests::

    from pocketcore.testing import ExecutorConformance
    from my_plugin import MyExecutor

    class TestMyExecutor(ExecutorConformance):
        executor = MyExecutor()

pytest then collects the inherited tests, which use Hypothesis to generate
item lists, per-item delays, failure positions and limits, and run each
property on every backend the executor claims. This module needs pytest and
Hypothesis (``pip install pocketcore[testing]``).

An executor that gates items (``gates_items = True``, see
:class:`pocketcore.GatingExecutor`) is also handed a recording gate, and held
to the gate's contract: entered before each call starts, left once per entry
after the call has ended (on failure and cancellation too), and no more calls
in flight than the gate admits. These properties are made only for such an
executor, and so is one with a real node and a shared
:class:`pocketcore.Limiter`: the turns of a failed paced batch given back. One
that runs its items in this process also runs real flows with a limiter over
the items in a parallel batch flow's passes (every run finishes, the bound
holds, the limiter ends idle); a remote executor refuses batch flows. A
remote executor that gates items and reports its results is also held to
every attempt of an item passing the limiter: a retry waits its turn, a
provider's 429 pauses every start and spends no retry, the limiter's
patience ends the refusals.

A *remote* executor (one with ``remote = True``, whose items run in other
processes) is held to the same properties. Its items cannot report to this
process's memory, so the suite's probes then append what happens to a file
that every process writes to (the worker processes must see this machine's
file system, as those of a ``LocalCluster`` do), and they are module-level
picklable objects that the workers import from here. Delays are stretched by
:attr:`ExecutorConformance.time_scale` and Hypothesis runs fewer examples.

A store of the result cache (a :class:`pocketcore.BaseStore`, contributed with the
hook ``pocketcore_register_stores``) proves the store contract the same way,
with :class:`StoreConformance`::

    from pocketcore.testing import StoreConformance
    from my_plugin import MyStore

    class TestMyStore(StoreConformance):
        persistent = True
        shared = True

        def open_store(self, directory):
            return MyStore(directory / "cache")

Its properties about several processes and a killed writer run child
processes that import the test class by name (see its docstring).

Beside the suites, checks that several executor plugins' own tests repeat:
:func:`check_objects_per_item` (an asyncio-based executor keeps no more
objects alive per item than a raw ``asyncio.gather``, counted with
:func:`objects_per_item`), :func:`stopped_after` (a time limit that
stops even a loop that never yields) and :func:`check_ctrl_c` (Ctrl-C during
a batch ends the run at once and leaves none of its processes running).
"""

from __future__ import annotations

from ._checks import check_objects_per_item, objects_per_item, stopped_after
from ._conformance import ExecutorConformance
from ._interrupt import check_ctrl_c
from ._probes import ItemFailure
from ._recording import MapCall, RecordingExecutor
from ._stores import StoreConformance

__all__ = [
    "ExecutorConformance",
    "ItemFailure",
    "MapCall",
    "RecordingExecutor",
    "StoreConformance",
    "check_ctrl_c",
    "check_objects_per_item",
    "objects_per_item",
    "stopped_after",
]

# Defined in private modules, they are known by their public place: in
# tracebacks, in the docs, and to pickle (a remote executor sends an
# ItemFailure back by name).
for _public in (
    ExecutorConformance,
    ItemFailure,
    MapCall,
    RecordingExecutor,
    StoreConformance,
    check_ctrl_c,
    check_objects_per_item,
    objects_per_item,
    stopped_after,
):
    _public.__module__ = __name__
del _public
