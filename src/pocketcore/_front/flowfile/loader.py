"""Building the nodes and flows of a flow file, within the limits of its size.

:class:`Loader` walks the file's ``[flow]`` and ``[flows]`` tables, creates
every node and flow it can (their classes from :mod:`.filenodes`), joins
them with their edges, and reports every problem (through :class:`.checks.Checks`)
instead of stopping at the first.
"""

from __future__ import annotations

from typing import Any

from pocketcore._core.errors import ConfigError
from pocketcore._nodes.flows import BatchFlow, Flow
from pocketcore._nodes.nodes import BaseNode, Node
from pocketcore._plugins.registry import Registry
from pocketcore._runtime.settings import SETTINGS, configure

from .checks import Checks, FatalProblem, Path, error_line, got, listing, suggest, toml_key
from .filenodes import FileBatch, FromFile, file_class

_TOP_KEYS = ("config", "flow", "flows")
# The run-level settings a file may give (the rows of the settings table): for
# the run in [config], else for a flow (and the nodes in it) or a node, as attributes.
RUN_SETTINGS = tuple(SETTINGS)
_CONFIG_KEYS = RUN_SETTINGS
_FLOW_SETTINGS = RUN_SETTINGS
_NODE_SETTINGS = ("max_retries", "wait", *RUN_SETTINGS)
_FLOW_KEYS = ("type", "start", "params", *_FLOW_SETTINGS, "batch", "batch_key", "nodes")
_NODE_KEYS = ("use", "flow", "params", "next", *_NODE_SETTINGS)

MAX_FLOW_DEPTH = 100
"""How deep ``[flows]`` tables may nest in one another.

Loading, running and drawing a flow recurse once per level or more; this
limit keeps them all well inside the interpreter's recursion limit, so a
deeper file is a problem of the file, not a ``RecursionError``.
"""

MAX_OBJECTS = 10_000
"""How many nodes and flows one file may build.

Each use of a ``[flows]`` table builds it anew, so tables used twice at each
of many levels multiply; past this many objects the file is rejected rather
than built for ever.
"""


