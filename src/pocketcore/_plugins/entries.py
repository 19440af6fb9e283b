"""What the registry holds: one record per contribution, with the plugin that made it."""

from __future__ import annotations

import attrs

from pocketcore._core.executor import Executor
from pocketcore._core.node import NodeLike
from pocketcore._core.store import StoreOpener

__all__ = ["ExecutorEntry", "NodeEntry", "StoreEntry"]


@attrs.frozen
class ExecutorEntry:
    """One registered executor and the plugin that registered it.

    Attributes:
        name: The executor's name.
        executor: The executor object.
        plugin: The name of the plugin that registered it (its entry-point
            name for installed plugins).
    """

    name: str
    executor: Executor
    plugin: str


@attrs.frozen
class NodeEntry:
    """One registered node (or flow) class and where it came from.

    Attributes:
        name: The name it is created by.
        cls: The class.
        supplier: The plugin that registered it, or ``"entry point NAME"``
            for classes declared in the ``pocketcore.nodes`` group.
        distribution: ``"name version"`` of the distribution that supplied
            it, or ``None`` when it was registered in code.
        plugin: The name of the plugin whose ``pocketcore_register_nodes``
            registered it, or ``None`` for a ``pocketcore.nodes`` entry point.
    """

    name: str
    cls: type[NodeLike]
    supplier: str
    distribution: str | None
    plugin: str | None = None


@attrs.frozen
class StoreEntry:
    """One registered result-cache store and the plugin that registered it.

    Attributes:
        name: The store's name, as a cache setting names it (``"NAME:..."``).
        opener: Opens the store a setting names (see :class:`~pocketcore.StoreOpener`).
        plugin: The name of the plugin that registered it.
    """

    name: str
    opener: StoreOpener
    plugin: str
