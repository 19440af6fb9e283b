"""The error helpers executor authors use: ``pocketcore.attach_failures``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import pocketcore

kinds = st.sampled_from([ValueError, KeyError, RuntimeError, KeyboardInterrupt, SystemExit])


@given(
    others=st.lists(st.tuples(kinds, st.text(max_size=5)), max_size=5), repeats=st.integers(0, 2)
)
def test_every_other_failure_becomes_one_note(
    others: list[tuple[type[BaseException], str]], repeats: int
) -> None:
    first = ValueError("first")
    raised = [kind(text) for kind, text in others]
    pocketcore.attach_failures(first, [first] * repeats + raised)
    notes = getattr(first, "__notes__", [])
    assert len(notes) == len(raised)  # the first itself is never a note of its own
    for note, exc in zip(notes, raised, strict=True):
        assert type(exc).__name__ in note
        assert str(exc) in note
