"""Every command of the documentation's console blocks that works on this checkout, checked.

- ``pip install``: what it installs from the checkout must install there as
  written (every distribution of this repository it needs is a folder of the
  same command or of an earlier line of its block, the kernel aside), and an
  install by name of a distribution of this repository (not on PyPI yet) has
  its checkout form in the same section of the page.
- ``nox -s NAME``: the session exists (running them is CI's own job).
- ``pocketcore ...`` and ``python ...`` commands that run files, folders or
  modules of the checkout, or no file at all, run in a copy of the
  checkout's examples, page by page, block by block, with the environment
  their block exports: each exits as the page shows (0, the status an
  ``echo $?`` prints, 2 for a ``pocketcore: error:`` line, killed where the
  page kills it), prints the JSON the page shows for ``--output json``, and
  the text it shows for a store printed whole.

Commands on files the reader writes from the page's own code blocks (``shout.py``,
``typo.toml``) are the business of the tests of what they show, and are
listed by :func:`test_what_is_not_run_is_what_the_reader_writes`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .docs_commands import (
    REPO,
    Command,
    Page,
    closure,
    distributions,
    doc_files,
    folder_names,
    is_checkout_install,
    iter_commands,
    named_sessions,
    nox_constant,
    nox_sessions,
    parts,
    pip_install,
    read_page,
    words,
)

#: What a reader has installed before any page's own install lines: the kernel (README.md).
KERNEL = {"pocketcore", "pocketcore-sequential", "pocketcore-asyncio"}
#: Fast simulated calls, unless a block exports its own.
FAST = {"SUMMARY_DELAY": "0.02", "FILTER_DELAY": "0.01"}
#: Commands of the checkout not run here, and why: each is run by a session of its own.
NOT_RUN = {
    "python -m examples.cpu_bound.flow": "minutes of CPU work on dask; tests/test_examples.py "
    "runs the example",
    "python -m benchmarks.dask_scale": "minutes of benchmark; nox -s bench",
    "python -m benchmarks.remote_executors": "minutes of benchmark, on dask and Ray clusters",
    "python plugins/pocketcore-otel/benchmarks/overhead.py": "minutes of benchmark",
}
INPUT_FILE = re.compile(r"^@?[\w./-]+\.(py|toml|json|txt|db|html)(:[\w.]+)?$")
OUTPUT_OPTIONS = {"--cache", "--timeline"}


# --- pip install ---------------------------------------------------------------------


def all_installs() -> Iterator[tuple[Page, Command]]:
    for path in doc_files():
        page = read_page(path)
        for command in [*page.commands, *page.inline_installs]:
            for part in parts(command.text):
                if pip_install(part) is not None:
                    yield page, Command(part, command.where, command.block, command.section)


def test_every_install_from_the_checkout_finds_what_it_needs() -> None:
    dists = distributions()
    problems = []
    earlier: dict[tuple[str, int], set[str]] = {}  # what earlier lines of a block installed
    for page, command in all_installs():
        install = pip_install(command.text)
        assert install is not None
        if not install.folders:
            continue
        try:
            named = folder_names(install, dists)
        except LookupError as exc:
            if is_checkout_install(install):
                problems.append(f"{command}: {exc} is not a distribution of this repository")
            continue  # a folder the reader makes (a plugin of their own)
        before = earlier.setdefault((str(page.path), command.block), set())
        installed = {name for name, _ in named}
        missing = closure(named, dists) - installed - before - KERNEL
        # By name, a distribution of this repository is looked for on PyPI.
        missing |= {name for name, _ in install.names if name in dists} - before - installed
        if missing:
            problems.append(f"{command}: needs {', '.join(sorted(missing))}, not on PyPI")
        before |= installed
    assert problems == []


def test_every_install_by_name_has_its_checkout_form_beside_it() -> None:
    dists = distributions()
    by_section: dict[tuple[str, str], set[str]] = {}
    installs = list(all_installs())
    for page, command in installs:
        install = pip_install(command.text)
        assert install is not None
        try:
            named = folder_names(install, dists)
        except LookupError:
            continue
        key = (str(page.path), command.section)
        by_section.setdefault(key, set()).update(closure(named, dists))
    problems = []
    for page, command in installs:
        install = pip_install(command.text)
        assert install is not None
        ours = [(name, extras) for name, extras in install.names if name in dists]
        if not ours:
            continue
        beside = by_section.get((str(page.path), command.section), set())
        missing = closure(ours, dists) - beside
        if missing:
            problems.append(
                f"{command}: no checkout form in its section installs {', '.join(sorted(missing))}"
            )
    assert problems == []


# --- nox -----------------------------------------------------------------------------


def test_every_nox_session_named_exists() -> None:
    sessions = nox_sessions()
    named = [
        (command, s)
        for _, command in iter_commands()
        for part in parts(command.text)
        for s in named_sessions(part) or []
    ]
    assert {s for _, s in named} >= {"tests", "lint", "typecheck", "docs", "demo", "dev"}
    assert [f"{c}: {s}" for c, s in named if s not in sessions] == []


def test_nox_dev_installs_the_kernel_and_every_plugin() -> None:
    plugins = {p.name.removeprefix("pocketcore-") for p in (REPO / "plugins").iterdir()}
    listed = nox_constant("PLUGINS")
    assert isinstance(listed, tuple)
    assert set(listed) == plugins
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    _two, _, after = readme.partition("## Two commands")
    # Said right after the two commands, before the next section.
    assert ".venv/bin/python -m nox -s dev" in after.split("\n## ")[0]


# --- running the commands of the checkout --------------------------------------------


def _env_words(text: str) -> tuple[dict[str, str], list[str]]:
    args = words(text)
    env = {}
    while args and re.match(r"^[A-Z_][A-Z0-9_]*=", args[0]):
        key, _, value = args.pop(0).partition("=")
        env[key] = value
    return env, args


def _program(args: list[str]) -> str | None:
    """What the program alone says: ``run``, ``reader``, ``other``, or ``None`` (see its files)."""
    if args[0] in ("mkdir", "cp"):  # making the folders a page's next command reads
        return "run"
    if args[0] == "pocketcore":
        return None
    if args[0] not in ("python", "python3"):
        return "other"
    if args[1:2] == ["-m"]:
        if args[2] in ("venv", "pip", "nox"):
            return "other"
        top = args[2].split(".")[0]
    else:
        top = args[1].split("/")[0]
    # python some_file.py of the page's own is the reader's.
    return None if top in ("examples", "benchmarks", "plugins") else "reader"


def kind(text: str, cwd: Path) -> str:
    """``run``, ``reader`` (it needs files the reader writes) or ``other`` (not a run)."""
    env, args = _env_words(text)
    if not args:
        return "other"
    said = _program(args)
    if said is not None:
        return said
    if any(not (cwd / v).exists() for k, v in env.items() if k == "PYTHONPATH"):
        return "reader"
    for before, arg in zip(["", *args], args, strict=False):
        if before in OUTPUT_OPTIONS or not INPUT_FILE.match(arg):
            continue
        if not (cwd / arg.lstrip("@").split(":")[0]).exists():
            return "reader"
    return "run"


def expected_status(command: Command, following: Command | None) -> int | float:
    """What the page says the command exits with; a float: killed after that many seconds."""
    if following is not None and following.text == "echo $?":
        return int(following.output[0])
    first = command.output[0] if command.output else ""
    if first.startswith("Killed"):
        m = re.search(r"after ([\d.]+) s", first)
        assert m is not None, f"{command}: killed when?"
        return float(m.group(1))
    return 2 if first.startswith("pocketcore: error:") else 0


def run(text: str, cwd: Path, env: dict[str, str], status: int | float) -> tuple[int, str, str]:
    path = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    with subprocess.Popen(
        ["bash", "-c", text],
        cwd=cwd,
        env={**env, "PATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        timeout = status if isinstance(status, float) else 300
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, err = proc.communicate()
            return -9, out, err
        return proc.returncode, out, err


def sandbox(root: Path) -> Path:
    """A copy of what the commands read and write: the examples, the benchmarks, scratch/."""
    for name in ("examples", "scratch", "benchmarks"):
        shutil.copytree(
            REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "out")
        )
    return root


def checks(command: Command, out: str) -> list[str]:
    """What the printed output must match: the JSON, or the store printed whole."""
    shown = "\n".join(command.output)
    if "--output json" in command.text and shown.lstrip().startswith("{"):
        try:
            expected = json.loads(shown)
        except json.JSONDecodeError:
            return []  # an excerpt ("...")
        return [] if json.loads(out) == expected else [f"{command}: printed other JSON"]
    if shown.startswith("shared:"):
        return [] if out.rstrip("\n") == shown else [f"{command}: printed\n{out}"]
    return []


def runs(command: Command, cwd: Path) -> bool:
    return kind(command.text, cwd) == "run" and not command.text.startswith(tuple(NOT_RUN))


def pages_with_runs() -> list[Path]:
    return [p for p in doc_files() if any(runs(c, REPO) for c in read_page(p).commands)]


@pytest.mark.parametrize("path", pages_with_runs(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_the_commands_of_the_checkout_run_as_the_page_shows(path: Path, tmp_path: Path) -> None:
    cwd = sandbox(tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_")}
    env = {**base, **FAST}
    page = read_page(path)
    problems, ran = [], []
    for i, command in enumerate(page.commands):
        following = page.commands[i + 1] if i + 1 < len(page.commands) else None
        for part in parts(command.text):
            args = words(part)
            if args[:1] == ["export"]:
                env.update(dict(a.split("=", 1) for a in args[1:]))
                continue
            if args[:1] == ["cd"]:
                cwd = cwd / args[1]
                continue
            if any(part.startswith(prefix) for prefix in NOT_RUN):
                continue
            if kind(part, cwd) != "run":
                continue
            status = expected_status(command, following)
            code, out, err = run(part, cwd, env, status)
            ran.append(part)
            want = -9 if isinstance(status, float) else status
            if code != want:
                problems.append(f"{command}: exit status {code}, not {want}: {err[-500:]}")
                continue
            problems += checks(command, out)
    assert ran
    assert problems == []


def test_what_is_not_run_is_what_the_reader_writes() -> None:
    """The commands left out name files no checkout has (written from the page), or NOT_RUN."""
    left = {}
    for _, command in iter_commands():
        for part in parts(command.text):
            if kind(part, REPO) == "reader":
                left[part] = command.where
    for part, where in left.items():
        # Each names a file, a folder or a module that no checkout holds.
        env, args = _env_words(part)
        named = [a.lstrip("@").split(":")[0] for a in args[1:] if not a.startswith("-")]
        named += [v for k, v in env.items() if k == "PYTHONPATH"]
        assert any(not (REPO / n).exists() for n in named), f"{where}: {part}"
    present = {prefix for prefix in NOT_RUN for _, c in iter_commands() if prefix in c.text}
    assert present == set(NOT_RUN)


# --- what the commands leave behind ------------------------------------


def written(text: str) -> list[str]:
    """The files a command writes: the values of its --cache and --timeline options."""
    args = words(text)
    return [value for option, value in itertools.pairwise(args) if option in OUTPUT_OPTIONS]


def test_the_commands_of_the_checkout_write_only_where_git_ignores() -> None:
    outputs = {
        path: command.where
        for _, command in iter_commands()
        for part in parts(command.text)
        if kind(part, REPO) == "run"
        for path in written(part)
    }
    # The image filter's default output folder, too.
    outputs["examples/image_filter/out/gradient-invert.ppm"] = "examples/image_filter/flow.py"
    assert "scratch/summaries.db" in outputs
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=REPO,
        input="\n".join(outputs),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert [f"{where}: {path}" for path, where in outputs.items() if path not in ignored] == []
    assert all(Path(path).parent != Path() for path in outputs)  # none in the root
