"""The Ray instance runs use: the program's own, one at an address, or the process's local one.

Ray has one instance per process (``ray.init``). A program that initialised
Ray itself keeps it: runs use it as it is and never shut it down. Otherwise
the first batch that needs Ray attaches to the configured address, or starts
a local instance (``num_cpus``), and later runs reuse it; it is shut down at
interpreter exit or by :func:`shutdown`. A run asking for another address or
shape replaces it only when no batch is running on it: a running batch
finishes on the instance it started on, and the run asking is refused with
a ``ConfigError`` saying why.

Starting or attaching blocks (seconds), so :func:`lease` runs in a thread;
always the same one, which lives as long as the process (:func:`leased`).
Ray asks Linux to kill the processes it starts (its GCS server, its raylet)
when their parent dies, and Linux takes the parent to be the *thread* that
started them: started from a short-lived worker thread, the local instance
would be killed, under the runs that use it, when that thread ends.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import queue
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._settings import Settings

__all__ = ["Instance", "lease", "leased", "release", "shutdown"]

_lock = threading.Lock()
#: Calls for the thread that starts and attaches (see the module's docstring).
_calls: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
    queue.SimpleQueue()
)
_starter: threading.Thread | None = None


def _serve() -> None:
    while True:
        call, future = _calls.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)


def _in_starter(call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    """Run ``call`` in the starter thread, started at first use.

    A daemon thread, not a pool's: a pool's threads end as the interpreter
    exits, before the exit handlers run, and the instance (killed with the
    thread that started it) would be gone before :func:`shutdown` could
    shut it down in order.
    """
    global _starter
    with _lock:
        if _starter is None:
            _starter = threading.Thread(target=_serve, name="pocketcore-ray", daemon=True)
            _starter.start()
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    _calls.put((call, future))
    return future


_atexit_registered = False


@attrs.define
class Instance:
    """The Ray instance of this process, as pocketcore knows it.

    Attributes:
        ours: Started or attached by pocketcore (so shut down by it), rather
            than by the program.
        settings: What it was started with (``None`` for the program's own).
        busy: Batches running on it now.
        where: How error messages name it.
    """

    ours: bool
    settings: Settings | None
    where: str
    busy: int = 0


_current: Instance | None = None


async def leased(settings: Settings) -> Instance:
    """:func:`lease`, awaited, run in the thread that starts Ray."""
    instance: Instance = await asyncio.wrap_future(_in_starter(lambda: lease(settings)))
    return instance


def lease(settings: Settings) -> Instance:
    """The instance a batch runs on, started or attached if need be; :func:`release` it after.

    Raises:
        ConfigError: The address cannot be reached (or is malformed), or
            another run's batch is running on an instance of another address
            or shape; the message names the address and where it came from.
    """
    global _current
    import ray

    with _lock:
        if _current is not None and not ray.is_initialized():  # shut down by the program
            _current = None
        if _current is None and ray.is_initialized():
            own = Instance(ours=False, settings=None, where="the program's own Ray instance")
            _current = own
        current = _current
        if current is not None and current.ours and not _same(current.settings, settings):
            if current.busy:
                _busy(current, settings)
            if settings.address is not None:
                _reachable(settings)  # a bad address leaves the running instance alone
            _stop(current)
            _current = current = None
        if current is None:
            current = _current = _start(settings)
        current.busy += 1
        return current


def release(instance: Instance) -> None:
    """A batch that :func:`lease` gave ``instance`` is over."""
    with _lock:
        instance.busy -= 1


def _same(running: Settings | None, wanted: Settings) -> bool:
    assert running is not None  # ours
    if wanted.address is None:
        return running.address is None and running.shape == wanted.shape
    return running.address == wanted.address and running.log == wanted.log


def _busy(current: Instance, wanted: Settings) -> None:
    from pocketcore import ConfigError

    asked = _describe(wanted)
    raise ConfigError(
        f"cannot switch this process's Ray instance to {asked}: {current.where} is running "
        f"{current.busy} batch(es), and Ray allows one instance per process. "
        "Run the batches one after the other, or give them the same Ray settings"
    )


def _describe(settings: Settings) -> str:
    if settings.address is not None:
        return f"the cluster at {settings.address!r} (from {settings.sources['address']})"
    cpus = settings.num_cpus
    where = settings.sources.get("num_cpus", "the default")
    return f"a local instance with num_cpus={cpus} (from {where})"


def _start(settings: Settings) -> Instance:
    import ray

    if settings.address is not None:
        _reachable(settings)
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": settings.log,
        "logging_level": logging.INFO if settings.log else logging.ERROR,
    }
    if settings.address is None:
        options["address"] = "local"  # never some other instance found on the machine
        if settings.num_cpus is not None:
            options["num_cpus"] = settings.num_cpus
    else:
        options["address"] = settings.address
    where = _describe(settings)
    try:
        ray.init(**options)
    except Exception as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        from pocketcore import ConfigError

        raise ConfigError(
            f"cannot start Ray with {where}: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    _register_atexit()
    if not settings.log:
        _quiet_worker_deaths()
    return Instance(ours=True, settings=settings, where=where)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _reachable(settings: Settings) -> None:
    """Fail at once on a refused address, and within ``connect_timeout`` on a silent one.

    Ray itself retries a cluster that does not answer for about a minute,
    logging a warning every few seconds. A TCP connection to the address,
    made first, tells within the timeout whether anything listens there.
    """
    address = settings.address
    assert address is not None
    if address == "auto":
        return  # found by Ray (RAY_ADDRESS, or the cluster started on this machine)
    split = urlsplit(address if "://" in address else f"tcp://{address}")
    from pocketcore import ConfigError

    where = f"{address!r} (from {settings.sources['address']})"
    try:
        host, port = split.hostname, split.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise ConfigError(
            f"bad Ray address {where}: expected 'auto', 'host:port' or 'ray://host:port'"
        )
    timeout = settings.connect_timeout
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        which = settings.sources.get("connect_timeout", "the default connect_timeout")
        raise ConfigError(
            f"cannot reach the Ray cluster at {where}: no answer within {timeout:g} s "
            f"({which}); is a Ray head node listening there?"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {where}: {exc.strerror or exc}"
        ) from None


# Set while pocketcore keeps Ray quiet: the function Ray prints its errors with.
_ray_print: Callable[..., Any] | None = None


def _quiet_worker_deaths() -> None:
    """Leave out the raylet's notices, which Ray prints to this process's stdout.

    Such as "(raylet) A worker died or was killed while executing a task",
    a paragraph for every dead worker (the item whose worker died fails with
    one error naming it), or a warning that many worker processes started.
    Ray prints them from a thread of its own, through a module-level
    function, which this wraps; ``log = true`` keeps them.
    """
    global _ray_print
    try:
        from ray._private import worker as ray_worker
    except ImportError:  # pragma: no cover - Ray moved it: its lines are printed
        return
    printing = getattr(ray_worker, "print_to_stdstream", None)
    if printing is None or _ray_print is not None:
        return
    _ray_print = printing

    def filtered(data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if data.get("pid") == "raylet":
            return None
        return printing(data, *args, **kwargs)

    ray_worker.print_to_stdstream = filtered


def _stop(instance: Instance) -> None:
    import ray

    if not instance.ours:
        return
    local = instance.settings is not None and instance.settings.address is None
    leftover = _under_raylet() if local else set()
    with contextlib.suppress(Exception):  # an instance half gone shuts down as it can
        ray.shutdown()
    # ray.shutdown stops the servers it started, but the raylet's own agents
    # (ray::DashboardAgent, ray::RuntimeEnvAgent) linger for a while after it.
    for pid in leftover:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _under_raylet() -> set[int]:
    """The processes the local instance's raylet started (agents, workers); Linux only.

    The raylet is a child of this process (a local instance has one), found
    in ``/proc`` by its program's name; nothing else is looked at.
    """
    table = Path("/proc")
    if not table.is_dir():  # pragma: no cover - not Linux: Ray's own clean-up only
        return set()
    children: dict[int, list[int]] = {}
    raylets = []
    for entry in table.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            program = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        children.setdefault(ppid, []).append(int(entry.name))
        if ppid == os.getpid() and program.endswith(b"/raylet"):
            raylets.append(int(entry.name))
    found: set[int] = set()
    todo = [pid for raylet in raylets for pid in children.get(raylet, [])]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def shutdown() -> None:
    """Shut down the Ray instance pocketcore started or attached to, if any.

    Not one the program initialised itself. Called at interpreter exit too.
    Safe at any time from any thread, but not while a batch runs on it.
    """
    global _current
    with _lock:
        current, _current = _current, None
        if current is not None:
            _stop(current)


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        # Registered after Ray's own exit handler, so it runs before it.
        atexit.register(shutdown)
        _atexit_registered = True