class Loader(Checks):
    """Builds the flows of one file, collecting problems rather than stopping at the first.

    Each check that fails reports and lets loading go on with what is valid,
    so one pass finds everything. A ``[flows]`` table is built anew for each
    use (every use needs its own flow object); one that nothing uses is built
    once anyway, only to check it.
    """

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self.built = 0  # nodes and flows created, against MAX_OBJECTS
        self.too_deep = False  # MAX_FLOW_DEPTH was met (and reported)
        self.names: dict[str, BaseNode | None] = {}  # None: a node that could not be built
        self.flows: dict[str, Any] = {}
        self.checked: set[str] = set()  # [flows] tables built at least once
        self.cycles: set[frozenset[str]] = set()  # reported once, whichever flow they are met from

    # --- the file ---------------------------------------------------------------

    def load(self, data: dict[str, Any]) -> tuple[BaseNode | None, dict[str, Any]]:
        """Build the top-level flow; return it with the valid settings of ``[config]``."""
        self.check_keys(data, _TOP_KEYS, ())
        config = data.get("config", {})
        settings: dict[str, Any] = {}
        if self.is_table(config, ("config",)):
            self.check_keys(config, _CONFIG_KEYS, ("config",))
            settings = self.settings(config, ("config",), _CONFIG_KEYS)
        flows = data.get("flows", {})
        if self.is_table(flows, ("flows",)):
            self.flows = flows
        flow = None
        if "flow" in data:
            flow = self.build_flow(data["flow"], ("flow",), "", ())
        else:
            self.report(("flow",), "", "missing: a flow file needs a [flow] table (start, nodes)")
        for name, table in self.flows.items():
            if name not in self.checked:  # nothing used it: check it all the same
                self.checked.add(name)
                self.build_flow(table, ("flows", name), None, (name,))
        return flow, settings

    # --- flows ------------------------------------------------------------------

    def build_flow(
        self, table: object, path: Path, prefix: str | None, stack: tuple[str, ...]
    ) -> BaseNode | None:
        """Build the flow of a ``[flow]`` or ``[flows.NAME]`` table.

        ``prefix`` qualifies the names of its nodes (``None``: do not record
        them); ``stack`` holds the ``[flows]`` tables being built around it.
        """
        if not self.is_table(table, path):
            return None
        self.check_keys(table, _FLOW_KEYS, path)
        specs, start = self.specs_and_start(table, path)
        batch = self.batch(table, path)
        settings = self.settings(table, path, _FLOW_SETTINGS)
        params = self.params(table, path)
        nodes = self.build_nodes(specs, path, prefix, stack)
        cls = self.flow_class(table, path, nodes, batch)
        flow = None if cls is None else self.create(cls, path, "type", batched=batch is not None)
        if not isinstance(flow, Flow):
            return None
        if isinstance(start, str) and start in nodes:
            flow.start(nodes[start])
        if isinstance(flow, FileBatch) and batch is not None:
            flow.file_batch, flow.file_batch_key = batch
        self.configure(flow, path, settings, params)
        return flow

    def specs_and_start(self, table: dict[str, Any], path: Path) -> tuple[dict[str, Any], object]:
        """The flow's node tables (empty when invalid), and its ``start`` (checked)."""
        specs: dict[str, Any] = {}
        raw = table.get("nodes")
        if raw is None:
            self.report(path, "nodes", "missing: a flow needs at least one [...nodes.NAME] table")
        elif self.is_table(raw, path, "nodes"):
            specs = raw
        # Without a valid nodes table, a start name cannot be checked (and
        # saying it names no node would only repeat that problem).
        checkable = specs is raw
        start = table.get("start")
        if start is None:
            self.report(path, "start", "missing: the name of the flow's first node")
        elif not isinstance(start, str) or (checkable and start not in specs):
            self.report(path, "start", self.no_node(start, specs))
        return specs, start

    def build_nodes(
        self, specs: dict[str, Any], path: Path, prefix: str | None, stack: tuple[str, ...]
    ) -> dict[str, BaseNode]:
        """Build the nodes of a flow's node tables, then join them with their edges."""
        nodes: dict[str, BaseNode] = {}
        edges: list[tuple[str, str, str]] = []
        for name, spec in specs.items():
            node_path = (*path, "nodes", name)
            node = self.named_node(name, spec, node_path, prefix, stack)
            if node is not None:
                nodes[name] = node
            if isinstance(spec, dict):
                edges += [(name, *edge) for edge in self.edges(spec, node_path, specs)]
        # Joined once every node exists: edges may point forwards, or loop back.
        for name, action, target in edges:
            if name in nodes and target in nodes:
                nodes[name].next(nodes[target], action)
        return nodes

    def named_node(
        self, name: str, spec: object, path: Path, prefix: str | None, stack: tuple[str, ...]
    ) -> BaseNode | None:
        """Build one node and record it in ``names`` (by its qualified name, given a prefix)."""
        if not name or "." in name:
            self.report(path, "", "a node name must be non-empty and without '.'")
        qualified = None if prefix is None else prefix + name
        if qualified is not None:
            self.names[qualified] = None  # holds its place before the nodes nested in it
        node = self.build_node(spec, path, qualified, stack)
        if qualified is not None:
            self.names[qualified] = node
        return node

    # --- nodes ------------------------------------------------------------------

    def build_node(
        self, spec: object, path: Path, qualified: str | None, stack: tuple[str, ...]
    ) -> BaseNode | None:
        """Build the node of a ``[...nodes.NAME]`` table (its edges are joined later)."""
        if not self.is_table(spec, path):
            return None
        self.check_keys(spec, _NODE_KEYS, path)
        use, flow = spec.get("use"), spec.get("flow")
        node = None
        if use is not None and flow is not None:
            self.report(path, "", "give use or flow, not both")
        elif use is not None:
            cls = self.node_class(use, path, "use", kind="node")
            if cls is not None:
                node = self.create(cls, path, "use", batched=False)
        elif flow is not None:
            node = self.nested_flow(flow, path, qualified, stack)
        else:
            self.report(
                path, "", "missing use (a node name or 'module:Class') or flow (a [flows] name)"
            )
        settings = self.settings(spec, path, _NODE_SETTINGS, node=use is not None and flow is None)
        params = self.params(spec, path)
        if node is not None:
            self.configure(node, path, settings, params)
        return node

    def nested_flow(
        self, name: object, path: Path, qualified: str | None, stack: tuple[str, ...]
    ) -> BaseNode | None:
        if not isinstance(name, str) or name not in self.flows:
            hint = suggest(name, self.flows) if isinstance(name, str) else ""
            shown = f"[flows.{toml_key(name)}]" if isinstance(name, str) else repr(name)
            self.report(path, "flow", f"no {shown} table (flows: {listing(self.flows)}){hint}")
            return None
        if name in stack:
            cycle = (*stack[stack.index(name) :], name)
            if frozenset(cycle) not in self.cycles:
                self.cycles.add(frozenset(cycle))
                chain = " -> ".join(f"flows.{toml_key(n)}" for n in cycle)
                self.report(path, "flow", f"a flow cannot contain itself: {chain}")
            return None
        if len(stack) >= MAX_FLOW_DEPTH:
            if not self.too_deep:  # once: every deeper table would say it again
                self.too_deep = True
                self.report(path, "flow", f"[flows] tables nested more than {MAX_FLOW_DEPTH} deep")
            return None
        self.checked.add(name)
        prefix = None if qualified is None else qualified + "."
        return self.build_flow(self.flows[name], ("flows", name), prefix, (*stack, name))

    def create(
        self, cls: type[BaseNode], path: Path, key: str, *, batched: bool
    ) -> BaseNode | None:
        self.built += 1
        if self.built > MAX_OBJECTS:
            raise FatalProblem(
                f"the file builds more than {MAX_OBJECTS} nodes and flows (each use of a "
                "[flows] table builds it anew)"
            )
        try:
            node = file_class(cls, batched and issubclass(cls, BatchFlow))()
        except Exception as exc:  # a constructor that needs arguments, or fails
            self.report(path, key, f"cannot create {cls.__qualname__}: {error_line(exc)}")
            return None
        assert isinstance(node, FromFile)
        # What the constructor set is the base of the node's own params; the
        # file's are added to that same dict in configure().
        node.file_params = node.params
        return node

    def edges(
        self, spec: dict[str, Any], path: Path, specs: dict[str, Any]
    ) -> list[tuple[str, str]]:
        """The ``(action, target)`` pairs of a node's ``next`` whose target exists."""
        nxt = spec.get("next")
        if nxt is None:
            return []
        if isinstance(nxt, str):
            pairs = [("next", "default", nxt)]
        elif isinstance(nxt, dict):
            pairs = [(f"next.{toml_key(action)}", action, target) for action, target in nxt.items()]
        else:
            self.report(
                path, "next", f"expected a node name or a table of action = node, {got(nxt)}"
            )
            return []
        found = []
        for key, action, target in pairs:
            if isinstance(target, str) and target in specs:
                found.append((action, target))
            else:
                self.report(path, key, self.no_node(target, specs))
        return found

    def configure(
        self, node: BaseNode, path: Path, settings: dict[str, Any], params: dict[str, Any]
    ) -> None:
        """Give the node its checked settings, as its constructor would, and add ``params``."""
        assert isinstance(node, FromFile)
        node.params.update(params)  # the same dict as node.file_params (see create)
        for key, value in settings.items():
            if key in ("max_retries", "wait") and (
                not isinstance(node, Node) or isinstance(node, Flow)
            ):
                self.report(
                    path, key, f"{type(node).__name__} has no retries (not a pocketcore.Node)"
                )
            elif key in SETTINGS:
                try:
                    configure(node, {key: value}, source="the flow file")
                except ConfigError as exc:
                    self.report(path, key, str(exc))
            else:
                setattr(node, key, value)
