"""What a node or flow built from a flow file is: its class, with the file's behaviour mixed in.

The params the file gives a node survive the params its flow passes down
(:class:`FromFile`), a batch flow given ``batch`` or ``batch_key`` runs the
passes the file says (:class:`FileBatch`), and the classes made for them
keep their user's name and pickle (for remote executors).
"""

from __future__ import annotations

import copy
import copyreg
import types
from collections.abc import Mapping
from typing import Any

from pocketcore._nodes.nodes import BaseNode


class FromFile(BaseNode):
    """Mixed into the class of every node and flow a file creates.

    A flow hands its params to each node it runs with ``set_params``, which
    replaces the node's own. For a node built from a file, the params the file
    gives it (``file_params``) fill in the keys that the flow does not pass,
    so they survive. What is passed still wins, as in PocketFlow, so that
    ``set_params(d)`` leaves every value of ``d`` in place, whoever calls it,
    and a value set on an outer flow reaches every node below it.
    """

    file_params: Mapping[str, Any] = types.MappingProxyType({})

    def set_params(self, params: dict[str, Any]) -> None:
        """Set ``params``, filling in the keys it lacks from this node's params in the file."""
        own = self.file_params
        # Without own params the flow's dict is kept as is, shared by the pass
        # as PocketFlow shares it.
        super().set_params({**own, **params} if own else params)


class FileBatch(BaseNode):
    """Mixed into a batch flow given ``batch`` or ``batch_key``: its ``prep`` returns the passes."""

    file_batch: list[dict[str, Any]] | None = None
    file_batch_key: str | None = None

    def prep(self, shared: Any) -> Any:
        """The params dicts of the passes, as the file says."""
        return self._passes(shared)

    async def prep_async(self, shared: Any) -> Any:
        """The params dicts of the passes, as the file says."""
        return self._passes(shared)

    def _passes(self, shared: Any) -> Any:
        key = self.file_batch_key
        if key is None:
            return copy.deepcopy(self.file_batch)  # each run starts from the file's values
        try:
            return shared[key]
        except KeyError:
            raise KeyError(f"batch_key {key!r}: the shared store has no such key") from None


file_classes: dict[tuple[type[BaseNode], bool], type[BaseNode]] = {}
_origins: dict[type[BaseNode], tuple[type[BaseNode], bool]] = {}


def file_class(cls: type[BaseNode], batched: bool) -> type[BaseNode]:
    """``cls`` with the flow-file behaviour mixed in, under the same name (made once).

    Keeping the name keeps messages, lifecycle events and graphs speaking of
    the class the user named.
    """
    made = file_classes.get((cls, batched))
    if made is not None:
        return made
    bases = (FromFile, FileBatch, cls) if batched else (FromFile, cls)

    def body(ns: dict[str, Any]) -> None:
        ns.update(__module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__)

    made = file_classes[cls, batched] = types.new_class(cls.__name__, bases, exec_body=body)
    _origins[made] = (cls, batched)
    # No module holds the made class under its name, so pickle could not find
    # it; its instances pickle as "cls, with the mixins" instead. Remote
    # executors send nodes to other processes that way. (copyreg, not a
    # __reduce__ method: that would cost every flow step a slow copy.copy.)
    copyreg.pickle(made, reduce_file_node)
    return made


def reduce_file_node(node: BaseNode) -> tuple[Any, ...]:
    cls, batched = _origins[type(node)]
    getstate = getattr(node, "__getstate__", None)  # Python 3.10's object has none
    return blank_file_node, (cls, batched), node.__dict__ if getstate is None else getstate()


def blank_file_node(cls: type[BaseNode], batched: bool) -> BaseNode:
    """An instance of ``cls``'s flow-file class, before pickle restores its state."""
    made = file_class(cls, batched)
    return made.__new__(made)
