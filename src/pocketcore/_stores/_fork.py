"""What a store does in a process forked from one that holds it."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable


def after_fork_in_child(method: Callable[[], None]) -> None:
    """Call the bound ``method`` in every child forked from now on, while its object lives.

    A store's lock may be held, at the moment of the fork, by a thread the
    child does not have, and SQLite forbids using a connection opened
    before the fork: a store replaces both in the child.
    """
    if not hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
        return
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is not None:
            bound()

    os.register_at_fork(after_in_child=call)
