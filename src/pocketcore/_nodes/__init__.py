"""Layer 7, nodes and flows: PocketFlow's node and flow classes and their lifecycle."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pocketcore._core.node import NodeClass, NodeLike

from .nodes import BaseNode

# The registry (a lower layer) tells a node class by issubclass(cls, NodeClass):
# declared here, where BaseNode is made, so that it never imports this layer.
NodeClass.register(BaseNode)

if TYPE_CHECKING:  # mypy holds BaseNode to what the lower layers (the hook specs) say of a node
    _node_like: type[NodeLike] = BaseNode
