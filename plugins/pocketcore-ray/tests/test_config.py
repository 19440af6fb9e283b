"""Where the executor finds its cluster, and the errors that name a bad setting's source."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ray_nodes import Numbers

import pocketcore
from pocketcore_ray import RayExecutor


@pytest.fixture
def here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working directory with no configuration file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POCKETCORE_RAY_NUM_CPUS")
    return tmp_path


def config_error(**kwargs: Any) -> str:
    with pytest.raises(pocketcore.ConfigError) as info:
        RayExecutor(**kwargs).settings()
    return str(info.value)


def test_importing_the_plugin_imports_neither_pocketcore_nor_ray() -> None:
    code = "import sys, pocketcore_ray; print(sorted({'pocketcore', 'ray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_executor_is_registered_by_its_name() -> None:
    entry = pocketcore.get_registry().executors["ray"]
    assert isinstance(entry.executor, RayExecutor)
    assert entry.plugin == "ray"


def test_defaults_without_configuration(here: Path) -> None:
    settings = RayExecutor().settings()
    assert settings.address is None
    assert settings.num_cpus is None
    assert settings.runtime_env is None
    assert settings.log is False
    assert settings.sources == {}  # nothing configured anywhere


def test_arguments_beat_the_environment_which_beats_the_file(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "pyproject.toml").write_text(
        '[tool.pocketcore.ray]\naddress = "file:1"\nnum_cpus = 2\n'
        "runtime_env = { env_vars = { A = '1' } }\n"
    )
    settings = RayExecutor().settings()
    assert (settings.address, settings.num_cpus) == ("file:1", 2)
    assert settings.runtime_env == {"env_vars": {"A": "1"}}
    assert settings.sources["address"] == "key 'address' in [tool.pocketcore.ray] in pyproject.toml"
    monkeypatch.setenv("POCKETCORE_RAY_ADDRESS", " ray://env:10001 ")
    monkeypatch.setenv("POCKETCORE_RAY_RUNTIME_ENV", '{"env_vars": {"B": "2"}}')
    settings = RayExecutor().settings()
    assert settings.address == "ray://env:10001"
    assert settings.sources["address"] == "environment variable POCKETCORE_RAY_ADDRESS"
    assert settings.runtime_env == {"env_vars": {"B": "2"}}
    settings = RayExecutor("auto", num_cpus=5, log=True).settings()
    assert (settings.address, settings.num_cpus, settings.log) == ("auto", 5, True)
    assert settings.sources["address"] == "argument address= of RayExecutor()"


def test_the_pocketcore_toml_table(here: Path) -> None:
    (here / "pocketcore.toml").write_text('executor = "ray"\n[ray]\nnum_cpus = 3\nlog = true\n')
    settings = RayExecutor().settings()
    assert (settings.num_cpus, settings.log) == (3, True)
    assert settings.sources["num_cpus"] == "key 'num_cpus' in [ray] in pocketcore.toml"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "address = 6379",
            "address must be a non-empty string such as 'auto', '10.0.0.5:6379' or "
            "'ray://10.0.0.5:10001', got 6379 (int) from key 'address' in "
            "[tool.pocketcore.ray] in pyproject.toml",
        ),
        (
            "num_cpus = 0",
            "num_cpus must be >= 1, got 0 from key 'num_cpus' in [tool.pocketcore.ray] "
            "in pyproject.toml",
        ),
        (
            'num_cpus = "4"',
            "num_cpus must be an integer >= 1, got '4' (str) from key 'num_cpus' in "
            "[tool.pocketcore.ray] in pyproject.toml",
        ),
        (
            'runtime_env = "pip"',
            "runtime_env must be a table (a Ray runtime environment, such as "
            '{"env_vars": {"A": "1"}}), got \'pip\' (str) from key \'runtime_env\' in '
            "[tool.pocketcore.ray] in pyproject.toml",
        ),
        (
            "connect_timeout = -1",
            "connect_timeout must be a positive, finite number, got -1 from key 'connect_timeout' "
            "in [tool.pocketcore.ray] in pyproject.toml",
        ),
        (
            'log = "yes"',
            "log must be true or false, got 'yes' (str) from key 'log' in "
            "[tool.pocketcore.ray] in pyproject.toml",
        ),
        (
            "num_cpu = 2",
            "unknown key 'num_cpu' in [tool.pocketcore.ray] in pyproject.toml; known keys: "
            "address, num_cpus, runtime_env, connect_timeout, log",
        ),
    ],
)
def test_a_bad_value_in_the_file_is_named_with_its_key(
    here: Path, table: str, message: str
) -> None:
    (here / "pyproject.toml").write_text(f"[tool.pocketcore.ray]\n{table}\n")
    assert config_error() == message


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "NUM_CPUS",
            "many",
            "num_cpus must be an integer >= 1, got 'many' (str) from environment variable "
            "POCKETCORE_RAY_NUM_CPUS",
        ),
        (
            "RUNTIME_ENV",
            "{not json",
            "runtime_env must be a table (a Ray runtime environment, such as "
            '{"env_vars": {"A": "1"}}), got \'{not json\' (str) from environment variable '
            "POCKETCORE_RAY_RUNTIME_ENV",
        ),
        (
            "CONNECT_TIMEOUT",
            "nan",
            "connect_timeout must be a positive, finite number, got nan from environment variable "
            "POCKETCORE_RAY_CONNECT_TIMEOUT",
        ),
        (
            "LOG",
            "maybe",
            "log must be true or false, got 'maybe' (str) from environment variable "
            "POCKETCORE_RAY_LOG",
        ),
    ],
)
def test_a_bad_environment_variable_is_named(
    here: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"POCKETCORE_RAY_{variable}", value)
    assert config_error() == message


@given(st.integers(max_value=0) | st.booleans() | st.floats() | st.text())
def test_a_bad_num_cpus_argument_is_named(value: Any) -> None:
    with pytest.raises(pocketcore.ConfigError) as info:
        RayExecutor(num_cpus=value)
    assert str(info.value).startswith("num_cpus must be ")
    assert str(info.value).endswith("from argument num_cpus= of RayExecutor()")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_refused_address_fails_at_once(
    here: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    port = free_port()  # nobody listens there: connections are refused
    monkeypatch.setenv("POCKETCORE_RAY_ADDRESS", f"{scheme}127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(pocketcore.ConfigError) as info:
        pocketcore.run(Numbers(), {"items": [1]}, executor="ray")
    assert time.monotonic() - start < 5  # Ray itself would retry for a minute
    assert str(info.value) == (
        f"cannot reach the Ray cluster at '{scheme}127.0.0.1:{port}' "
        "(from environment variable POCKETCORE_RAY_ADDRESS): Connection refused"
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "ray://:10001", "http://"])
def test_a_malformed_address_is_named(
    here: Path, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    monkeypatch.setenv("POCKETCORE_RAY_ADDRESS", address)
    with pytest.raises(pocketcore.ConfigError) as info:
        pocketcore.run(Numbers(), {"items": [1]}, executor="ray")
    assert str(info.value) == (
        f"bad Ray address {address!r} (from environment variable POCKETCORE_RAY_ADDRESS): "
        "expected 'auto', 'host:port' or 'ray://host:port'"
    )


def test_an_empty_batch_touches_no_cluster(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETCORE_RAY_ADDRESS", f"127.0.0.1:{free_port()}")  # refused, unused
    shared: dict[str, Any] = {"items": []}
    pocketcore.run(Numbers(), shared, executor="ray")
    assert shared["results"] == []
