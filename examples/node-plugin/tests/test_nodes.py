"""The example nodes do what they say, alone and chained, on every executor."""

from __future__ import annotations

import time
from typing import Any

import pytest

import pocketcore
from pocketcore_example_nodes.nodes import Uppercase, WordCount

EXECUTORS = ["sequential", "asyncio", "trio"]
POEM = "The cat sat on the mat.\nThe dog sat on the log.\nA cat and a dog!\n"


def run(node: pocketcore.BaseNode, shared: dict[str, Any], executor: str = "asyncio") -> float:
    start = time.perf_counter()
    pocketcore.run(node, shared, executor=executor)
    return time.perf_counter() - start


def word_count(**params: Any) -> WordCount:
    node = WordCount()
    node.set_params(params)
    return node


def uppercase(**params: Any) -> Uppercase:
    node = Uppercase()
    node.set_params(params)
    return node


def test_word_count_counts_case_insensitively_most_frequent_first() -> None:
    shared: dict[str, Any] = {"text": POEM}
    run(word_count(), shared)
    assert shared["word_counts"] == {
        "total": 17,
        "distinct": 9,
        # Ties keep the order of first appearance: cat before sat, on, dog.
        "top": {"the": 4, "cat": 2, "sat": 2, "on": 2, "dog": 2},
    }


def test_word_count_params() -> None:
    shared: dict[str, Any] = {"poem": POEM}
    run(word_count(source="poem", target="counts", top=0, min_length=3), shared)
    counts = shared["counts"]
    assert counts["total"] == 13  # "on" twice, "A" and "a" are too short
    assert list(counts["top"]) == ["the", "cat", "sat", "dog", "mat", "log", "and"]
    assert "word_counts" not in shared


def test_word_count_words_are_letters_with_apostrophes() -> None:
    shared: dict[str, Any] = {"text": "Don\u2019t stop: it's route 66, don't_stop."}
    run(word_count(top=0), shared)
    assert shared["word_counts"]["top"] == {
        "don't": 1,
        "don\u2019t": 1,
        "stop": 2,
        "it's": 1,
        "route": 1,
    }


@pytest.mark.parametrize("executor", EXECUTORS)
def test_uppercase_keeps_line_order_and_endings(executor: str) -> None:
    text = "first\r\nsecond\n\nfourth without newline"
    shared: dict[str, Any] = {"text": text}
    run(uppercase(delay=0.001), shared, executor)
    assert shared["text"] == text.upper()


def test_uppercase_writes_to_target_and_handles_an_empty_text() -> None:
    shared: dict[str, Any] = {"poem": POEM, "empty": ""}
    run(uppercase(source="poem", target="loud"), shared)
    assert shared["loud"] == POEM.upper()
    assert shared["poem"] == POEM
    run(uppercase(source="empty"), shared)
    assert shared["empty"] == ""


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_uppercase_lines_run_in_parallel(executor: str) -> None:
    # 10 lines x 50 ms: ~0.5 s one at a time, ~0.05 s in parallel; compared
    # side by side, with half the sequential time as a wide margin.
    shared: dict[str, Any] = {"text": "line\n" * 10}
    sequential = run(uppercase(delay=0.05), dict(shared), "sequential")
    parallel = run(uppercase(delay=0.05), dict(shared), executor)
    assert sequential >= 10 * 0.05
    assert parallel < sequential / 2


def test_the_nodes_chain_in_a_flow_with_flow_params() -> None:
    # Inside a flow, every node of a pass gets the flow's params (as in
    # PocketFlow), so the flow's "top" reaches word_count.
    shout = Uppercase()
    shout >> WordCount()
    flow = pocketcore.AsyncFlow(start=shout)
    flow.set_params({"top": 2})
    shared: dict[str, Any] = {"text": POEM}
    pocketcore.run(flow, shared)
    assert shared["text"] == POEM.upper()
    assert shared["word_counts"]["top"] == {"the": 4, "cat": 2}


@pytest.mark.parametrize(
    ("node", "error", "message"),
    [
        (word_count(top=-1), TypeError, r"WordCount: param 'top' must be an int >= 0, got -1"),
        (word_count(top=True), TypeError, r"param 'top' must be an int >= 0, got True"),
        (word_count(source=""), TypeError, r"param 'source' must be a non-empty string"),
        (word_count(source="nope"), KeyError, r"the shared store has no 'nope' to read"),
        (uppercase(delay="1"), TypeError, r"Uppercase: param 'delay' must be a number >= 0"),
        (uppercase(source="n"), TypeError, r"shared\['n'\] must be a str, got int"),
    ],
)
def test_bad_params_and_inputs_are_clear_errors(
    node: pocketcore.BaseNode, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        run(node, {"text": "a b\nc", "n": 3})
