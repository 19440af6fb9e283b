"""The plugin manager: its factory, and how registration hooks are called through it.

Registration hooks (``pocketcore_register_*``) are called once per plugin, so
that every contribution is recorded with the plugin that made it and one
plugin's failure can be told apart from the others'. Each of those calls goes
through pluggy's own machinery (a subset hook caller holding that plugin's
implementation and every hook wrapper), so hook wrappers, ``tryfirst`` /
``trylast`` and argument matching work as pluggy documents them.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pluggy

from pocketcore import hookspecs

__all__ = ["PluginCall", "make_plugin_manager", "per_plugin_calls"]


def make_plugin_manager() -> pluggy.PluginManager:
    """Build an empty plugin manager that knows pocketcore's hook specs.

    Nothing is registered in it; :meth:`pocketcore.Registry.from_environment`
    adds the installed plugins, and tests register their own.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


@attrs.frozen
class PluginCall:
    """One plugin's call of a registration hook.

    Attributes:
        plugin: The plugin's name in the plugin manager.
        wrappers: The names of the plugins whose hook wrappers wrap the call.
        call: Calls the hook with keyword arguments, as pluggy's hook callers
            do: ``call(register=...)``. It raises what the implementation or
            a wrapper raised.
    """

    plugin: str
    wrappers: tuple[str, ...]
    call: Callable[..., object]


def per_plugin_calls(pm: pluggy.PluginManager, hook_name: str) -> list[PluginCall]:
    """The calls of ``hook_name``, one per implementing plugin, in pluggy's call order.

    Pluggy calls ``tryfirst`` implementations first and ``trylast`` ones last,
    and otherwise the most recently registered first; the list follows that
    order. Each call holds the plugin's own implementation and every hook
    wrapper of the hook, so a wrapper wraps each plugin's call separately.
    """
    hook: pluggy.HookCaller = getattr(pm.hook, hook_name)
    impls = hook.get_hookimpls()  # the reverse of calling order
    implementers: list[object] = []
    for impl in reversed(impls):
        plain = not (impl.wrapper or impl.hookwrapper)
        if plain and not any(impl.plugin is seen for seen in implementers):
            implementers.append(impl.plugin)
    calls = []
    for plugin in implementers:
        # Removing a plugin removes all its implementations of the hook,
        # wrappers included: a plugin that both wraps the hook and implements
        # it (through ``specname``) wraps only its own call.
        others = [other for other in implementers if other is not plugin]
        wrappers = tuple(
            impl.plugin_name
            for impl in reversed(impls)
            if (impl.wrapper or impl.hookwrapper) and not any(impl.plugin is o for o in others)
        )
        caller = pm.subset_hook_caller(hook_name, remove_plugins=others)
        calls.append(PluginCall(_name_of(pm, plugin), wrappers, caller))
    return calls


def _name_of(pm: pluggy.PluginManager, plugin: object) -> str:
    name = pm.get_name(plugin)
    assert name is not None, "a plugin with hook implementations is registered"
    return name
