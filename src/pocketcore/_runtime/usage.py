"""What a run's ``exec`` calls report using, totalled per scope: item, batch, step, run.

:func:`pocketcore.report_usage` adds its amounts to the :class:`Totals` in
:data:`USAGE`, the innermost scope in force in its context. When a scope
closes, its totals are added to the scope around it, so each scope's totals
hold everything reported inside it: an item's every attempt (failed ones too:
the provider billed them), a batch's items, a step's batch, a flow's steps,
the run's whole.

A scope is opened only where its end event is heard with its usage: an
observer implements the end hook with a ``usage`` parameter (asked once per
run, flow pass or batch). Leaving a scope out loses nothing: its reports go
to the scope around it, whose totals are the same. So a run that nobody
observes keeps no totals, and an observer that asks for no usage costs what
it cost before.

Items on worker threads add to shared totals from several threads: adding
takes one lock, shared by all totals (reports are rare: one per provider
call, not per item).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType

__all__ = ["NOTHING", "USAGE", "Totals", "amounts", "closed", "opened"]

NOTHING: Mapping[str, float] = MappingProxyType({})
"""The usage of a scope in which nothing was reported."""


_LOCK = threading.Lock()


class Totals:
    """The amounts reported in one scope so far, by unit, and the scope around it.

    Attributes:
        parent: The totals of the scope around this one, which gets this
            one's totals when it closes; ``None`` for the outermost.
    """

    __slots__ = ("_units", "parent")

    def __init__(self, parent: Totals | None) -> None:
        self.parent = parent
        self._units: dict[str, float] | None = None

    def add(self, units: Mapping[str, float]) -> None:
        """Add ``units`` (checked amounts) to the totals."""
        if not units:
            return
        with _LOCK:
            totals = self._units
            if totals is None:
                totals = self._units = {}
            for unit, amount in units.items():
                totals[unit] = totals.get(unit, 0.0) + amount

    def close(self) -> Mapping[str, float]:
        """The totals, now added to the scope around this one (if any)."""
        if self._units is None:  # the usual scope: nothing reported
            return NOTHING
        with _LOCK:
            totals = dict(self._units)
        if self.parent is not None:
            self.parent.add(totals)
        return MappingProxyType(totals)


USAGE: ContextVar[Totals | None] = ContextVar("pocketcore_usage", default=None)
"""The totals of the innermost scope in force in this context, where reports are added."""


def opened() -> tuple[Totals, Token[Totals | None]]:
    """A new scope inside the one in force, now in force itself: its totals, and the token."""
    totals = Totals(USAGE.get())
    return totals, USAGE.set(totals)


def closed(totals: Totals, token: Token[Totals | None]) -> Mapping[str, float]:
    """Leave the scope :func:`opened` returned; its totals (added to the scope around it)."""
    USAGE.reset(token)
    return totals.close()


def amounts(usage: Mapping[str, float]) -> str:
    """``"1,234,567 tokens, 2.50 images"``: each unit's amount, whole ones without decimals."""
    return ", ".join(
        f"{amount:,.0f} {unit}" if amount == int(amount) else f"{amount:,.2f} {unit}"
        for unit, amount in usage.items()
    )
