"""Pairs of node definitions for the property that a cached result is reused only by its node.

A :class:`NodeSpec` is a node as a program defines it: the source of its
class (its ``exec``'s expression and a class attribute), an instance
attribute, its ``params``, its ``cache_version``, its input, the program it
belongs to (a folder of its own) and the name its module is imported under.
:func:`load` writes the program's file and imports it as a fresh module, as
a new process would; :func:`reuses` runs one node then another with one
store and says whether the second was served the first's result;
:func:`node_variants` makes a node and, for each part, one that differs in
that part alone (and the same node under each import spelling).
"""

from __future__ import annotations

import functools
import itertools
import sys
import types
from pathlib import Path
from typing import Any

import attrs
from hypothesis import strategies as st

import pocketcore
from pocketcore._core.store import Store

__all__ = ["NodeSpec", "forget", "load", "node_variants", "reuses"]

#: What ``exec`` computes from its input ``x`` and the class attribute ``FACTOR``.
BODIES = ("x + FACTOR", "x * FACTOR", "x - FACTOR", "[x] * FACTOR")
#: The module names a program's file is imported under (``{n}`` makes each fresh).
SPELLINGS = ("flow_{n}", "pkg_{n}.flow", "__pocketcore_main_{n}__")
_fresh = itertools.count()

SOURCE = """
import pocketcore

RAN = []


class Step(pocketcore.BatchNode):
    FACTOR = {factor!r}
    cache_version = {version!r}

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def prep(self, shared):
        return shared["items"]

    def exec(self, x):
        RAN.append(x)
        return ({body}, self.scale, dict(self.params))

    def post(self, shared, prep_res, exec_res):
        shared["out"] = exec_res
"""


@attrs.frozen
class NodeSpec:
    """A node as a program defines and configures it, and the input it is given."""

    body: str
    factor: int
    version: int | None
    scale: int
    params: tuple[tuple[str, int], ...]
    item: int
    program: int
    spelling: int

    def identity(self) -> tuple[Any, ...]:
        """Everything that may change the result: all but the module's name."""
        return attrs.astuple(self)[:-1]

    def expected(self) -> list[Any]:
        """What the node's run leaves in ``shared["out"]``, computed here."""
        x, factor = self.item, self.factor
        value = eval(self.body, {"x": x, "FACTOR": factor})  # one of BODIES
        return [(value, self.scale, dict(self.params))]


#: Each part of a spec, and the values it takes.
_PARTS: dict[str, st.SearchStrategy[Any]] = {
    "body": st.sampled_from(BODIES),
    "factor": st.integers(1, 3),
    "version": st.sampled_from([None, 1, 2]),
    "scale": st.integers(0, 2),
    "params": st.dictionaries(st.sampled_from("ab"), st.integers(0, 1)).map(
        lambda d: tuple(sorted(d.items()))
    ),
    "item": st.integers(0, 2),
    "program": st.integers(0, 1),
    "spelling": st.integers(0, len(SPELLINGS) - 1),
}


def _differs(old: object, new: object) -> bool:
    return new != old


@st.composite
def node_variants(draw: st.DrawFn) -> tuple[NodeSpec, list[NodeSpec]]:
    """A node spec, and others: itself imported under each spelling, and one per part changed."""
    first = NodeSpec(**{name: draw(values) for name, values in _PARTS.items()})
    others = [attrs.evolve(first, spelling=n) for n in range(len(SPELLINGS))]
    for name, values in _PARTS.items():
        if name != "spelling":
            value = draw(values.filter(functools.partial(_differs, getattr(first, name))))
            spelling = draw(_PARTS["spelling"])
            others.append(attrs.evolve(first, spelling=spelling, **{name: value}))
    return first, others


def load(spec: NodeSpec, root: Path) -> Any:
    """A fresh module of ``spec``'s program under ``root``, imported under its spelling.

    The program's file (``flow.py`` in a folder of its own) is written with
    ``spec``'s source, as a user edits it between two runs, and run as a new
    module (never from a cached ``.pyc``). It stays in ``sys.modules``, as a
    program's modules do, until :func:`forget` removes it.
    """
    folder = root / f"program-{spec.program}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flow.py"
    body = spec.body.replace("FACTOR", "self.FACTOR")
    source = SOURCE.format(factor=spec.factor, version=spec.version, body=body)
    path.write_text(source)
    name = SPELLINGS[spec.spelling].format(n=next(_fresh))
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(source, str(path), "exec"), module.__dict__)  # our own source
    return module


def forget(module: Any) -> None:
    """Remove a module :func:`load` made."""
    sys.modules.pop(module.__name__, None)


def reuses(first: NodeSpec, second: NodeSpec, store: Store, root: Path) -> bool:
    """Run ``first`` then ``second`` with ``store`` as their cache: whether ``second`` hit.

    Raises:
        AssertionError: A run's result is not what its own node computes.
    """
    ran = []
    for spec in (first, second):
        module = load(spec, root)
        try:
            node = module.Step(spec.scale)
            node.set_params(dict(spec.params))
            shared: dict[str, Any] = {"items": [spec.item]}
            pocketcore.run(node, shared, cache=store)
        finally:
            forget(module)
        assert shared["out"] == spec.expected(), (
            f"{spec} was served {shared['out']!r}, not its own {spec.expected()!r}"
        )
        ran.append(bool(module.RAN))
    assert ran[0], f"{first} was a hit in an empty store"
    return not ran[1]
