"""What a node is to the result cache: its class as its program defines it, its code, its state.

A cached result may be reused only by a node that would compute the same
one. :func:`node_identity` gives the bytes that say so, made of:

* **the class as its program defines it**: for each class of the node's
  MRO outside pocketcore, the real path of the file that defines it and its
  qualified name. The file, not the module's name: ``python flow.py`` names
  the module ``__main__``, ``pocketcore run flow.py:flow`` names it ``flow``,
  and ``pocketcore run pkg.flow:flow`` ``pkg.flow``, yet it is one class;
  while two programs in two folders that each define a ``Style`` are two.
  (A class of a module without a file, typed at a prompt, is placed by
  its module's name.)
* **the code that computes the result**: each such class's attributes, with
  the functions among them by their code (bytecode, constants, names,
  defaults and closures; not their file or line numbers, so moving a
  method keeps its entries). ``prep``, ``post`` and the fallbacks are left
  out, since they do not make what ``exec`` returns (tweaking ``post``
  keeps the cache); pocketcore's own settings (``executor``, ``cache``,
  ...) are left out too. Functions outside the class that ``exec`` calls
  are not followed: bump ``cache_version`` when one changes.
* **the instance's configuration**: its attributes (``Translate("fr")``'s
  language), except PocketFlow's and pocketcore's bookkeeping
  (:data:`BOOKKEEPING`).

Values are pickled with classes and functions written by their place and
code (as above) rather than by module name, and sets in a canonical order,
so that the same node gives the same bytes in every process and under every
import spelling. A value that cannot be pickled cannot be fingerprinted:
:class:`Unfingerprintable` says which, and the node is then not cached.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import sys
import sysconfig
import types
from typing import Any, Final

from pocketcore._runtime.settings import GIVEN, SETTINGS, STEP_SETTINGS

__all__ = ["BOOKKEEPING", "NOT_RESULT_CODE", "Unfingerprintable", "node_identity", "stable_bytes"]

#: Instance attributes that are not part of a node's configuration: the
#: graph, the params (keyed on their own), the retry counter and policy, and
#: pocketcore's settings (how the node runs, not what it computes), with the
#: record of those given to the constructor and whether a step looks them up.
BOOKKEEPING: Final = frozenset(
    {
        "successors",
        "params",
        "file_params",
        "cur_retry",
        "max_retries",
        "wait",
        GIVEN,
        STEP_SETTINGS,
        *SETTINGS,
    }
)
#: Methods that do not make ``exec``'s result: left out of the code fingerprint.
NOT_RESULT_CODE: Final = frozenset(
    {"prep", "post", "prep_async", "post_async", "exec_fallback", "exec_fallback_async"}
)
#: Where the standard library and installed packages live: their classes are
#: pickled by name, as they are the same under every spelling of a program.
_LIBRARIES: Final = tuple(
    {sysconfig.get_paths()[kind] for kind in ("stdlib", "platstdlib", "purelib", "platlib")}
)
#: Class attributes written by Python itself, or that name the cache's own parts.
_SKIPPED: Final = BOOKKEEPING | NOT_RESULT_CODE | {"cache_version", "cache_key"}
_PROTOCOL: Final = 4
#: Each code object's pickled parts, made once (equal code objects have equal parts).
_codes: dict[types.CodeType, bytes] = {}


class Unfingerprintable(Exception):
    """Part of a node cannot be fingerprinted; the message says which, and why."""


def node_identity(node: Any, *, instance: bool) -> bytes:
    """The bytes of ``node``'s class, code and (if ``instance``) configuration, as above.

    Raises:
        Unfingerprintable: A class attribute, or an instance attribute,
            cannot be pickled.
    """
    cls = type(node)
    parts: list[object] = []
    for klass in cls.__mro__:
        if _is_kernel(klass):
            continue
        parts.append((_place(klass), _members(klass)))
    if instance:
        state = _state(node)
        parts.extend(
            (name, _attribute(state[name], f"attribute {name}"))
            for name in sorted(state)
            if name not in BOOKKEEPING
        )
    return hashlib.blake2b(stable_bytes(parts, "its class"), digest_size=20).digest()


def _state(node: Any) -> dict[str, Any]:
    """The node's attributes: its ``__dict__``, and the slots its classes declare."""
    state = dict(getattr(node, "__dict__", {}))
    for klass in type(node).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(node, name):
                state[name] = getattr(node, name)
    return state


