"""The progress bars ``pocketcore run`` shows on a terminal, as a lifecycle-hook plugin."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from pocketcore._core.limiter import LimiterLike
from pocketcore._plugins.registry import Registry
from pocketcore.hookspecs import hookimpl

from .observing import registered

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["PROGRESS_PLUGIN", "ProgressObserver", "is_terminal", "progress"]

PROGRESS_PLUGIN = "pocketcore-cli-progress"


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (not for a closed stream, or one without ``isatty``)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def progress(registry: Registry, *, enabled: bool) -> Iterator[None]:
    """Show progress bars for the run's batches while the body runs, if ``enabled``.

    The observer is registered only for the run, so the lifecycle hooks cost
    nothing when no bar is wanted (stderr is not a terminal, or ``--quiet``).
    """
    if not enabled:
        yield
        return
    observer = ProgressObserver()
    try:
        with registered(registry, observer, PROGRESS_PLUGIN):
            yield
    finally:
        observer.close()


class ProgressObserver:
    """A lifecycle-hook plugin that shows rich progress bars for batch work.

    One bar per batch node or batch flow class (labelled with the class
    name): a class whose batches run several times, such as a batch node
    inside each pass of a batch flow, adds each batch's items to its bar, so
    the number of bars stays small. Items count when they finish, failed or
    not, or when their result comes from the cache. rich is imported, and
    the display started, at the first batch, so a run without batches
    prints nothing. A batch whose limiter has ``max_concurrency="auto"``
    shows the bound in force beside its count (``auto 12/64``: 12 calls at
    once for now, out of a ceiling of 64), as the limiter moves it.

    Args:
        console: The rich console to draw on (default: a new one on stderr).
    """

    def __init__(self, console: Console | None = None) -> None:
        self._console = console
        self.progress: Progress | None = None
        """The rich progress display, once a batch has started."""
        self._tasks: dict[str, TaskID] = {}
        # Label -> the auto limiter of its class's latest batch, whose bound the bar shows.
        self._auto: dict[str, LimiterLike] = {}
        self._shown: dict[str, str] = {}  # label -> the bound its bar shows
        # Items may finish on worker threads (sync parallel batches); rich's
        # own lock covers the display, this one the bookkeeping around it.
        self._lock = threading.Lock()

    @hookimpl
    def pocketcore_batch_start(
        self, node: Any, size: int | None, limiters: Sequence[LimiterLike]
    ) -> None:
        """Add the batch's items to its class's bar (creating the bar if needed)."""
        with self._lock:
            progress = self.progress or self._start()
            label = type(node).__name__
            auto = next((lim for lim in limiters if lim.max_concurrency == "auto"), None)
            if auto is not None:
                self._auto[label] = auto
            elif self._auto.pop(label, None) is not None:
                self._shown[label] = ""  # this batch's bound is fixed, or there is none
            task = self._tasks.get(label)
            if task is None:
                task = self._tasks[label] = progress.add_task(label, total=size, bound="")
                self._show_bound(label, task)
                return
            progress.update(task, bound=self._shown.get(label, ""))
            self._show_bound(label, task)
            bar = next(t for t in progress.tasks if t.id == task)
            if bar.total is not None and size is not None:
                progress.update(task, total=bar.total + size)
            else:  # rich's update() cannot unset a total; the task can
                bar.total = None

    @hookimpl
    def pocketcore_batch_item_done(self, node: Any) -> None:
        """Count one finished item on its class's bar (and show where an auto bound stands)."""
        with self._lock:
            label = type(node).__name__
            task = self._tasks.get(label)
            if self.progress is not None and task is not None:
                self.progress.advance(task)
                self._show_bound(label, task)

    def _show_bound(self, label: str, task: TaskID) -> None:
        """Show where the auto bound of ``label``'s limiter stands on its bar (under the lock)."""
        limiter = self._auto.get(label)
        if limiter is None or self.progress is None:
            return
        shown = f"auto {limiter.concurrency}/{limiter.ceiling}"
        if self._shown.get(label) != shown:
            self._shown[label] = shown
            self.progress.update(task, bound=shown)

    def bounds(self) -> dict[str, str]:
        """Each bar's label with the auto bound it shows (``""`` for none)."""
        if self.progress is None:
            return {}
        return {t.description: str(t.fields.get("bound", "")) for t in self.progress.tasks}

    @hookimpl
    def pocketcore_batch_item_cached(self, node: Any) -> None:
        """Count one item whose result came from the cache, as a finished one."""
        self.pocketcore_batch_item_done(node)

    def counts(self) -> dict[str, tuple[int, int | None]]:
        """Each bar's label with its finished items and total (``None``: unknown)."""
        if self.progress is None:
            return {}
        return {
            t.description: (int(t.completed), None if t.total is None else int(t.total))
            for t in self.progress.tasks
        }

    def close(self) -> None:
        """Stop the display, leaving the bars' final state on screen."""
        if self.progress is not None:
            self.progress.stop()

    def _start(self) -> Progress:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[bound]}"),
            TimeElapsedColumn(),
            console=self._console or Console(stderr=True),
        )
        self.progress.start()
        return self.progress
