"""An input's fingerprint: the bytes the result cache's key of it is made from.

Inputs are fingerprinted by pickling them without pickle's memo (so equal
values give equal bytes however their objects are shared), with sets and
frozensets put in a canonical order (their iteration order changes between
processes). Two equal inputs that still pickle differently make two keys: a
miss, never a wrong hit. :func:`digest_of` feeds a whole batch's fingerprint
to a digest as pickle writes it, without holding it all.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["SCALARS", "VALUE_PROTOCOL", "digest_of", "fingerprint"]

#: How values are pickled: inputs for their fingerprints, results for the store. Fixed,
#: so that a newer Python's default cannot make every stored value unreadable to an older
#: one sharing the file (nor change every key).
VALUE_PROTOCOL = 4
#: The types pickled as they are, with no set to put in order and nothing to look inside.
SCALARS = frozenset({str, int, float, bytes, bool, type(None)})
# The pickle opcodes that build a set or a frozenset (EMPTY_SET, FROZENSET);
# when neither byte occurs the input holds no set. (They may also occur
# inside other data: then the canonical form is made for nothing.)
_SET_OPCODES = (b"\x8f", b"\x91")


def fingerprint(value: object) -> bytes:
    """Bytes that identify ``value``: equal for equal inputs, in any process.

    Raises:
        Exception: ``value`` cannot be pickled (whatever pickle raises).
    """
    if type(value) in SCALARS:
        return pickle.dumps(value, VALUE_PROTOCOL)
    data = _pickled(value)
    if (_SET_OPCODES[0] in data or _SET_OPCODES[1] in data) and _may_hold_set(value):
        data = _pickled(_canonical(value))
    return data


def _may_hold_set(value: object) -> bool:
    """Whether ``value`` may hold a set: ``False`` only for plain containers of scalars.

    Asked when a set opcode's byte is in the pickle, which text (UTF-8
    Cyrillic, say) also puts there. Any type but the plain ones may pickle
    a set in its state, so it counts as holding one.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        members: Iterable[Any]
        if kind is list or kind is tuple:
            members = item  # type: ignore[assignment]
        elif kind is dict:
            members = [*item.keys(), *item.values()]  # type: ignore[attr-defined]
        elif kind in SCALARS:
            continue
        else:
            return True
        if not set(map(type, members)) <= SCALARS:
            stack.extend(m for m in members if type(m) not in SCALARS)
    return False


class _Digesting:
    """A file that pickle writes to: it feeds a digest, and notes a set or frozenset opcode."""

    __slots__ = ("digest", "sets")

    def __init__(self, digest: Any) -> None:
        self.digest, self.sets = digest, False

    def write(self, chunk: bytes) -> int:
        data = bytes(chunk)
        self.digest.update(data)
        if not self.sets and (_SET_OPCODES[0] in data or _SET_OPCODES[1] in data):
            self.sets = True
        return len(data)


def digest_of(value: object, digest: Any) -> bytes:
    """The digest of ``fingerprint(value)`` fed to a copy of ``digest``, without holding it all.

    For a whole batch, whose pickle may be large: pickle writes it in frames
    of about 64 KiB, each hashed as it comes.

    Raises:
        Exception: ``value`` cannot be pickled (whatever pickle raises).
    """
    out = _Digesting(digest.copy())
    pickler = pickle.Pickler(out, VALUE_PROTOCOL)
    pickler.fast = True  # no memo, as in _pickled
    pickler.dump(value)
    if not out.sets or not _may_hold_set(value):
        return out.digest.digest()  # type: ignore[no-any-return]
    # Rare: a set somewhere. Its canonical form is made in memory, as fingerprint() does.
    again = digest.copy()
    again.update(fingerprint(value))
    return again.digest()  # type: ignore[no-any-return]


def _pickled(value: object) -> bytes:
    out = io.BytesIO()
    pickler = pickle.Pickler(out, VALUE_PROTOCOL)
    # No memo: a string that appears twice is written twice, whether or not
    # the two are one object. (A recursive value then fails, as it should:
    # it has no finite fingerprint.)
    pickler.fast = True
    pickler.dump(value)
    return out.getvalue()


@attrs.frozen
class _SetOf:
    """The canonical stand-in for a set or frozenset: its members' fingerprints, sorted."""

    kind: str
    members: tuple[bytes, ...]


def _canonical(value: object) -> object:
    kind = type(value)
    if kind is set or kind is frozenset:
        members: Iterable[Any] = value  # type: ignore[assignment]
        return _SetOf(kind.__name__, tuple(sorted(fingerprint(m) for m in members)))
    if kind is list or kind is tuple:
        return kind(_canonical(v) for v in value)  # type: ignore[attr-defined]
    if kind is dict:
        return {_canonical(k): _canonical(v) for k, v in value.items()}  # type: ignore[attr-defined]
    return value
