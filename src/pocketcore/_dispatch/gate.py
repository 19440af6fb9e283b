"""The gate layer: an item passes its batch's limiters before it starts.

An executor that declares ``gates_items`` is handed the gate and enters it
itself, before starting each item (it knows when an item really starts:
on another process, say). For one that does not, this layer is the first
of the item's trip: waiting for a turn is not running, so the item is
reported started only once it has passed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from pocketcore._core.executor import BaseExecutor, Gate

__all__ = ["gated"]


def gated(gate: Gate, call: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """``call`` entered through ``gate``, which is left once the call has ended.

    The same discipline a gating executor keeps (:meth:`~pocketcore.BaseExecutor.gated`).
    """
    return functools.partial(BaseExecutor.gated, gate, call)
