"""Where the executor finds its cluster, and the errors that name a bad setting's source."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask
import pytest
from dask_nodes import Square
from distributed import LocalCluster

import pocketcore
from pocketcore_dask import DaskExecutor


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No address in the environment, and a working directory with no configuration file."""
    monkeypatch.delenv("POCKETCORE_DASK_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def squares(executor: Any = "dask") -> list[int]:
    shared: dict[str, Any] = {"numbers": [1, 2, 3]}
    pocketcore.run(Square(), shared, executor=executor)
    return [r["square"] for r in shared["results"]]


def config_error(**kwargs: Any) -> str:
    with pytest.raises(pocketcore.ConfigError) as info:
        DaskExecutor().settings() if not kwargs else DaskExecutor(**kwargs)
    return str(info.value)


def test_importing_the_plugin_imports_neither_pocketcore_nor_distributed() -> None:
    code = (
        "import sys, pocketcore_dask; "
        "print(sorted({'pocketcore', 'distributed'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_defaults_without_configuration() -> None:
    settings = DaskExecutor().settings()
    assert settings.address is None
    assert settings.n_workers >= 1
    assert settings.threads_per_worker == 1


def test_the_environment_variable(monkeypatch: pytest.MonkeyPatch, cluster: LocalCluster) -> None:
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", f"  {cluster.scheduler_address}  ")
    settings = DaskExecutor().settings()
    assert settings.address == cluster.scheduler_address
    assert settings.sources["address"] == "environment variable POCKETCORE_DASK_ADDRESS"
    assert squares() == [1, 4, 9]


def test_an_empty_environment_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", "  ")
    assert DaskExecutor().settings().address is None


def test_the_pyproject_table(clean: Path, cluster: LocalCluster) -> None:
    (clean / "pyproject.toml").write_text(
        f'[tool.pocketcore.dask]\naddress = "{cluster.scheduler_address}"\n'
    )
    settings = DaskExecutor().settings()
    where = "key 'address' in [tool.pocketcore.dask] in pyproject.toml"
    assert settings.sources["address"] == where
    assert squares() == [1, 4, 9]


def test_the_pocketcore_toml_table(clean: Path) -> None:
    (clean / "pocketcore.toml").write_text(
        'executor = "dask"\n[dask]\nn_workers = 3\nthreads_per_worker = 2\n'
    )
    settings = DaskExecutor().settings()
    assert (settings.address, settings.n_workers, settings.threads_per_worker) == (None, 3, 2)


def test_arguments_beat_the_environment_which_beats_the_file(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean / "pyproject.toml").write_text(
        '[tool.pocketcore.dask]\naddress = "tcp://file:1"\nn_workers = 2\n'
    )
    assert DaskExecutor().settings().address == "tcp://file:1"
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", "tcp://env:1")
    assert DaskExecutor().settings().address == "tcp://env:1"
    settings = DaskExecutor("tcp://arg:1", n_workers=5).settings()
    assert (settings.address, settings.n_workers) == ("tcp://arg:1", 5)
    assert settings.sources["address"] == "argument address= of DaskExecutor()"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "address = 8786",
            "address must be a non-empty string such as 'tcp://10.0.0.5:8786', got 8786 (int) "
            "from key 'address' in [tool.pocketcore.dask] in pyproject.toml",
        ),
        (
            "n_workers = 0",
            "n_workers must be >= 1, got 0 from key 'n_workers' in [tool.pocketcore.dask] "
            "in pyproject.toml",
        ),
        (
            'n_workers = "4"',
            "n_workers must be an integer >= 1, got '4' (str) from key 'n_workers' in "
            "[tool.pocketcore.dask] in pyproject.toml",
        ),
        (
            "threads_per_worker = true",
            "threads_per_worker must be an integer >= 1, got True (bool) from key "
            "'threads_per_worker' in [tool.pocketcore.dask] in pyproject.toml",
        ),
        (
            "nworkers = 2",
            "unknown key 'nworkers' in [tool.pocketcore.dask] in pyproject.toml; known keys: "
            "address, n_workers, threads_per_worker, processes, connect_timeout, "
            "no_workers_warning, log_failures",
        ),
    ],
)
def test_bad_file_values_name_their_key_and_file(clean: Path, table: str, message: str) -> None:
    (clean / "pyproject.toml").write_text(f"[tool.pocketcore.dask]\n{table}\n")
    assert config_error() == message
    # ... and a run fails with it before anything runs.
    with pytest.raises(pocketcore.ConfigError, match=r"in pyproject\.toml"):
        squares()


