"""An observer registered for the length of one command's run, and no longer."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Protocol

from pocketcore._plugins.registry import Registry

__all__ = ["Counter", "registered", "reported"]


class Counter(Protocol):
    """A lifecycle observer that says what it counted as lines for the end of a run."""

    def lines(self) -> list[str]:
        """The lines to print on stderr when the run has ended (none: nothing to say)."""
        ...


@contextlib.contextmanager
def registered(registry: Registry, observer: object, name: str) -> Iterator[None]:
    """Register ``observer`` as plugin ``name`` while the body runs; unregister it after.

    Registered only for the run, a lifecycle-hook plugin costs nothing to the
    runs (and to the commands) that do not want it.
    """
    registry.register(observer, name=name)
    try:
        yield
    finally:
        registry.unregister(observer)


@contextlib.contextmanager
def reported(registry: Registry, counter: Counter, name: str, *, when: bool) -> Iterator[None]:
    """:func:`registered` for ``counter``, then its lines on stderr, also when the run fails.

    With ``when`` false, nothing is registered: the lifecycle hooks stay free.
    """
    if not when:
        yield
        return
    try:
        with registered(registry, counter, name):
            yield
    finally:
        for line in counter.lines():
            print(line, file=sys.stderr)
