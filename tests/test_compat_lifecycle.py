"""Differential tests against PocketFlow 0.0.3: a node's lifecycle, retries and fallback.

prep/exec/post and the arguments post receives, retries with ``cur_retry``,
``wait``, the default and custom ``exec_fallback``, sync batch nodes, the
constructors' signatures and the classes' relationships. Each test builds one
program with ``pocketflow``'s classes and with ``pocketcore``'s and requires
identical outcomes (see ``compat_programs``), then checks a few facts about
PocketFlow's own outcome so that a program testing nothing is noticed.
"""

from __future__ import annotations

from typing import Any

import pytest

from .compat_programs import CLASS_NAMES, UNSET, Program, compare, methods

# --------------------------------------------------------------------------
# Lifecycle, retries, fallback
# --------------------------------------------------------------------------


def test_prep_exec_post_lifecycle_and_post_arguments() -> None:
    def build(mod, rec):
        node = rec.node(
            mod,
            "Node",
            "n",
            prep=lambda self, shared: shared["x"] + 1,
            exec=lambda self, p: p * 10,
            post=lambda self, shared, p, e: shared.update(out=(p, e)) or "done",
        )
        return Program(node, {"x": 1})

    pf = compare(build)
    assert methods(pf) == [("n", "prep"), ("n", "exec"), ("n", "post")]
    # post gets the shared store, prep's result and exec's result
    assert pf.calls("post")[0].args[1:] == (2, 20)
    assert pf.result == "done"


def test_default_methods_return_none() -> None:
    # A node that overrides nothing: prep, exec and post of the library run.
    def build(mod, rec):
        return Program(rec.node(mod, "Node", "n"), {})

    pf = compare(build)
    assert pf.calls("post")[0].args[1:] == (None, None)


def failing_exec(fails: int) -> Any:
    """An exec that raises on its first ``fails`` attempts of each call, using cur_retry."""

    def exec(self, p):
        if self.cur_retry < fails:
            raise ValueError(f"attempt {self.cur_retry} of {p}")
        return ("ok", p, self.cur_retry)

    return exec


@pytest.mark.parametrize("fails", [0, 1, 2])
def test_retries_then_success_and_cur_retry_in_sync_exec(fails) -> None:
    def build(mod, rec):
        node = rec.node(
            mod,
            "Node",
            "n",
            max_retries=3,
            wait=0,
            prep=lambda s, sh: "p",
            exec=failing_exec(fails),
        )
        return Program(node)

    pf = compare(build)
    assert [c.cur_retry for c in pf.calls("exec")] == list(range(fails + 1))


def test_default_fallback_reraises_last_exception() -> None:
    def build(mod, rec):
        return Program(rec.node(mod, "Node", "n", max_retries=2, exec=failing_exec(5)))

    pf = compare(build, error=ValueError)
    assert pf.error == ("<exc>", "ValueError", "attempt 1 of None")
    assert len(pf.calls("exec_fallback")) == 1
    assert not pf.calls("post")


def test_custom_fallback_value_reaches_post() -> None:
    def build(mod, rec):
        node = rec.node(
            mod,
            "Node",
            "n",
            3,
            0,
            exec=failing_exec(9),
            fallback=lambda self, p, exc: ("fallback", str(exc), self.cur_retry),
            post=lambda self, shared, p, e: shared.setdefault("got", e),
        )
        return Program(node)

    pf = compare(build)
    assert pf.shared["got"][0] == "fallback"
    assert pf.calls("exec_fallback")[0].args[1][0] == "<exc>"


@pytest.mark.parametrize("kind", ["Node", "BatchNode"])
def test_max_retries_zero_never_calls_exec(kind) -> None:
    def build(mod, rec):
        node = rec.node(
            mod,
            kind,
            "n",
            max_retries=0,
            prep=lambda self, shared: [1, 2],
            exec=lambda self, p: 1 / 0,
        )
        return Program(node)

    pf = compare(build)
    assert not pf.calls("exec")
    assert not pf.calls("exec_fallback")


def test_wait_between_attempts() -> None:
    def build(mod, rec):
        return Program(rec.node(mod, "Node", "n", max_retries=2, wait=0.001, exec=failing_exec(1)))

    compare(build)


