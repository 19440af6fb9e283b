"""What a store does around a fork of the process that holds it."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable


def on_fork(
    *,
    before: Callable[[], None] | None = None,
    after_in_parent: Callable[[], None] | None = None,
    after_in_child: Callable[[], None] | None = None,
) -> None:
    """Call these bound methods around every fork from now on, while their object lives.

    A fork copies only the thread that calls it. A lock another thread held
    at that moment stays held in the child for good, and so does any mutex
    of SQLite's that a thread was inside: a store waits, before the fork,
    until its threads are out of SQLite, and replaces its locks in the
    child. SQLite forbids using a connection opened before the fork: the
    child opens its own.
    """
    if not hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
        return
    os.register_at_fork(
        before=_weak(before),
        after_in_parent=_weak(after_in_parent),
        after_in_child=_weak(after_in_child),
    )


def _weak(method: Callable[[], None] | None) -> Callable[[], None]:
    """A function that calls the bound ``method`` if its object still lives."""
    if method is None:
        return _nothing
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is not None:
            bound()

    return call


def _nothing() -> None:
    pass
