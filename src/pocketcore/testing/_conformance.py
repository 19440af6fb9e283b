"""The conformance suite: :class:`ExecutorConformance`, the executor contract as pytest tests.

Its properties are grouped by topic in mixins (``_scheduling``,
``_failures``, ``_gating``); this class combines them, adds the checks that
need no batch, and makes each property a Hypothesis test for every subclass
(those of an optional capability only where the executor declares it).
"""

from __future__ import annotations

from typing import Any

import anyio.lowlevel
import sniffio
from hypothesis import given, settings

from pocketcore._core.executor import capabilities, declared_executor

from ._failures import Failures
from ._gating import Gating
from ._limiters import Limiters
from ._probes import ItemCall, Log, pulled
from ._resends import Resends
from ._scheduling import Scheduling
from ._suite import CAPABILITY, EXAMPLES, GENERATED, PROPERTIES, REMOTE_EXAMPLES, SETTINGS, SLOW


class ExecutorConformance(Scheduling, Gating, Limiters, Resends, Failures):
    """The executor contract as pytest tests; subclass it and set :attr:`executor`.

    Attributes:
        executor: The executor under test. When it has ``remote = True`` its
            items run in other processes, and the probes record to a file (see
            the docstring of :mod:`pocketcore.testing`).
        parallel: ``True`` (the default) for an executor that runs items
            concurrently; ``False`` for one that runs them one at a time in
            input order, which is then checked instead.
        backends: The backends to run every property on; by default the
            executor's own ``backend``, or asyncio and (if installed) trio for
            an executor that runs on any backend. A remote executor's
            properties run inside its own ``run``, on its backend.
        max_examples: Hypothesis examples per property; by default 20, or 8
            for a remote executor (the slow properties of ``_resends``, at
            most 6).
        time_scale: What every delay and quiet period is multiplied by; by
            default 1, or 10 for a remote executor. After the first failure,
            a remote executor's items already on their way with it (at most
            ``limit - 1``) may still start within ``0.1 * time_scale``
            seconds, while its stop signal travels; a local executor's never.
        patience: Seconds an item of the overlap properties waits for its
            siblings to start (they must all be in flight together); by
            default ``0.5 * time_scale``. Raise it for an engine that may
            take seconds to give a task a worker process.

    The properties of the gate (``test_gate_...``) and of the turns of a
    failed paced batch (``test_turns_are_returned_after_a_failure``) are
    made only when the executor declares ``gates_items = True``; that of a
    shared limiter in nested flows (``test_limiter_over_nested_passes``)
    only when it also runs the items in this process (a remote executor
    refuses batch flows); those of every attempt of a remote item through
    the limiter (``_resends``) only for a remote executor that gates items
    and reports its results.

    The Hypothesis tests are made for each subclass when it is defined, from
    its own settings, so set these as class attributes. A test method a
    subclass defines itself is left alone. (The attributes are declared, with
    their defaults, on the base every topic's mixin shares.)
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Hypothesis reads its settings from the decorated function, which
        # would be shared by every subclass: each gets functions of its own.
        examples = cls.max_examples
        if examples is None:
            examples = REMOTE_EXAMPLES if cls._is_remote() else EXAMPLES
        config = settings(SETTINGS, max_examples=examples)
        for name, (body, strategies) in PROPERTIES.items():
            if cls._defines_own(name):
                continue
            applies = CAPABILITY.get(name)
            if applies is not None and not applies(cls):
                # A capability the executor does not declare: no test (the
                # body, inherited, must not be collected either).
                setattr(cls, name, None)
                continue
            slow = SLOW.get(name)
            if slow is not None and slow < examples:
                test = settings(config, max_examples=slow)(given(*strategies)(body))
            else:
                test = config(given(*strategies)(body))
            GENERATED.add(test)
            setattr(cls, name, test)

    @classmethod
    def _defines_own(cls, name: str) -> bool:
        for klass in cls.__mro__:
            if name in vars(klass):
                value = vars(klass)[name]
                generated = value is None or value in GENERATED
                return value is not PROPERTIES[name][0] and not generated
        return False

    def test_declares_name_and_backend(self) -> None:
        """The executor has a non-empty name and a known kind of backend."""
        assert isinstance(self.executor.name, str)
        assert self.executor.name
        assert self.executor.backend is None or isinstance(self.executor.backend, str)

    def test_map_takes_the_uniform_keywords(self) -> None:
        """``map`` takes ``limit``, ``gate`` and ``on_result``, as the kernel always passes them.

        An executor that declares ``reports_results`` calls ``on_result``
        here, once per item, with its position and result, before ``map``
        returns. An executor of the earlier protocol (not built on
        ``pocketcore.BaseExecutor``) is called through the kernel's adapter.
        """
        executor = declared_executor(self.executor, warn=False)
        reports = capabilities(self.executor, warn=False).reports_results
        count = 5

        async def body(log: Log) -> None:
            for limit in (None, 2):
                reported: dict[int, Any] = {}
                on_result = reported.__setitem__ if reports else None
                result = await executor.map(
                    ItemCall(log), pulled(log, count), limit=limit, gate=None, on_result=on_result
                )
                assert result == [i * 2 for i in range(count)]
                if reports:
                    assert reported == dict(enumerate(result))

        self._each_backend(body)

    def test_run_starts_its_backend(self) -> None:
        """``run`` starts an event loop of the declared backend and returns the result."""

        async def main() -> str:
            await anyio.lowlevel.checkpoint()
            return _backend_name()

        backend = self.executor.run(main)
        if self.executor.backend is not None:
            assert backend == self.executor.backend


def _backend_name() -> str:
    """The name of the async library running the current task."""
    return sniffio.current_async_library()
