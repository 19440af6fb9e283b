"""The gate of a batch: its limiters as one entry, for an executor that starts the items itself.

What an executor that runs the items itself (a remote one) and gates them
(:class:`pocketcore.GatingExecutor`) is handed: it enters the gate right
before it sends an item, and leaves it once the item has ended (a remote
item is sent, and so enters, once per attempt, see
:mod:`pocketcore._dispatch.resend`). Items that
run here pass their limiters in the kernel instead
(:mod:`pocketcore._dispatch.govern`). Every slot is taken first, then every
turn, so that a turn is never held while a slot is awaited (it would be
spent late, and starts would bunch).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from pocketcore._core.executor import Gate
from pocketcore._runtime.limits import Limiter

__all__ = ["gate_of"]


def gate_of(limiters: tuple[Limiter, ...]) -> Gate:
    """The gate through which each item of a batch with ``limiters`` (at least one) starts."""
    return _Gate(limiters)


def _estimated(limiter: Limiter) -> Mapping[str, float]:
    """What an item passing a gate is charged: a request, and the estimate of each unit.

    Its attempts run where no correction can reach: the estimate is what
    ``report_usage`` taught the limiter in this process (see
    :meth:`Limiter.estimate`).
    """
    charge = {"requests": 1.0}
    for unit in limiter.units():
        charge[unit] = limiter.estimate(unit)
    return charge


def _refund(paid: list[tuple[Limiter, Mapping[str, float]]]) -> None:
    for limiter, charge in paid:
        limiter.account.correct(charge, dict.fromkeys(charge, 0.0))


class _Gate:
    """The batch's limiters as one gate: all of them or none.

    A limiter with no budget charges nothing, but a rate-limit pause in
    force on it holds the entry back all the same.
    """

    __slots__ = ("limiters", "paced", "unpaced")

    def __init__(self, limiters: tuple[Limiter, ...]) -> None:
        self.limiters = limiters
        self.paced = [limiter for limiter in limiters if limiter.paced]
        self.unpaced = [limiter for limiter in limiters if not limiter.paced]

    def try_enter(self) -> bool:
        taken: list[Limiter] = []
        paid: list[tuple[Limiter, Mapping[str, float]]] = []
        for limiter in self.limiters:
            if not (limiter.try_take_slot() if limiter.paced else limiter.try_enter()):
                break
            taken.append(limiter)
        else:
            for limiter in self.paced:
                charge = limiter.account.try_charge(functools.partial(_estimated, limiter))
                if charge is None:
                    break
                paid.append((limiter, charge))
            else:
                return True
        _refund(paid)
        for limiter in taken:
            limiter.release()
        return False

    async def enter(self) -> None:
        taken: list[Limiter] = []
        paid: list[tuple[Limiter, Mapping[str, float]]] = []
        try:
            for limiter in self.limiters:
                await limiter.take_slot()
                taken.append(limiter)
            for limiter in self.unpaced:
                if limiter.held_back():
                    await limiter.take_turn()  # charges nothing: waits out the pause
            for limiter in self.paced:
                charge = await limiter.take_turn(functools.partial(_estimated, limiter))
                paid.append((limiter, charge))
        except BaseException:
            _refund(paid)
            for limiter in taken:
                limiter.release()
            raise

    def leave(self) -> None:
        for limiter in self.limiters:
            limiter.release()

    def again(self, exc: Exception, since: float | None) -> float | None:
        # An item sent elsewhere: its attempts are decided where it runs, or
        # by the send layer here (pocketcore._dispatch.resend), not by the gate.
        return None

    def passed(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<gate of {', '.join(limiter.describe() for limiter in self.limiters)}>"
