"""Where the ``ray`` executor finds its cluster: arguments, environment, configuration file.

Most specific first: the arguments of :class:`~pocketcore_ray.RayExecutor`;
the environment, ``POCKETCORE_RAY_<KEY>`` (``POCKETCORE_RAY_ADDRESS=auto``);
the plugin's table in the configuration file (``[tool.pocketcore.ray]`` in
``pyproject.toml``, ``[ray]`` in ``pocketcore.toml``), read through
:func:`pocketcore.plugin_settings` so that the file and its precedence are
the kernel's. With no address anywhere, runs use a local Ray instance that
the process starts at first use (unless the program has started Ray itself).

Each key is one row of :data:`KEYS`: how a value from the environment is
read, and how any value is checked. This module imports neither pocketcore
nor ray at import time: the plugin is loaded in every process that runs a
flow, and most runs never use it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import attrs

__all__ = ["CONNECT_TIMEOUT", "KEYS", "Settings", "check_arguments", "resolve"]

#: Seconds to wait for the cluster at an address to answer (Ray's own default is a minute).
CONNECT_TIMEOUT = 10.0
#: Where a run without an address gets its cluster.
LOCAL = "no address configured: the process's local Ray instance"


@attrs.frozen
class Settings:
    """What one run connects to, each value with where it came from.

    Attributes:
        address: The cluster to attach to (``"auto"``, ``"host:port"`` or
            ``"ray://host:port"``), or ``None`` for the process's local instance.
        source: Where ``address`` came from, for error messages.
        num_cpus: CPUs of the local instance (default: Ray's, every CPU);
            unused with an address.
        runtime_env: The Ray runtime environment of the items' tasks
            (``pip``, ``env_vars``, ``working_dir``...), or ``None``.
        connect_timeout: Seconds to wait for the cluster at ``address``.
        log: Keep Ray's own logging (its startup lines, the workers' output
            and their deaths, forwarded to this process); off by default.
        sources: Where each value that was set came from, by key.
    """

    address: str | None = None
    source: str = LOCAL
    num_cpus: int | None = None
    runtime_env: Mapping[str, Any] | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    log: bool = False
    sources: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def shape(self) -> tuple[Any, ...]:
        """What the process's local instance is started with (runs that differ need another)."""
        return (self.num_cpus, self.log)


def _fail(message: str) -> NoReturn:
    from pocketcore import ConfigError  # installed wherever the plugin runs

    raise ConfigError(message)


def _address(value: object, key: str, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(
            f"{key} must be a non-empty string such as 'auto', '10.0.0.5:6379' or "
            f"'ray://10.0.0.5:10001', got {value!r} ({type(value).__name__}) from {source}"
        )
    return value.strip()


def _count(value: object, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(
            f"{key} must be an integer >= 1, got {value!r} ({type(value).__name__}) from {source}"
        )
    if value < 1:
        _fail(f"{key} must be >= 1, got {value} from {source}")
    return value


def _seconds(value: object, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = type(value).__name__
        _fail(f"{key} must be a number of seconds > 0, got {value!r} ({kind}) from {source}")
    if not (value > 0 and math.isfinite(value)):
        _fail(f"{key} must be a finite number > 0, got {value} from {source}")
    return float(value)


def _flag(value: object, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        _fail(f"{key} must be true or false, got {value!r} ({type(value).__name__}) from {source}")
    return value


def _table(value: object, key: str, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        _fail(
            f"{key} must be a table (a Ray runtime environment, such as "
            f'{{"env_vars": {{"A": "1"}}}}), got {value!r} ({type(value).__name__}) from {source}'
        )
    return dict(value)


def _int_text(raw: str) -> object:
    try:
        return int(raw)
    except ValueError:
        return raw


def _float_text(raw: str) -> object:
    try:
        return float(raw)
    except ValueError:
        return raw


def _flag_text(raw: str) -> object:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    return raw


def _json_text(raw: str) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


_Check = Callable[[object, str, str], Any]
#: key -> (how its environment variable's text is read, how any value is checked).
KEYS: dict[str, tuple[Callable[[str], object], _Check]] = {
    "address": (str, _address),
    "num_cpus": (_int_text, _count),
    "runtime_env": (_json_text, _table),
    "connect_timeout": (_float_text, _seconds),
    "log": (_flag_text, _flag),
}
_ARGUMENT = "argument {}= of RayExecutor()"


def _from_environment(key: str) -> tuple[Any, str] | None:
    """``POCKETCORE_RAY_<KEY>``, read and checked, with its source; ``None`` when unset."""
    variable = f"POCKETCORE_RAY_{key.upper()}"
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    source = f"environment variable {variable}"
    read, check = KEYS[key]
    return check(read(raw), key, source), source


def _from_file() -> dict[str, tuple[Any, str]]:
    """The plugin's table of the configuration file, every key checked, with its source."""
    from pocketcore import plugin_settings

    table, where = plugin_settings("ray")
    found: dict[str, tuple[Any, str]] = {}
    for key, value in table.items():
        if key not in KEYS:
            _fail(f"unknown key {key!r} in {where}; known keys: {', '.join(KEYS)}")
        source = f"key {key!r} in {where}"
        found[key] = KEYS[key][1](value, key, source), source
    return found


def check_arguments(**given: Any) -> dict[str, Any]:
    """The arguments given to ``RayExecutor()`` (``None``: not given), each checked.

    Raises:
        ConfigError: A value is of the wrong type or out of range; the
            message names the argument.
    """
    return {
        key: KEYS[key][1](value, key, _ARGUMENT.format(key))
        for key, value in given.items()
        if value is not None
    }


def resolve(arguments: Mapping[str, Any]) -> Settings:
    """The settings of one run: arguments (already checked) win, then the environment, the file.

    Every ``POCKETCORE_RAY_*`` variable that is set and every key of the
    file's table is checked, even one a more specific source overrides: a
    wrong value there is a mistake either way.

    Raises:
        ConfigError: A value is of the wrong type or out of range, or the
            table has an unknown key; the message names the variable, or the
            file and the key.
    """
    file = _from_file()
    chosen: dict[str, tuple[Any, str]] = {}
    for key in KEYS:
        from_env = _from_environment(key)
        if key in arguments:
            chosen[key] = arguments[key], _ARGUMENT.format(key)
        elif from_env is not None:
            chosen[key] = from_env
        elif key in file:
            chosen[key] = file[key]
    values = {key: value for key, (value, _) in chosen.items()}
    sources = {key: source for key, (_, source) in chosen.items()}
    return Settings(**values, source=sources.get("address", LOCAL), sources=sources)
