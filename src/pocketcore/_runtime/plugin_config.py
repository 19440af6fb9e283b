"""A plugin's own settings: declared once, each read from an argument, the environment or the file.

A plugin (an executor's address, its number of workers...) declares its keys
with :class:`PluginSettings`, one :class:`PluginKey` each: the key's name, how
the text of its environment variable becomes a value, and how any value is
checked. Resolving them for a run follows the precedence of every setting:
the arguments given in code, then ``POCKETCORE_<PLUGIN>_<KEY>``, then the
plugin's table of the configuration file (:func:`plugin_settings`), and each
error is a :class:`ConfigError` that names where the bad value came from. The
number rules are the run settings' own (:func:`check_count`,
:func:`check_rate`), so a plugin's errors read like the kernel's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from pocketcore._core.errors import ConfigError
from pocketcore._runtime.config import Setting, plugin_settings
from pocketcore._runtime.values import check_count, check_rate

__all__ = ["PluginKey", "PluginSettings"]

T = TypeVar("T")

#: The words of a true and of a false flag, in an environment variable.
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _as(convert: Callable[[str], object]) -> Callable[[str], object]:
    """``convert``, keeping the text when it does not convert (the check then says what is due)."""

    def read(text: str) -> object:
        try:
            return convert(text)
        except ValueError:
            return text

    return read


def _flag_text(text: str) -> object:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return text


@attrs.frozen
class PluginKey:
    """One setting of a plugin: its name, how its environment text is read, how a value is checked.

    The constructors :meth:`count`, :meth:`seconds`, :meth:`flag`,
    :meth:`text` and :meth:`table` make the usual kinds, with the kernel's
    wording; a key of another kind is made directly.

    Attributes:
        name: The key in the plugin's table and the keyword of its argument;
            its environment variable is ``POCKETCORE_<PLUGIN>_<NAME>``, in capitals.
        check: ``check(value, source)`` returns the value as used, or raises
            :class:`ConfigError` with a message that ends with ``from <source>``.
        read: Turns the environment variable's text (stripped, never empty)
            into the value handed to ``check``; text that it cannot read
            should be returned as it is, so that the check's message says
            what the value must be.
    """

    name: str
    check: Callable[[object, str], Any]
    read: Callable[[str], object] = str

    @classmethod
    def count(cls, name: str) -> PluginKey:
        """An integer >= 1 (not a bool), as ``max_concurrency`` is."""
        return cls(name, lambda value, source: check_count(value, source, name), _as(int))

    @classmethod
    def seconds(cls, name: str) -> PluginKey:
        """A positive, finite number (not a bool), as a float: seconds, as ``timeout`` is."""
        return cls(name, lambda value, source: check_rate(value, source, name), _as(float))

    @classmethod
    def flag(cls, name: str) -> PluginKey:
        """``true`` or ``false``.

        In the environment, also ``1``, ``yes``, ``on`` and ``0``, ``no``, ``off``.
        """

        def check(value: object, source: str) -> bool:
            if not isinstance(value, bool):
                raise ConfigError(
                    f"{name} must be true or false, got {value!r} ({type(value).__name__}) "
                    f"from {source}"
                )
            return value

        return cls(name, check, _flag_text)

    @classmethod
    def text(cls, name: str, example: str) -> PluginKey:
        """A non-empty string, stripped; ``example`` ends "must be a non-empty string such as"."""

        def check(value: object, source: str) -> str:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{name} must be a non-empty string such as {example}, got {value!r} "
                    f"({type(value).__name__}) from {source}"
                )
            return value.strip()

        return cls(name, check)

    @classmethod
    def table(cls, name: str, what: str) -> PluginKey:
        """A table with string keys, as a dict (JSON in the environment); ``what`` describes it."""

        def check(value: object, source: str) -> dict[str, Any]:
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise ConfigError(
                    f"{name} must be a table ({what}), got {value!r} ({type(value).__name__}) "
                    f"from {source}"
                )
            return dict(value)

        return cls(name, check, _as(json.loads))


def _by_name(keys: Iterable[PluginKey]) -> dict[str, PluginKey]:
    return {key.name: key for key in keys}


@attrs.frozen
class PluginSettings:
    """The settings of a plugin, declared once, and resolved for each run with their sources.

    Most specific first: the arguments given in code (to ``owner``), the
    environment variable of each key (``POCKETCORE_<PLUGIN>_<KEY>``), the
    plugin's table in the configuration file (``[tool.pocketcore.<plugin>]``
    in ``pyproject.toml``, ``[<plugin>]`` in ``pocketcore.toml``; see
    :func:`pocketcore.plugin_settings`). Each value is checked by its key,
    and every error names its source: the argument, the variable, or the key
    and the file.

    Args:
        plugin: The plugin's table name (``"dask"``), also the prefix of its
            environment variables.
        keys: The settings, one :class:`PluginKey` each.
        owner: What the arguments are given to, for the messages
            (``"DaskExecutor()"``: "argument n_workers= of DaskExecutor()").
    """

    plugin: str
    keys: Mapping[str, PluginKey] = attrs.field(converter=_by_name)
    owner: str

    def variable(self, name: str) -> str:
        """The environment variable of key ``name``: ``POCKETCORE_DASK_N_WORKERS``."""
        return f"POCKETCORE_{self.plugin.upper()}_{name.upper()}"

    def argument(self, name: str) -> str:
        """The source of key ``name`` given as an argument, as messages name it."""
        return f"argument {name}= of {self.owner}"

    def check_arguments(self, **given: Any) -> dict[str, Any]:
        """The arguments that were given (``None``: not given), each checked by its key.

        Call it where the arguments are written (an executor's ``__init__``),
        so that a wrong one fails there; hand the result to :meth:`resolve`.

        Raises:
            ConfigError: A value is unusable; the message names the argument.
            TypeError: A name is not one of the keys.
        """
        checked = {}
        for name, value in given.items():
            if name not in self.keys:
                raise TypeError(f"{self.owner} has no setting {name!r}")
            if value is not None:
                checked[name] = self.keys[name].check(value, self.argument(name))
        return checked

    def resolve(
        self, arguments: Mapping[str, Any] | None = None, *, cwd: str | None = None
    ) -> dict[str, Setting]:
        """Each key that is set somewhere, with its value and where it came from.

        ``arguments`` are those :meth:`check_arguments` returned. Every
        environment variable of a key that is set (not empty) and every key
        of the file's table is checked, even one that a more specific source
        overrides: a wrong value there is a mistake either way. ``cwd``: where
        the search for the configuration file starts (see
        :func:`pocketcore.plugin_settings`).

        Raises:
            ConfigError: A value is unusable, or the table has a key that is
                not declared; the message names the variable, or the file
                and the key.
        """
        given = arguments or {}
        found: dict[str, Setting] = {}
        table, where = plugin_settings(self.plugin, cwd=cwd)
        for name, value in table.items():
            if name not in self.keys:
                raise ConfigError(
                    f"unknown key {name!r} in {where}; known keys: {', '.join(self.keys)}"
                )
            source = f"key {name!r} in {where}"
            found[name] = Setting(self.keys[name].check(value, source), source)
        for name, key in self.keys.items():
            variable = self.variable(name)
            text = os.environ.get(variable, "").strip()
            if text:
                source = f"environment variable {variable}"
                found[name] = Setting(key.check(key.read(text), source), source)
            if name in given:
                found[name] = Setting(given[name], self.argument(name))
        return found

    def build(
        self,
        make: Callable[..., T],
        arguments: Mapping[str, Any] | None = None,
        *,
        cwd: str | None = None,
    ) -> T:
        """What :meth:`resolve` finds, handed to ``make`` (a plugin's settings class).

        ``make`` is called with each key that is set somewhere as a keyword,
        with its value (a key set nowhere is left to ``make``'s default), and
        with ``sources``: where each of those values came from, by key, for
        the plugin's own messages.

        Raises:
            ConfigError: As :meth:`resolve` does.
        """
        found = self.resolve(arguments, cwd=cwd)
        sources = {name: setting.source for name, setting in found.items()}
        return make(**{name: setting.value for name, setting in found.items()}, sources=sources)
