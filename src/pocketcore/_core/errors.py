"""The exceptions pocketcore raises on its own account."""

from __future__ import annotations

__all__ = ["ConfigError", "PluginError", "PluginWarning", "PocketcoreError"]


class PocketcoreError(Exception):
    """Base class of every error pocketcore raises on its own account.

    Exceptions raised by user code inside ``prep``/``exec``/``post`` are never
    wrapped in this class: they reach the caller unchanged.
    """


class ConfigError(PocketcoreError, ValueError):
    """A configuration value is unusable.

    Raised for an unknown executor name, a concurrency limit that is not an
    integer >= 1, a value of the wrong type, or an executor that cannot run on
    the event loop that is already running. The message names where the value
    came from (an argument, an environment variable, a file, a node attribute)
    and, for executor names, the executors that are installed.
    """


class PluginError(PocketcoreError):
    """A plugin could not be loaded or contributed something invalid.

    Raised, for example, when two plugins register an executor under the same
    name; the message names both plugins.
    """


class PluginWarning(UserWarning):
    """An installed plugin failed to load; the others were loaded.

    Emitted once per failing entry point when the plugins are loaded; the
    message names the distribution, its version and the entry point. The same
    failures are listed in :attr:`pocketcore.Registry.failures`.
    """