def stable_bytes(value: object, what: str) -> bytes:
    """``value`` pickled the same in every process and under every import spelling.

    Raises:
        Unfingerprintable: ``value`` cannot be pickled; the message names ``what``.
    """
    out = io.BytesIO()
    pickler = _Stable(out, _PROTOCOL)
    pickler.fast = True  # no memo: equal values give equal bytes however they are shared
    try:
        pickler.dump(value)
    except Unfingerprintable:
        raise
    except Exception as exc:
        raise Unfingerprintable(f"{what} cannot be pickled ({type(exc).__name__}: {exc})") from None
    return out.getvalue()


class _Stable(pickle.Pickler):
    """A pickler writing classes and functions by place and code, and sets in a canonical order."""

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is set or kind is frozenset:
            return ("set", kind.__name__, tuple(sorted(stable_bytes(m, "a set") for m in obj)))
        if isinstance(obj, type):
            return None if _is_builtin(obj) else ("class", *_place(obj))
        if kind is types.FunctionType:
            return ("function", _code_of(obj))
        return None


def _is_kernel(klass: type) -> bool:
    """Whether ``klass`` is pocketcore's own (or Python's): its code is not the program's."""
    module = klass.__module__
    return module == "builtins" or module == "pocketcore" or module.startswith("pocketcore.")


def _is_builtin(klass: type) -> bool:
    """Whether ``klass`` is the standard library's or a package's: pickled by name anywhere."""
    module = sys.modules.get(klass.__module__)
    file = getattr(module, "__file__", None)
    return file is None or (klass.__module__ != "__main__" and _in_library(file))


def _in_library(file: str) -> bool:
    """Whether ``file`` is the standard library's or an installed package's (not a program's)."""
    return file.startswith(_LIBRARIES) or "site-packages" in file or "dist-packages" in file


def _place(klass: type) -> tuple[str, str]:
    """Where ``klass`` is defined: its file's real path (or module name), and its qualified name."""
    module = sys.modules.get(klass.__module__)
    file = getattr(module, "__file__", None)
    where = klass.__module__ if file is None else os.path.realpath(file)
    return where, klass.__qualname__


def _members(klass: type) -> tuple[tuple[str, object], ...]:
    """``klass``'s own attributes that can change a result, each fingerprinted."""
    found = []
    for name, value in klass.__dict__.items():
        if name in _SKIPPED:
            continue
        if name.startswith("__") and name.endswith("__") and not callable(value):
            continue  # __module__, __doc__, __dict__, __slots__ and the like
        if isinstance(value, (types.MemberDescriptorType, types.GetSetDescriptorType)):
            continue  # a slot: its value is the instance's
        found.append((name, _attribute(value, f"class attribute {name} of {klass.__qualname__}")))
    found.sort(key=lambda member: member[0])
    return tuple(found)


def _attribute(value: object, what: str) -> object:
    """What stands for an attribute's value in the identity: code for functions, else its pickle."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, functools.cached_property):
        value = value.func
    if isinstance(value, property):
        accessors = (value.fget, value.fset)
        return tuple(_attribute(f, what) if f is not None else None for f in accessors)
    if type(value) is types.FunctionType:
        return _code_of(value)
    return stable_bytes(value, what)


def _code_of(function: types.FunctionType) -> bytes:
    """A fingerprint of ``function``'s code, defaults and closure (and what it wraps)."""
    code = _codes.get(function.__code__)
    if code is None:
        parts = _code_parts(function.__code__)
        what = f"the code of {function.__qualname__}"
        code = _codes[function.__code__] = stable_bytes(parts, what)
    # Defaults, cells and what it wraps can be reassigned under a function: read each time.
    cells = tuple(cell.cell_contents for cell in function.__closure__ or () if _filled(cell))
    wrapped = getattr(function, "__wrapped__", None)
    inner = _code_of(wrapped) if type(wrapped) is types.FunctionType else None
    state = (function.__defaults__, function.__kwdefaults__, cells, inner)
    data = code + stable_bytes(state, f"the defaults or closure of {function.__qualname__}")
    return hashlib.blake2b(data, digest_size=20).digest()


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018  # an empty cell raises
    except ValueError:
        return False
    return True


def _code_parts(code: types.CodeType) -> tuple[object, ...]:
    """What a code object computes: its bytecode, constants and names, not where it lies."""
    consts = tuple(_code_parts(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return (
        code.co_code,
        consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        getattr(code, "co_exceptiontable", b""),
    )
