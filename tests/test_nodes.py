"""Kernel details behind PocketFlow's semantics: node copies and the retry counter."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pocketcore
from pocketcore._nodes.flows import _copy


class Plain(pocketcore.Node):
    pass


class WithCopy(pocketcore.Node):
    copies = 0

    def __copy__(self) -> WithCopy:
        type(self).copies += 1
        new = WithCopy()
        new.__dict__.update(self.__dict__)
        new.marked = True
        return new


class WithSlots(pocketcore.Node):
    __slots__ = ("extra",)


class WithGetstate(pocketcore.Node):
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "from_getstate": True}


attrs_dicts = st.dictionaries(
    st.text(alphabet="abcdefgh", min_size=1, max_size=4),
    st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.none()),
    max_size=5,
)


@given(attrs_dicts, st.sampled_from([Plain, WithCopy, WithSlots, WithGetstate]))
def test_node_copies_match_copy_copy(values: dict[str, Any], cls: type) -> None:
    node = cls()
    for key, value in values.items():
        setattr(node, key, value)
    if cls is WithSlots:
        node.extra = [1]
    ours, reference = _copy(node), copy.copy(node)
    assert type(ours) is type(reference) is cls
    assert ours is not node
    assert vars(ours) == vars(reference)
    for key in values:  # shallow: the same values, not copies of them
        assert getattr(ours, key) is getattr(node, key)
    if cls is WithSlots:
        assert ours.extra is node.extra
    assert _copy(None) is None


def test_a_custom_copy_hook_is_used_in_flows() -> None:
    WithCopy.copies = 0
    pocketcore.Flow(start=WithCopy()).run({})
    assert WithCopy.copies == 1


def test_the_retry_counter_is_per_item_and_also_on_the_node() -> None:
    seen: list[tuple[int, int]] = []

    class Flaky(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> list[int]:
            return [0, 1, 2]

        async def exec_async(self, item: int) -> int:
            seen.append((item, self.cur_retry))
            if self.cur_retry < item:
                raise ValueError(item)
            return item

    node = Flaky(max_retries=3)
    pocketcore.run(node, executor="asyncio")
    assert sorted(seen) == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
    # Outside the items, the node shows the last attempt made, as PocketFlow's does.
    assert node.cur_retry in {0, 1, 2}


def test_cur_retry_before_any_run_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="cur_retry"):
        _ = pocketcore.Node().cur_retry


@pytest.mark.parametrize("executor", ["asyncio", "trio", "sequential"])
@pytest.mark.parametrize("limit", [None, 2])
def test_an_input_that_fails_midway_is_a_plain_failure(executor: str, limit: int | None) -> None:
    import anyio

    ran: list[int] = []

    class Midway(pocketcore.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            def items() -> Any:
                yield 1
                yield 2
                raise ValueError("the input broke")

            return items()

        async def exec_async(self, item: int) -> None:
            await anyio.sleep(0.02)
            ran.append(item)

    with pytest.raises(ValueError, match="the input broke"):
        pocketcore.run(Midway(), executor=executor, max_concurrency=limit)
    seen = list(ran)
    time.sleep(0.05)
    assert ran == seen, "an item ran on after the error reached the caller"


def test_run_on_an_async_node_raises_before_reading_any_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POCKETCORE_MAX_CONCURRENCY", "0")  # would be a ConfigError
    with pytest.raises(RuntimeError, match=r"^Use run_async\.$"):
        pocketcore.AsyncNode().run({})
