"""Values a batch can hold besides its items' results."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Failed"]


@attrs.frozen
class Failed:
    """An item that failed, kept in its slot of a batch's results (``on_error="collect"``).

    With ``on_error="collect"`` every item of a batch node runs to
    completion; an item that still fails after its retries and fallback is
    recorded as a ``Failed`` in its place, and ``post`` receives the full
    list, in input order, to decide what to do.

    Attributes:
        exception: What the last attempt (or the fallback) raised.
        item: The item.
        index: Its position in the input.
        attempts: How many times ``exec`` was attempted for it.
    """

    exception: Exception
    item: Any
    index: int
    attempts: int
