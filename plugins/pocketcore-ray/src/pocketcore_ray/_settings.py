"""Where the ``ray`` executor finds its cluster: arguments, environment, configuration file.

Most specific first: the arguments of :class:`~pocketcore_ray.RayExecutor`;
the environment, ``POCKETCORE_RAY_<KEY>`` (``POCKETCORE_RAY_ADDRESS=auto``);
the plugin's table in the configuration file (``[tool.pocketcore.ray]`` in
``pyproject.toml``, ``[ray]`` in ``pocketcore.toml``). The keys are declared
once, in :data:`SETTINGS`, and resolved with the kernel's
:class:`pocketcore.PluginSettings`, so that the file, the precedence and the
errors are those of every setting. With no address anywhere, runs use a
local Ray instance that the process starts at first use (unless the program
has started Ray itself).

This module does not import ray: the plugin is loaded in every process that
runs a flow, and most runs never use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from pocketcore import PluginKey, PluginSettings

__all__ = ["CONNECT_TIMEOUT", "SETTINGS", "Settings", "check_arguments"]

#: Seconds to wait for the cluster at an address to answer (Ray's own default is a minute).
CONNECT_TIMEOUT = 10.0


@attrs.frozen
class Settings:
    """What one run connects to, each value with where it came from (``SETTINGS.build(Settings)``).

    Attributes:
        address: The cluster to attach to (``"auto"``, ``"host:port"`` or
            ``"ray://host:port"``), or ``None`` for the process's local instance.
        num_cpus: CPUs of the local instance (default: Ray's, every CPU);
            unused with an address.
        runtime_env: The Ray runtime environment of the items' tasks
            (``pip``, ``env_vars``, ``working_dir``...), or ``None``.
        connect_timeout: Seconds to wait for the cluster at ``address``.
        log: Keep Ray's own logging (its startup lines, the workers' output
            and their deaths, forwarded to this process); off by default.
        sources: Where each value that was set came from, by key (for
            error messages: ``sources["address"]``).
    """

    address: str | None = None
    num_cpus: int | None = None
    runtime_env: Mapping[str, Any] | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    log: bool = False
    sources: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def shape(self) -> tuple[Any, ...]:
        """What the process's local instance is started with (runs that differ need another)."""
        return (self.num_cpus, self.log)


#: The plugin's keys: each also read from ``POCKETCORE_RAY_<KEY>``.
SETTINGS = PluginSettings(
    "ray",
    [
        PluginKey.text("address", "'auto', '10.0.0.5:6379' or 'ray://10.0.0.5:10001'"),
        PluginKey.count("num_cpus"),
        PluginKey.table(
            "runtime_env", 'a Ray runtime environment, such as {"env_vars": {"A": "1"}}'
        ),
        PluginKey.seconds("connect_timeout"),
        PluginKey.flag("log"),
    ],
    owner="RayExecutor()",
)
check_arguments = SETTINGS.check_arguments
