"""The example's node classes: async, configured entirely through params.

Both read a text from the shared store and write their result back under a key
named by a param, so several of them can be chained in one flow, by name, from
a flow file.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, TypedDict

import anyio

import pocketcore

__all__ = ["Uppercase", "WordCount", "WordCounts"]

# Letters, optionally joined by apostrophes, straight or curly ("don't", "o'clock"); digits and
# underscores are not words, so "route 66" counts one word.
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")


class WordCounts(TypedDict):
    """What :class:`WordCount` writes to the shared store.

    Attributes:
        total: The number of words counted.
        distinct: The number of different words (case-insensitive).
        top: The most frequent words, most frequent first, with their counts;
            ties keep the order in which the words first appear.
    """

    total: int
    distinct: int
    top: dict[str, int]


def _text_param(node: pocketcore.BaseNode, name: str, default: str) -> str:
    value = node.params.get(name, default)
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"{type(node).__name__}: param {name!r} must be a non-empty string, got {value!r}"
        )
    return value


def _count_param(node: pocketcore.BaseNode, name: str, default: int) -> int:
    value = node.params.get(name, default)
    # bool is an int subclass; True as a count is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{type(node).__name__}: param {name!r} must be an int >= 0, got {value!r}")
    return value


def _seconds_param(node: pocketcore.BaseNode, name: str, default: float) -> float:
    value = node.params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise TypeError(
            f"{type(node).__name__}: param {name!r} must be a number >= 0, got {value!r}"
        )
    return float(value)


def _shared_text(node: pocketcore.BaseNode, shared: dict[str, Any], key: str) -> str:
    try:
        text = shared[key]
    except KeyError:
        raise KeyError(
            f"{type(node).__name__}: the shared store has no {key!r} to read "
            f"(it has: {', '.join(map(repr, shared)) or 'nothing'})"
        ) from None
    if not isinstance(text, str):
        raise TypeError(
            f"{type(node).__name__}: shared[{key!r}] must be a str, got {type(text).__name__}"
        )
    return text


class WordCount(pocketcore.AsyncNode):
    """Count the words of a text in the shared store.

    Words are runs of letters (apostrophes may join them), compared
    case-insensitively.

    Params:
        source: The shared key holding the text (default ``"text"``).
        target: The shared key the :class:`WordCounts` are written to
            (default ``"word_counts"``).
        top: How many of the most frequent words to keep; ``0`` keeps them
            all (default ``5``).
        min_length: Words shorter than this are not counted (default ``1``).

    Raises:
        KeyError: The shared store has no ``source``.
        TypeError: A param, or the text, has the wrong type.
    """

    async def prep_async(self, shared: dict[str, Any]) -> str:
        """Return the text to count."""
        return _shared_text(self, shared, _text_param(self, "source", "text"))

    async def exec_async(self, prep_res: str) -> WordCounts:
        """Count the words of ``prep_res``."""
        top = _count_param(self, "top", 5)
        min_length = _count_param(self, "min_length", 1)
        words = [w.casefold() for w in _WORD.findall(prep_res) if len(w) >= min_length]
        counts = Counter(words)
        return {
            "total": len(words),
            "distinct": len(counts),
            "top": dict(counts.most_common(top or None)),
        }

    async def post_async(self, shared: dict[str, Any], prep_res: str, exec_res: WordCounts) -> None:
        """Store the counts under ``target``."""
        shared[_text_param(self, "target", "word_counts")] = exec_res


class Uppercase(pocketcore.AsyncParallelBatchNode):
    """Upper-case a text line by line, each line as its own (simulated) slow call.

    The lines are the items of a parallel batch, so they go out through the
    run's executor, or the node's own ``executor`` / ``max_concurrency``: with
    ``delay=0.5`` and ten lines, the ``asyncio`` executor takes about half a
    second, ``sequential`` about five. The lines are joined back in their
    original order, with their original line endings.

    Params:
        source: The shared key holding the text (default ``"text"``).
        target: The shared key the result is written to (default: ``source``,
            replacing the text).
        delay: Seconds each line's simulated remote call waits (default ``0``).

    Raises:
        KeyError: The shared store has no ``source``.
        TypeError: A param, or the text, has the wrong type.
    """

    async def prep_async(self, shared: dict[str, Any]) -> list[str]:
        """Return the text's lines, line endings kept."""
        return _shared_text(self, shared, _text_param(self, "source", "text")).splitlines(
            keepends=True
        )

    async def exec_async(self, prep_res: str) -> str:
        """Upper-case one line, after the simulated call's delay."""
        delay = _seconds_param(self, "delay", 0.0)
        if delay:
            await anyio.sleep(delay)
        return prep_res.upper()

    async def post_async(
        self, shared: dict[str, Any], prep_res: list[str], exec_res: list[str]
    ) -> None:
        """Join the lines and store the text under ``target``."""
        source = _text_param(self, "source", "text")
        shared[_text_param(self, "target", source)] = "".join(exec_res)
