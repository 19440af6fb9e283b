"""What a demo is: a flow built one by one or in parallel, with its store and result."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from pocketcore._nodes.nodes import BaseNode

__all__ = ["Demo"]


@attrs.frozen
class Demo:
    """One demo flow, built one by one or in parallel.

    Attributes:
        title: How the table names it.
        kinds: The class that runs the items one after another, and the
            class that hands them to the executor.
        delay_variable: The environment variable that sets the slow call's seconds.
        default_delay: The seconds without it.
        build: ``build(parallel)``: a new flow, one by one or in parallel.
        inputs: The store's key for the items, and the items (copied per run).
        output: The store's key for what every run of the demo must agree on.
    """

    title: str
    kinds: tuple[str, str]
    delay_variable: str
    default_delay: float
    build: Callable[[bool], BaseNode]
    inputs: tuple[str, Mapping[str, Any]]
    output: str

    def start(self, delay: float) -> dict[str, Any]:
        """A new initial store: a copy of the items, and the slow call's ``delay``."""
        key, items = self.inputs
        return {key: dict(items), "delay": delay}

    def result(self, shared: dict[str, Any]) -> object:
        """What a run left under ``output``: every run of the demo must agree on it."""
        return shared[self.output]

    def delay(self) -> float:
        """The slow call's seconds: ``delay_variable`` from the environment, or the default.

        Raises:
            ValueError: The variable is not a number of seconds >= 0; the
                message names it.
        """
        text = os.environ.get(self.delay_variable)
        if text is None:
            return self.default_delay
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"{self.delay_variable} must be a number of seconds >= 0, got {text!r}"
            )
        return value
