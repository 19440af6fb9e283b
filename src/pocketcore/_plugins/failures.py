"""What went wrong with a plugin: the :class:`PluginFailure` record and how one is reported.

A failure is never fatal to the other plugins. It is recorded in
:attr:`pocketcore.Registry.failures` and warned about once with
:class:`pocketcore.PluginWarning`; the command line lists the same records.
"""

from __future__ import annotations

import warnings

import attrs

from pocketcore._core.errors import PluginWarning

__all__ = ["PluginFailure", "exception_line", "warn_failure"]


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded, or whose registration hook failed.

    Attributes:
        distribution: The distribution that declared the entry point, as
            ``"name version"`` (``"?"`` when it is not installed at all, or
            for a plugin registered in code).
        entry_point: The entry point's name; for a failed registration hook,
            the plugin's name (its entry-point name, for an installed plugin).
        error: A one-line description of what went wrong.
        group: The entry-point group: ``"pocketcore"`` (plugins) or
            ``"pocketcore.nodes"`` (node classes).
        hook: The registration hook that failed (``"pocketcore_register_executors"``
            or ``"pocketcore_register_nodes"``), or ``None`` when the entry
            point itself failed to load. A plugin whose hook failed contributes
            nothing through that hook; its other hooks are unaffected.
    """

    distribution: str
    entry_point: str
    error: str
    group: str = "pocketcore"
    hook: str | None = None

    def __str__(self) -> str:
        what = "plugin" if self.group == "pocketcore" else "node"
        happened = "failed to load" if self.hook is None else f"failed in {self.hook}"
        where = f"{what} {self.entry_point!r} (distribution {self.distribution})"
        return f"{where} {happened}: {self.error}"


def exception_line(exc: BaseException) -> str:
    """``"TypeName: message"``: an exception on one line, as failures show it."""
    return f"{type(exc).__name__}: {exc}"


def warn_failure(failure: PluginFailure) -> None:
    """Emit the :class:`PluginWarning` that announces ``failure``."""
    warnings.warn(str(failure), PluginWarning, stacklevel=4)
