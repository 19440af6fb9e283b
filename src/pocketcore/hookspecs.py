"""Hook specifications for pocketcore plugins.

A plugin is any module or object with functions named after these specs and
marked with :data:`pocketcore.hookimpl` (or any ``pluggy.HookimplMarker``
created with the project name ``"pocketcore"``, so a plugin does not need to
import pocketcore at all). Installed distributions expose plugins through the
entry-point group ``pocketcore``::

    [project.entry-points.pocketcore]
    myexec = "my_package.plugin"

Every spec's docstring says when it is called, what its arguments are and what
its return value means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "pocketcore_register_executors"]

PROJECT_NAME = "pocketcore"
"""The pluggy project name and the entry-point group plugins are found in."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (used by this module only)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations in plugins."""


@hookspec
def pocketcore_register_executors(register: Callable[[Any], None]) -> None:
    """Contribute executors.

    Called once per process, the first time an executor is looked up by name
    (lazily, not at import). Call ``register(executor)`` once for each
    executor the plugin provides; ``executor`` must satisfy
    :class:`pocketcore.Executor` (a ``name``, a ``backend``, ``run`` and an
    async ``map``).

    Args:
        register: Records one executor together with the plugin that
            registered it. Registering a name that another plugin already
            registered raises :class:`pocketcore.PluginError` naming both.

    Returns:
        Nothing; the return value is ignored.
    """