def test_a_dask_key_that_is_not_a_table(clean: Path) -> None:
    (clean / "pocketcore.toml").write_text('dask = "tcp://x:1"\n')
    # The kernel's own check of the file's keys comes first.
    assert config_error().startswith(
        "unknown key 'dask' in pocketcore.toml; known keys: executor, max_concurrency, "
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": ""}, "got '' (str) from argument address= of DaskExecutor()"),
        ({"n_workers": 1.5}, "n_workers must be an integer >= 1, got 1.5 (float) from argument"),
        ({"threads_per_worker": 0}, "threads_per_worker must be >= 1, got 0 from argument"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    assert message in config_error(**kwargs)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            "environment",
            "bad dask scheduler address 'foo://scheduler:8786' (from environment variable "
            "POCKETCORE_DASK_ADDRESS): unknown address scheme 'foo' (known schemes: "
            "['inproc', 'tcp', 'tls', 'ucx', 'ws', 'wss'])",
        ),
        (
            "file",
            "cannot reach the dask scheduler at 'tcp://127.0.0.1:1' (from key 'address' in "
            "[tool.pocketcore.dask] in pyproject.toml): Connection refused "
            "(is a dask scheduler listening there?)",
        ),
    ],
)
def test_an_unusable_address_is_named_with_its_source(
    where: str, message: str, clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed address (set in the environment) or an unreachable one (in the file)."""
    if where == "environment":
        monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", "foo://scheduler:8786")
    else:
        (clean / "pyproject.toml").write_text(
            '[tool.pocketcore.dask]\naddress = "tcp://127.0.0.1:1"\n'
        )
    with pytest.raises(pocketcore.ConfigError) as info:
        squares()
    assert str(info.value) == message
    # One line: not chained to distributed's own error.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_repr() -> None:
    assert repr(DaskExecutor()) == "DaskExecutor()"
    assert repr(DaskExecutor("tcp://h:1", n_workers=2)) == "DaskExecutor('tcp://h:1', n_workers=2)"


@contextlib.contextmanager
def listening(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A local server that hands each connection to ``handle``; its port, until the block ends."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with server:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:  # closed: the test is over
                    return
                handle(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def answer_http(conn: socket.socket) -> None:
    """Not a scheduler: a server that answers every connection with HTTP."""
    with conn:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)


def test_something_else_answering_at_the_address_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with listening(answer_http) as port:
        monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", f"tcp://127.0.0.1:{port}")
        with (
            dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
            pytest.raises(pocketcore.ConfigError) as info,
        ):
            squares()
    assert str(info.value).startswith(
        f"cannot reach the dask scheduler at 'tcp://127.0.0.1:{port}' "
        "(from environment variable POCKETCORE_DASK_ADDRESS): "
    )
    assert str(info.value).endswith("(is a dask scheduler listening there?)")


def test_a_scheduler_that_accepts_but_never_answers_fails_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a frozen (or SIGSTOPped) scheduler looks like: the kernel accepts
    # the connection, nobody answers. dask bounds the connection, not the
    # handshake that follows, and the run used to wait forever.
    accepted: list[socket.socket] = []  # held open, never answered
    outcome: list[BaseException] = []

    def run() -> None:
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            try:
                squares()
            except BaseException as exc:  # handed to the test
                outcome.append(exc)

    with listening(accepted.append) as port:
        monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", f"tcp://127.0.0.1:{port}")
        start = time.monotonic()
        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        # The timeout, a second of grace, and a wide margin for a busy machine.
        runner.join(timeout=2 + 20)
        elapsed = time.monotonic() - start
    if runner.is_alive():  # hung: end it (the connections close) and fail
        for conn in accepted:
            conn.close()
        runner.join(timeout=30)
        pytest.fail(f"the run still waited for the scheduler after {elapsed:.0f} s")
    [error] = outcome
    assert isinstance(error, pocketcore.ConfigError), repr(error)
    assert str(error) == (
        f"cannot reach the dask scheduler at 'tcp://127.0.0.1:{port}' (from environment "
        "variable POCKETCORE_DASK_ADDRESS): no answer within 2 s (dask's connect timeout, "
        "distributed.comm.timeouts.connect); is a dask scheduler listening there, and running?"
    )
    assert accepted  # it was connected, and then waited
    # The client let go of every connection it opened: each one ends (EOF).
    for conn in accepted:
        conn.settimeout(10)
        with conn:
            while conn.recv(65536):
                pass


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "0",
            "no_workers_warning must be a positive, finite number, got 0 from key "
            "'no_workers_warning' in ",
        ),
        ("'10'", "no_workers_warning must be a positive number, got '10' (str) from key"),
        ("true", "no_workers_warning must be a positive number, got True (bool) from key"),
    ],
)
def test_bad_no_workers_warning_in_the_file(clean: Path, value: str, message: str) -> None:
    (clean / "pocketcore.toml").write_text(f"[dask]\nno_workers_warning = {value}\n")
    assert config_error().startswith(message)


def test_the_no_workers_warning_setting(clean: Path) -> None:
    assert DaskExecutor().settings().no_workers_warning == 10
    (clean / "pocketcore.toml").write_text("[dask]\nno_workers_warning = 2.5\n")
    assert DaskExecutor().settings().no_workers_warning == 2.5
    assert DaskExecutor(no_workers_warning=1).settings().no_workers_warning == 1
    assert "got -1 from argument no_workers_warning= of DaskExecutor()" in config_error(
        no_workers_warning=-1
    )
    assert repr(DaskExecutor(no_workers_warning=1)) == "DaskExecutor(no_workers_warning=1.0)"


def test_every_key_has_an_environment_variable_that_beats_the_file(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean / "pocketcore.toml").write_text(
        "[dask]\nn_workers = 3\nthreads_per_worker = 2\nprocesses = true\nconnect_timeout = 9\n"
    )
    settings = DaskExecutor().settings()
    assert (settings.n_workers, settings.threads_per_worker, settings.processes) == (3, 2, True)
    assert settings.connect_timeout == 9
    for key, value in [
        ("N_WORKERS", "5"),
        ("THREADS_PER_WORKER", "4"),
        ("PROCESSES", "false"),
        ("CONNECT_TIMEOUT", "1.5"),
        ("NO_WORKERS_WARNING", "2"),
    ]:
        monkeypatch.setenv(f"POCKETCORE_DASK_{key}", value)
    settings = DaskExecutor().settings()
    assert (settings.n_workers, settings.threads_per_worker, settings.processes) == (5, 4, False)
    assert (settings.connect_timeout, settings.no_workers_warning) == (1.5, 2)
    # ... and the arguments beat them.
    settings = DaskExecutor(n_workers=1, processes=True, connect_timeout=3).settings()
    assert (settings.n_workers, settings.processes, settings.connect_timeout) == (1, True, 3)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "POCKETCORE_DASK_N_WORKERS",
            "four",
            "n_workers must be an integer >= 1, got 'four' (str) from environment variable "
            "POCKETCORE_DASK_N_WORKERS",
        ),
        (
            "POCKETCORE_DASK_PROCESSES",
            "maybe",
            "processes must be true or false, got 'maybe' (str) from environment variable "
            "POCKETCORE_DASK_PROCESSES",
        ),
        (
            "POCKETCORE_DASK_CONNECT_TIMEOUT",
            "0",
            "connect_timeout must be a positive, finite number, got 0.0 from environment variable "
            "POCKETCORE_DASK_CONNECT_TIMEOUT",
        ),
    ],
)
def test_bad_environment_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert config_error() == message


def test_an_address_and_a_client_are_exclusive(client: Any) -> None:
    with pytest.raises(pocketcore.ConfigError, match="an address or a client, not both"):
        DaskExecutor("tcp://h:1", client=client)


def test_the_connect_timeout_setting_bounds_an_unreachable_scheduler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Port 1 refuses at once on most machines; the bound is what matters where it does not.
    monkeypatch.setenv("POCKETCORE_DASK_ADDRESS", "tcp://127.0.0.1:1")
    monkeypatch.setenv("POCKETCORE_DASK_CONNECT_TIMEOUT", "0.5")
    start = time.monotonic()
    with pytest.raises(pocketcore.ConfigError) as info:
        squares()
    assert time.monotonic() - start < 20  # 0.5 s, a second of grace, and a wide margin
    assert str(info.value).startswith(
        "cannot reach the dask scheduler at 'tcp://127.0.0.1:1' (from environment variable "
        "POCKETCORE_DASK_ADDRESS): "
    )
