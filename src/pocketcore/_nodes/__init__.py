"""Layer 7, nodes and flows: PocketFlow's node and flow classes and their lifecycle."""

from __future__ import annotations

from pocketcore._core.node import NodeClass

from .nodes import BaseNode

# The registry (a lower layer) tells a node class by issubclass(cls, NodeClass):
# declared here, where BaseNode is made, so that it never imports this layer.
NodeClass.register(BaseNode)
