"""Registering: each plugin's registration hook called on its own, each contribution checked.

A registration hook (``pocketcore_register_executors``, ``..._nodes``,
``..._stores``) is called once per plugin
(:func:`~pocketcore._plugins.manager.per_plugin_calls`), with a ``register``
callback that checks each contribution as it is made: a plugin whose hook
raises, or registers something invalid, is a
:class:`~pocketcore.PluginFailure` and contributes nothing through that hook.

What "invalid" means is declared below this layer: an executor is an
:class:`~pocketcore.Executor`, a store's opener a
:class:`~pocketcore.StoreOpener`, and a node class a
:class:`~pocketcore._core.node.NodeClass` (which the node layer declares
``BaseNode`` to be, so this layer never imports it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from pocketcore._core.errors import PluginError
from pocketcore._core.executor import Executor
from pocketcore._core.node import NodeClass
from pocketcore._core.store import StoreOpener
from pocketcore._plugins.failures import PluginFailure, exception_line
from pocketcore._plugins.manager import PluginCall, per_plugin_calls

__all__ = [
    "Check",
    "Invalid",
    "call_registration_hook",
    "check_executor",
    "check_node",
    "check_store",
    "is_node_class",
]

Check = Callable[..., "tuple[str, Any]"]
"""What a register callback's arguments become: the name and the contribution.

A check raises :class:`Invalid`, with a message that reads after the plugin's name.
"""


class Invalid(Exception):
    """What a plugin registered is invalid; the message reads after the plugin's name."""


def call_registration_hook(
    pm: pluggy.PluginManager, hook_name: str, check: Check, distributions: Mapping[str, str]
) -> tuple[list[tuple[str, dict[str, Any]]], list[PluginFailure]]:
    """Call ``hook_name`` once per plugin: what each registered, and which failed.

    ``distributions`` names the distribution of each plugin loaded from an
    entry point, for the failures.
    """
    made_by: list[tuple[str, dict[str, Any]]] = []
    failures: list[PluginFailure] = []
    for call in per_plugin_calls(pm, hook_name):
        made = _call_one(call, hook_name, check, distributions)
        if isinstance(made, PluginFailure):
            failures.append(made)
        else:
            made_by.append((call.plugin, made))
    return made_by, failures


def _call_one(
    call: PluginCall, hook_name: str, check: Check, distributions: Mapping[str, str]
) -> dict[str, Any] | PluginFailure:
    """What one plugin's call registered, by name, or why the call failed.

    A call fails when it raises (the implementation or a hook wrapper
    around it) or when it registered something invalid, even if it then
    caught the :class:`PluginError` that ``register`` raised.
    """
    made: dict[str, Any] = {}
    invalid: list[str] = []

    def register(*args: Any) -> None:
        try:
            name, value = check(*args)
            if name in made:
                raise Invalid(f"registered {name!r} twice")
        except Invalid as exc:
            invalid.append(str(exc))
            raise PluginError(f"plugin {call.plugin!r} {exc}") from None
        made[name] = value

    try:
        call.call(register=register)
    except Exception as exc:  # a broken plugin must not take the others down
        error = invalid[0] if invalid else exception_line(exc)
    else:
        if not invalid:
            return made
        error = invalid[0]
    if call.wrappers:
        wrappers = ", ".join(repr(name) for name in call.wrappers)
        error += f" (the call was wrapped by the hook wrappers of {wrappers})"
    dist = distributions.get(call.plugin, "?")
    return PluginFailure(dist, call.plugin, error, hook=hook_name)


# Every contribution is checked once, as its plugin registers it (pluggy's
# _verify_hook does the same for a hook implementation), against what the
# lower layers declare: the Executor and StoreOpener protocols, the NodeClass mark.


def _declared(protocol: type) -> tuple[str, ...]:
    """The attributes, then the methods, that ``protocol`` declares (for messages)."""
    methods = [name for name, value in vars(protocol).items() if inspect.isfunction(value)]
    names = [*inspect.get_annotations(protocol), *methods]
    return tuple(name for name in names if not name.startswith("_"))


_EXECUTOR_MEMBERS = _declared(Executor)


def check_executor(*args: Any) -> tuple[str, Any]:
    """``register(executor)``: its name and the executor.

    Raises:
        Invalid: Not one argument, or not an executor with a non-empty name.
    """
    if len(args) != 1:
        raise Invalid(f"called register() with {len(args)} arguments; it takes (executor)")
    (executor,) = args
    if (
        not isinstance(executor, Executor)
        or not isinstance(executor.name, str)
        or not executor.name
    ):
        missing = [name for name in _EXECUTOR_MEMBERS if not hasattr(executor, name)]
        raise Invalid(
            f"registered {executor!r}, which is not an executor (needs a non-empty str "
            f"name, backend, run() and map(); missing: {', '.join(missing) or 'a valid name'})"
        )
    return executor.name, executor


def check_store(*args: Any) -> tuple[str, Any]:
    """``register(name, opener)``: the store's name and its opener.

    Raises:
        Invalid: Not two arguments, a name that is not a str of two characters
            or more without ``:``, or an opener that is not callable.
    """
    if len(args) != 2:
        raise Invalid(f"called register() with {len(args)} arguments; it takes (name, opener)")
    name, opener = args
    if not isinstance(name, str) or len(name) < 2 or ":" in name:
        raise Invalid(
            f"registered a store with the invalid name {name!r} (a str of two characters or "
            "more, without ':')"
        )
    if not isinstance(opener, StoreOpener):
        raise Invalid(f"registered {opener!r} as store {name!r}; it is not callable")
    return name, opener


def check_node(*args: Any) -> tuple[str, Any]:
    """``register(name, cls)``: the node's name and its class.

    Raises:
        Invalid: Not two arguments, an empty name or one that is not a str,
            or a class that is not a subclass of ``pocketcore.BaseNode``.
    """
    if len(args) != 2:
        raise Invalid(f"called register() with {len(args)} arguments; it takes (name, cls)")
    name, cls = args
    if not isinstance(name, str) or not name:
        raise Invalid(f"registered a node with the invalid name {name!r}")
    if not is_node_class(cls):
        raise Invalid(
            f"registered {cls!r} as node {name!r}; it is not a subclass of pocketcore.BaseNode"
        )
    return name, cls


def is_node_class(cls: object) -> bool:
    """Whether ``cls`` is ``pocketcore.BaseNode`` or a subclass of it."""
    # The node layer registers BaseNode as a NodeClass, so this layer need not import it.
    return isinstance(cls, type) and issubclass(cls, NodeClass)
