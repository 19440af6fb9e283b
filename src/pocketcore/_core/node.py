"""What the layers below the nodes know of a node: :class:`NodeLike` and :class:`NodeClass`.

The node classes live in layer 7 (``pocketcore._nodes``), above the hook
specs, the registry and the run-time that must speak of nodes. They speak of
them through these two declarations instead of importing that layer:

* :class:`NodeLike`, a protocol for the types: what the hook specs hand an
  observer and what the registry makes (``pocketcore.BaseNode`` satisfies it);
* :class:`NodeClass`, an abstract class with no members, for the one question
  the registry asks of a class a plugin registers as a node: is it a
  ``pocketcore.BaseNode`` subclass? The node layer registers ``BaseNode``
  with it (``NodeClass.register(BaseNode)``, in ``pocketcore._nodes``), so
  ``issubclass(cls, NodeClass)`` holds for exactly those classes.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["NodeClass", "NodeLike"]


class NodeLike(Protocol):
    """A node or flow as the lower layers see it; ``pocketcore.BaseNode`` is one.

    Attributes:
        params: The node's parameters (set by its flow before each step).
        successors: The node that follows it for each action.
    """

    @property
    def params(self) -> dict[str, Any]:
        """The node's parameters."""
        ...

    @property
    def successors(self) -> Mapping[str, NodeLike]:
        """The node that follows it for each action."""
        ...

    def set_params(self, params: dict[str, Any]) -> None:
        """Replace the node's parameters with ``params``."""
        ...


class NodeClass(abc.ABC):  # noqa: B024 - a mark: it declares no method on purpose
    """The mark of a node class: ``pocketcore.BaseNode`` and its subclasses, and no other.

    ``BaseNode`` is registered as a virtual subclass by the node layer, which
    is imported before any node class can exist; so the registry tells a node
    class with ``issubclass(cls, NodeClass)`` and never imports that layer.
    """
