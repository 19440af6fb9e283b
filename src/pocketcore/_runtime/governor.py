"""One item's standing with its limiters, and what its ``exec`` reports using.

An item that passes limiters carries a :class:`Ticket` in :data:`TICKET`
while it runs: which limiters it passed, what each charged the attempt in
progress, whether it holds their slots, and what the attempt reported using
(:func:`report_usage`). The dispatch's governor layers
(:mod:`pocketcore._dispatch.govern`) fill it in; ``exec`` only reports.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pocketcore._runtime.limits import Limiter

__all__ = ["TICKET", "Ticket", "prices_for", "report_usage"]


class Ticket:
    """One item's standing with the limiters it passes.

    Attributes:
        limiters: The limiters of the item's batch.
        charges: What each limiter charged the attempt in progress so far (by unit).
        held: The item holds the limiters' slots now.
        used: What the attempt in progress reported using, by unit.
        refused_since: When (monotonic seconds) the item's first attempt in
            the current run of rate-limit refusals was refused, or ``None``.
    """

    __slots__ = ("charges", "held", "limiters", "refused_since", "requests", "used")

    def __init__(self, limiters: tuple[Limiter, ...]) -> None:
        self.limiters = limiters
        self.charges: list[dict[str, float]] = []
        #: What each HTTP request of the attempt was charged, by the request's id
        #: (a watched limiter's hooks charge requests one by one).
        self.requests: dict[int, dict[str, float]] = {}
        self.held = False
        self.used: dict[str, float] = {}
        self.refused_since: float | None = None


TICKET: ContextVar[Ticket | None] = ContextVar("pocketcore_ticket", default=None)
"""The :class:`Ticket` of the item running in this context, if it passes limiters."""


def report_usage(**units: float) -> None:
    """Say what the call in progress really used, so its limiters' budgets are corrected.

    Call it inside ``exec`` / ``exec_async`` once the provider has answered,
    for example ``pocketcore.report_usage(tokens=response.usage.total_tokens)``.
    The attempt was charged an estimate before it started (the node's
    ``cost``, or the mean of what earlier calls reported); the difference
    goes back into the budget, or comes out of it. Several reports in one
    attempt add up. Outside an item that passes a limiter it does nothing.

    Raises:
        TypeError: An amount is not a number.
        ValueError: An amount is negative or not finite.
    """
    checked = {unit: _amount(unit, amount) for unit, amount in units.items()}
    ticket = TICKET.get()
    if ticket is None:
        return
    used = ticket.used
    for unit, amount in checked.items():
        used[unit] = used.get(unit, 0.0) + amount


def _amount(unit: str, amount: object) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(f"report_usage({unit}=...) takes a number, got {type(amount).__name__}")
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"report_usage({unit}=...) must be a finite number >= 0, got {amount!r}")
    return float(amount)


def prices_for(
    limiters: tuple[Limiter, ...], node: Any, item: Any
) -> list[Callable[[], Mapping[str, float]] | None]:
    """How each of ``limiters`` prices one attempt of ``item``: asked when its turn comes.

    ``None`` for a limiter that charges the attempt nothing itself (one
    whose event hooks charge each request as it is sent).

    One request, plus, for each further unit a limiter budgets, the node's
    ``cost(item)`` when its class defines one (a number is tokens; a mapping
    gives units), else the limiter's :meth:`~pocketcore.Limiter.estimate`
    at the moment the attempt is charged (it improves while calls wait).

    Raises:
        TypeError: ``cost`` returned something that is not a number or a
            mapping of numbers.
        ValueError: ``cost`` returned a negative or infinite amount.
    """
    cost_of = getattr(type(node), "cost", None)
    given: Mapping[str, float] = {}
    if callable(cost_of) and any(limiter.units() for limiter in limiters):
        given = _cost(node, cost_of(node, item))
    return [
        None
        if limiter.watched and not any(u != "tokens" for u in limiter.units())
        else functools.partial(_price, limiter, given)
        for limiter in limiters
    ]


def _price(limiter: Limiter, given: Mapping[str, float]) -> Mapping[str, float]:
    if limiter.watched:
        # Its event hooks charge each request as the provider counts it:
        # the attempt itself is charged only the units they cannot see.
        return {u: given[u] for u in limiter.units() if u != "tokens" and u in given}
    charge = {"requests": 1.0}
    for unit in limiter.units():
        amount = given.get(unit)
        charge[unit] = limiter.estimate(unit) if amount is None else amount
    return charge


def _cost(node: Any, value: object) -> Mapping[str, float]:
    where = f"{type(node).__name__}.cost"
    if isinstance(value, Mapping):
        return {str(unit): _checked_cost(where, amount) for unit, amount in value.items()}
    return {"tokens": _checked_cost(where, value)}


def _checked_cost(where: str, amount: object) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(
            f"{where} must return a number (tokens) or a mapping of unit to number, "
            f"got {type(amount).__name__}"
        )
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{where} must return finite amounts >= 0, got {amount!r}")
    return float(amount)
