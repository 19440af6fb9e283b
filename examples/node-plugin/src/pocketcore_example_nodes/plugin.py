"""The plugin half of the example: registers ``uppercase`` through the hook.

pocketcore loads this module through the entry point ``example-nodes`` of the
group ``pocketcore``, in every process that runs a flow, and calls the hook
below the first time anyone asks for the registered nodes.
"""

from __future__ import annotations

from collections.abc import Callable

from pocketcore import hookimpl

__all__ = ["pocketcore_register_nodes"]


@hookimpl
def pocketcore_register_nodes(register: Callable[[str, type], None]) -> None:
    """Register :class:`~pocketcore_example_nodes.nodes.Uppercase` as ``uppercase``."""
    # Imported here, not at the top: the plugin module is loaded by every
    # process that runs any flow, but the node classes are only needed by the
    # ones that ask for registered nodes.
    from .nodes import Uppercase

    register("uppercase", Uppercase)
