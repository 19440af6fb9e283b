"""One item's standing with its limiters, and what its ``exec`` reports using.

An item that passes limiters carries a :class:`Ticket` in :data:`TICKET`
while it runs: which limiters it passed, what each charged the attempt in
progress, whether it holds their slots, and what the attempt reported using
(:func:`report_usage`). The dispatch's governor layers
(:mod:`pocketcore._dispatch.govern`) fill it in; ``exec`` only reports.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pocketcore._runtime.signals import RATE_LIMITED
from pocketcore._runtime.usage import USAGE

if TYPE_CHECKING:
    from pocketcore._runtime.limits import Limiter

__all__ = [
    "TICKET",
    "Ticket",
    "answered",
    "booked",
    "event_hooks",
    "held",
    "prices_for",
    "report_tokens",
    "report_usage",
    "request_price",
    "request_tokens",
]


class Ticket:
    """One item's standing with the limiters it passes.

    Attributes:
        limiters: The limiters of the item's batch.
        charges: What each limiter charged the attempt in progress so far (by unit).
        held: The item holds the limiters' slots now.
        used: What the attempt in progress reported using, by unit.
        refused_since: When (monotonic seconds) the item's first attempt in
            the current run of rate-limit refusals was refused, or ``None``.
        loop: The event loop's token a blocking item was admitted on,
            through which its attempts wait for their turns from a worker
            thread (``None`` for an async item, and until it is admitted).
        paced: Any of the limiters has a budget (a rate, tokens, other
            units): the attempts are priced and charged. ``False`` for
            limiters that bound only concurrency.
    """

    __slots__ = (
        "charges",
        "event_hooks",
        "held",
        "limiters",
        "loop",
        "paced",
        "refused_since",
        "requests",
        "used",
    )

    def __init__(self, limiters: tuple[Limiter, ...], *, paced: bool = True) -> None:
        self.limiters = limiters
        self.paced = paced
        # Limiters with no budget charge nothing: one list for every attempt.
        self.charges: list[dict[str, float]] = [] if paced else [{} for _ in limiters]
        #: What each HTTP request of the attempt was charged, by the request's id
        #: (a watched limiter's hooks charge requests one by one).
        self.requests: dict[int, dict[str, float]] = {}
        self.held = False
        self.used: dict[str, float] = {}
        self.refused_since: float | None = None
        self.loop: Any = None


TICKET: ContextVar[Ticket | None] = ContextVar("pocketcore_ticket", default=None)
"""The :class:`Ticket` of the item running in this context, if it passes limiters."""


def report_usage(**units: float) -> None:
    """Say what the call in progress really used, so its limiters' budgets are corrected.

    Call it inside ``exec`` / ``exec_async`` once the provider has answered,
    for example ``pocketcore.report_usage(tokens=response.usage.total_tokens)``.
    The attempt was charged an estimate before it started (the node's
    ``cost``, or the mean of what earlier calls reported); the difference
    goes back into the budget, or comes out of it. Several reports in one
    attempt add up.

    Every report also counts in the usage totals of the run (any unit, with
    or without a limiter): its item's, its batch's, its node's and the
    run's, which observers receive with the end of each (the ``usage``
    argument of the lifecycle hooks), so ``pocketcore run``, the timeline
    and OpenTelemetry spans show them. Name the units ``input_tokens`` and
    ``output_tokens`` for OpenTelemetry's GenAI usage attributes. Outside
    a run that someone observes, and outside an item that passes a
    limiter, it does nothing.

    Raises:
        TypeError: An amount is not a number.
        ValueError: An amount is negative or not finite.
    """
    checked = {unit: _amount(unit, amount) for unit, amount in units.items()}
    tally = USAGE.get()
    if tally is not None:
        tally.add(checked)
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


# --- what a limiter's event hooks do with requests and responses -------------------------
#
# Limiter.event_hooks() hands these to an httpx client: each request of an
# attempt is charged as the provider counts it, and each response is taken
# in (the provider's count, a 429, the usage of the answer).


def event_hooks(limiter: Limiter, *, blocking: bool) -> dict[str, list[Any]]:
    """The httpx event hooks of :meth:`pocketcore.Limiter.event_hooks` (which see)."""
    return _blocking_hooks(limiter) if blocking else _async_hooks(limiter)


def _blocking_hooks(limiter: Limiter) -> dict[str, list[Any]]:
    def request(request: Any) -> None:
        price = request_price(limiter, request)
        if price is not None:  # a blocking call cannot wait its turn: it owes it
            limiter.account.correct({}, price)
            booked(limiter, request, price)

    def response(response: Any) -> None:
        if answered(limiter, response):
            response.read()
            report_tokens(response)

    return {"request": [request], "response": [response]}


def _async_hooks(limiter: Limiter) -> dict[str, list[Any]]:
    async def request(request: Any) -> None:
        price = request_price(limiter, request)
        if price is not None:
            booked(limiter, request, await limiter.take_turn(price))
        elif limiter.held_back():
            # Not charged to an item (none holds the limiter here, or its
            # limiters have no budget), but a pause holds it back too.
            await limiter.account.charge({})

    async def response(response: Any) -> None:
        if answered(limiter, response):
            await response.aread()
            report_tokens(response)

    return {"request": [request], "response": [response]}


def held(limiter: Limiter) -> tuple[Any, dict[str, float]] | None:
    """The ticket of the item holding ``limiter`` in this context, and its attempt's charge."""
    ticket = TICKET.get()
    if ticket is None or not ticket.held:
        return None
    for held, charge in zip(ticket.limiters, ticket.charges, strict=True):
        if held is limiter:
            return ticket, charge
    return None


