"""The command's two outcomes besides success: bad input (status 2) and failed user code (1)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pocketcore._core.errors import PocketcoreError

__all__ = ["BadInput", "TargetFailed", "user_code"]


class BadInput(Exception):
    """Input the command cannot use: reported in one line, exit status 2."""


class TargetFailed(Exception):
    """User code raised (the flow, or the factory building it): exit status 1.

    Attributes:
        error: The exception user code raised.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def user_code() -> Iterator[None]:
    """Run the body as the user's code: what it raises becomes :class:`TargetFailed`.

    pocketcore's own errors (a :class:`~pocketcore.ConfigError` found when the
    run starts, say) pass through unchanged: they are bad input, not a failing
    flow.

    Raises:
        TargetFailed: The body raised an exception other than a ``PocketcoreError``.
    """
    try:
        yield
    except PocketcoreError:
        raise
    except Exception as exc:
        raise TargetFailed(exc) from exc
