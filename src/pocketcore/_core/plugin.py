"""What a plugin may declare about itself: :class:`PluginState` and :class:`ReportsState`.

Some plugins are installed but idle: an observer with nothing to report to
(the OpenTelemetry plugin before the application sets a tracer provider).
Such a plugin declares :class:`ReportsState`. The registry asks it once per
run whether it is active, so that a run nobody really listens to costs
nothing, and ``pocketcore plugins`` shows its state and, when it is idle, why.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

__all__ = ["PluginState", "ReportsState"]


@attrs.frozen
class PluginState:
    """What a plugin says of itself: whether it is active now and, if it is not, why.

    Attributes:
        active: Its hooks do something in a run that starts now.
        reason: Why it is not active (or any detail of its state), in a few
            words for ``pocketcore plugins``; ``""`` when there is nothing to say.
    """

    active: bool
    reason: str = ""


@runtime_checkable
class ReportsState(Protocol):
    """A plugin that says whether it is active (optional).

    A plugin object with a ``plugin_state()`` method is one. While every
    plugin that implements a lifecycle hook is of this kind and says it is
    inactive, a run has no observer at all and its hooks are never called:
    the plugin costs nothing. It is asked when each run starts, so it can
    become active at any time (when the application configures what it
    needs) and the next run sees it.
    """

    def plugin_state(self) -> PluginState:
        """Whether the plugin is active now, and if not, why. Called once per run; keep it cheap."""
        ...