def request_price(limiter: Limiter, request: Any) -> dict[str, float] | None:
    """What ``request`` costs on ``limiter``: one request, and its tokens as the provider counts.

    ``None`` outside an item holding the limiter (nothing to charge it to).
    """
    if held(limiter) is None:
        return None
    price = {"requests": 1.0}
    if "tokens" in limiter.units():
        asked = request_tokens(getattr(request, "content", b""))
        price["tokens"] = limiter.estimate("tokens") if asked is None else asked
    return price


def booked(limiter: Limiter, request: Any, price: Mapping[str, float]) -> None:
    """Count ``price`` into the attempt's charge, and keep it by request for a refusal."""
    holding = held(limiter)
    if holding is None:  # the item let go meanwhile (cancelled): give it back
        limiter.account.correct(price, dict.fromkeys(price, 0.0))
        return
    ticket, charge = holding
    for unit, amount in price.items():
        charge[unit] = charge.get(unit, 0.0) + amount
    ticket.requests[id(request)] = dict(price)


def answered(limiter: Limiter, response: Any) -> bool:
    """Observe a response; whether it is a successful JSON answer to read the usage of."""
    status = response.status_code
    if status in RATE_LIMITED:
        holding = held(limiter)
        price = None
        if holding is not None:
            price = holding[0].requests.pop(id(getattr(response, "request", None)), None)
        if price is not None and price.get("tokens"):
            # Refused: the provider took none of its tokens (the SDK may send
            # it again). Given back before the provider's count is taken in.
            tokens = price["tokens"]
            limiter.account.correct({"tokens": tokens}, {"tokens": 0.0})
            holding[1]["tokens"] -= tokens  # type: ignore[index]
    limiter.observe(status, response.headers)
    if status in RATE_LIMITED:
        return False
    kind = str(response.headers.get("content-type", ""))
    return bool(status == 200 and kind.startswith("application/json"))


def request_tokens(body: bytes) -> float | None:
    """The tokens a provider counts against its budget for an OpenAI-style request body.

    Its messages' text, at four characters a token, plus the completion it
    may return (``max_tokens`` or ``max_completion_tokens``); ``None`` for a
    body that is not such a request.
    """
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        return None
    chars = 0
    for message in data["messages"]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # parts: count the text ones
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    most = data.get("max_tokens") or data.get("max_completion_tokens") or 0
    if isinstance(most, bool) or not isinstance(most, (int, float)):
        most = 0
    return max(1, chars // 4) + float(most)


#: The counts of an OpenAI-style answer's ``usage``, and the units they are reported as.
_USAGE_FIELDS = (
    ("total_tokens", "tokens"),
    ("prompt_tokens", "input_tokens"),
    ("completion_tokens", "output_tokens"),
)


def report_tokens(response: Any) -> None:
    """Report the usage of an OpenAI-style answer, when it has one.

    Its ``total_tokens`` as ``tokens`` (what a token budget is corrected
    by), and its ``prompt_tokens`` and ``completion_tokens`` as
    ``input_tokens`` and ``output_tokens``, the GenAI usage of its node.
    """
    try:
        usage = response.json()["usage"]
        total = usage["total_tokens"]
    except (ValueError, KeyError, TypeError):
        return
    if not _count(total):
        return
    report_usage(
        **{unit: usage[field] for field, unit in _USAGE_FIELDS if _count(usage.get(field))}
    )


def _count(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