# --------------------------------------------------------------------------
# Batch nodes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("items", [[3, 1, 2], [], None])
def test_batch_node(items) -> None:
    def build(mod, rec):
        node = rec.node(
            mod,
            "BatchNode",
            "b",
            max_retries=2,
            prep=lambda self, shared: items,
            exec=lambda self, i: i * 2 if self.cur_retry or i != 1 else 1 / 0,
        )
        return Program(node)

    compare(build)


# --------------------------------------------------------------------------
# Constructors and class relationships
# --------------------------------------------------------------------------


def test_constructor_signatures() -> None:
    def build(mod, rec):
        def attrs(n):
            return {
                k: getattr(n, k, UNSET)
                for k in ("max_retries", "wait", "params", "successors", "start_node")
            }

        a = mod.Node(4, 0.5)
        made = {
            "Node()": attrs(mod.Node()),
            "Node(4, 0.5)": attrs(a),
            "BatchNode(2)": attrs(mod.BatchNode(2)),
            "AsyncNode(wait=1)": attrs(mod.AsyncNode(wait=1)),
            "Flow()": attrs(mod.Flow()),
            "Flow(start=a)": attrs(mod.Flow(start=a))["start_node"] is a,
            "Flow(a)": attrs(mod.Flow(a))["start_node"] is a,
            "AsyncFlow()": attrs(mod.AsyncFlow()),
            "BaseNode()": attrs(mod.BaseNode()),
        }
        return Program(call=lambda: made)

    pf = compare(build)
    assert pf.result["Node(4, 0.5)"]["max_retries"] == 4


def test_class_relationships() -> None:
    def build(mod, rec):
        classes = {name: getattr(mod, name) for name in CLASS_NAMES}
        sub = {(a, b): issubclass(classes[a], classes[b]) for a in classes for b in classes}
        mro = {name: [c.__name__ for c in cls.__mro__] for name, cls in classes.items()}
        # instances too, not only classes
        objs = {name: cls() for name, cls in classes.items()}
        inst = {(a, b): isinstance(objs[a], classes[b]) for a in classes for b in classes}
        return Program(call=lambda: (sub, mro, inst))

    pf = compare(build)
    sub, _, inst = pf.result
    assert sub[("AsyncParallelBatchNode", "BatchNode")]
    assert sub[("AsyncParallelBatchNode", "AsyncNode")]
    assert sub[("AsyncFlow", "Flow")]
    assert sub[("AsyncFlow", "AsyncNode")]
    assert inst == sub


# --------------------------------------------------------------------------
# cur_retry as a plain attribute. pocketcore keeps a counter per item (intended
# fix a), yet these PocketFlow programs must still behave the same: an exec that
# assigns cur_retry steers the retry loop, and a class attribute is shadowed.
# --------------------------------------------------------------------------


def test_exec_assigning_cur_retry() -> None:
    # PocketFlow's retry loop is `for self.cur_retry in range(...)` and compares
    # self.cur_retry with max_retries - 1: cur_retry is a plain attribute, so a
    # value assigned in exec reads back, and assigning the last attempt gives up.
    def exec(self, p):
        before = self.cur_retry
        self.cur_retry = self.max_retries - 1  # "no point retrying this one"
        self._rec.shared.setdefault("reads", []).append((before, self.cur_retry))
        raise ValueError("give up")

    def build(mod, rec):
        node = rec.node(
            mod, "Node", "n", 3, exec=exec, fallback=lambda self, p, exc: ("fb", self.cur_retry)
        )
        return Program(node, {})

    pf = compare(build)
    assert len(pf.calls("exec")) == 1


def test_cur_retry_declared_on_the_class() -> None:
    # A node class that declares `cur_retry = 0` (e.g. for type checkers or a
    # default) still sees the attempt number in PocketFlow: the retry loop sets
    # the instance attribute, which shadows the class attribute.
    def build(mod, rec):
        seen = []

        class Declared(mod.Node):
            cur_retry = 0

            def exec(self, p):
                seen.append(self.cur_retry)
                if self.cur_retry < 2:
                    raise ValueError("again")
                return "ok"

        return Program(Declared(max_retries=3), after=lambda: seen)

    pf = compare(build)
    assert pf.extra == [0, 1, 2]
