"""The cache's command line with the built-in SQLite store, in-process and as the real command.

Each ``exec`` of ``cached.py`` (``test_cache.CACHED``) notes its call in
``calls.txt``, so a test sees what each run, in this process or another,
computed.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import pocketcore
from pocketcore._stores.sqlite import APPLICATION_ID, SCHEMA_VERSION

from .support import COMMANDS, EXECUTORS, assert_bad_input, call, shell
from .test_cache import ALL, CACHED, calls, flow_file, run


@pytest.fixture(autouse=True)
def cached(tmp_path: Path) -> Iterator[Path]:
    """``cached.py`` in the working directory; every store closed after the test."""
    (tmp_path / "cached.py").write_text(CACHED)
    yield tmp_path
    pocketcore.close_stores()


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files no cache can be opened from, each with the start of the message it gives."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("not a database, just words\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    con.close()
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as con:
        con.execute("CREATE TABLE entries (key BLOB PRIMARY KEY, value BLOB, node TEXT)")
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    return {
        "folder": (tmp_path / "folder", f"the cache file {tmp_path}/folder is a directory"),
        "not sqlite": (
            tmp_path / "notes.txt",
            f"cannot open the cache file {tmp_path}/notes.txt: file is not a database",
        ),
        "another program's": (
            other,
            f"the file {other} is an SQLite database but not a pocketcore cache",
        ),
        "newer": (newer, f"the cache file {newer} was written by a newer pocketcore"),
        "missing folder": (
            tmp_path / "nowhere" / "c.db",
            f"cannot create the cache file {tmp_path}/nowhere/c.db: the directory "
            f"{tmp_path}/nowhere does not exist",
        ),
    }


# --- in this process -----------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_second_run_computes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, executor: str
) -> None:
    for spec in ("results.db", "sqlite:///results.db", str(tmp_path / "results.db")):
        run(capsys, "--cache", spec, "--executor", executor)
    assert sorted(calls()) == sorted([*ALL, "announce", "announce"])
    database = tmp_path / "results.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600  # pickles: its owner's only
    info = json.loads(call(capsys, "cache", "info", "results.db", "--json")[1])
    assert (info["location"], info["entries"]) == (
        str(database),
        {"cached.Square": 3, "cached.Square [whole batches]": 1, "cached.Total": 1},
    )


@pytest.mark.parametrize("case", ["folder", "not sqlite", "another program's", "newer"])
@pytest.mark.parametrize("command", ["run", "cache info", "cache clear"])
def test_a_file_that_is_no_cache_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
    bad_files: dict[str, tuple[Path, str]],
    case: str,
    command: str,
) -> None:
    path, message = bad_files[case]
    before = path.read_bytes() if path.is_file() else None
    args = ["run", "cached:build", "--cache", str(path)] if command == "run" else command.split()
    if command != "run":
        args.append(str(path))
    code, out, err = call(capsys, *args)
    assert_bad_input(code, out, err)
    source = "--cache" if command == "run" else "the SPEC argument"
    assert err.startswith(f"pocketcore: error: {message}"), err
    assert err.endswith(f"(cache from {source})\n"), err
    assert calls() == []
    if before is not None:
        assert path.read_bytes() == before  # left as it was


def test_a_missing_folder_is_one_line_for_a_run(
    capsys: pytest.CaptureFixture[str], bad_files: dict[str, tuple[Path, str]]
) -> None:
    path, message = bad_files["missing folder"]
    code, out, err = call(capsys, "run", "cached:build", "--cache", str(path))
    assert_bad_input(code, out, err)
    assert err == f"pocketcore: error: {message} (cache from --cache)\n"
    # For info and clear, a file that does not exist holds nothing, and is not made.
    assert call(capsys, "cache", "clear", str(path)) == (
        0,
        f"nothing to clear: {path} does not exist\n",
        "",
    )


@pytest.mark.parametrize("command", ["info", "clear"])
def test_an_sqlite_url_with_a_host(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, err = call(capsys, "cache", command, "sqlite://host/c.db")
    assert_bad_input(code, out, err)
    assert err.startswith("pocketcore: error: the cache sqlite://host/c.db names a host"), err


def test_a_bad_file_named_by_the_configuration(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    bad_files: dict[str, tuple[Path, str]],
) -> None:
    (tmp_path / "pocketcore.toml").write_text('cache = "notes.txt"\n')
    _, message = bad_files["not sqlite"]
    for args in (["run", "cached:build"], ["cache", "info"], ["cache", "clear"]):
        code, out, err = call(capsys, *args)
        assert_bad_input(code, out, err)
        assert err == f"pocketcore: error: {message} (cache from key 'cache' in pocketcore.toml)\n"
    name = flow_file(tmp_path / "flow.toml", config='cache = "other.db"')
    code, out, err = call(capsys, "run", name)
    assert_bad_input(code, out, err)
    assert err.endswith(
        "not a pocketcore cache: name another file (cache from [config] of flow.toml)\n"
    )


def test_verbose_names_the_file_a_path_means(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    code, _, err = call(capsys, "run", "cached:build", "-v", "-q", "--cache", "sqlite:///sub/c.db")
    assert code == 0, err
    assert (
        f"pocketcore: cache: sqlite:///sub/c.db (from --cache; SQLite file {tmp_path}/sub/c.db)"
    ) in err.splitlines()
    code, _, err = call(
        capsys, "run", "cached:build", "-v", "-q", "--cache", str(tmp_path / "c.db")
    )
    assert f"pocketcore: cache: {tmp_path}/c.db (from --cache)" in err.splitlines()


def test_a_flow_file_names_its_cache_by_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = flow_file(tmp_path / "flow.toml", config='cache = "results.db"', total="cache = false")
    for _ in range(2):
        code, _, err = call(capsys, "run", name, "-q")
        assert (code, err) == (0, "")
    assert sorted(calls()) == [*ALL[:3], ALL[3], ALL[3]]
    assert call(capsys, "cache", "clear", "results.db", "--node", "Square")[1] == (
        f"removed 4 entries of cached.Square (3 results, 1 whole batch) from "
        f"{tmp_path}/results.db\n"
    )


# --- the real command, in other processes ----------------------------------------------------


def noted(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls.txt"
    found = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return found


@pytest.mark.parametrize("command", COMMANDS)
def test_end_to_end(command: list[str], tmp_path: Path) -> None:
    said: list[str] = []  # what each run said on stderr

    def pocketcore_(*args: str, **env: str) -> str:
        done = shell(command, *args, cwd=tmp_path, **env)
        assert done.returncode == 0, done.stderr
        said.append(done.stderr)
        return done.stdout

    def entries() -> dict[str, int]:
        found: dict[str, int] = json.loads(pocketcore_("cache", "info", "path.db", "--json"))[
            "entries"
        ]
        return found

    target = ("run", "cached.py:build", "--output", "json")
    first = pocketcore_(*target, "--cache", "path.db")
    assert sorted(noted(tmp_path)) == sorted(ALL)
    assert said[-1].splitlines() == [
        "pocketcore: Square: 0 from cache, 3 computed",
        "pocketcore: Total: 0 from cache, 1 computed",  # a plain node that opts in
    ]
    # The second run computes nothing but what opted out, and prints the same.
    assert pocketcore_(*target, "--cache", "path.db", "--executor", "trio") == first
    assert noted(tmp_path) == ["announce"]
    assert said[-1].splitlines() == [
        "pocketcore: Square: 3 from cache, 0 computed",
        "pocketcore: Total: 1 from cache, 0 computed",
    ]
    assert entries() == {"cached.Square": 3, "cached.Square [whole batches]": 1, "cached.Total": 1}
    # --no-cache beats POCKETCORE_CACHE: everything is computed, nothing stored.
    pocketcore_(*target, "--no-cache", "--shared", '{"items": [7]}', POCKETCORE_CACHE="path.db")
    assert noted(tmp_path) == ["square 7", "total [49]", "announce"]
    assert said[-1] == ""  # no cache, no count
    assert entries() == {"cached.Square": 3, "cached.Square [whole batches]": 1, "cached.Total": 1}
    pocketcore_(*target, POCKETCORE_CACHE="path.db")
    assert noted(tmp_path) == ["announce"]
    # clear --node removes that class's entries only: the next run computes those alone.
    out = pocketcore_("cache", "clear", "--node", "Total", POCKETCORE_CACHE="path.db")
    assert out == f"removed 1 entry of cached.Total from {tmp_path}/path.db\n"
    assert entries() == {"cached.Square": 3, "cached.Square [whole batches]": 1}
    pocketcore_(*target, "--cache", "path.db")
    assert noted(tmp_path) == ["total [1, 4, 9]", "announce"]
    info = pocketcore_("cache", "info", "path.db").splitlines()
    assert info[0] == f"location  {tmp_path}/path.db"
    assert info[4:] == [
        "node class                     entries",
        "cached.Square                        3",
        "cached.Square [whole batches]        1",
        "cached.Total                         1",
        "total                                5",
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_end_to_end_bad_paths(
    command: list[str], tmp_path: Path, bad_files: dict[str, tuple[Path, str]]
) -> None:
    for path, message in bad_files.values():
        runs = [["run", "cached.py:build", "--cache", str(path)]]
        if path.exists():
            runs += [["cache", "info", str(path)], ["cache", "clear", str(path), "--node", "X"]]
        for args in runs:
            done = shell(command, *args, cwd=tmp_path)
            assert (done.returncode, done.stdout) == (2, ""), args
            assert done.stderr.startswith(f"pocketcore: error: {message}"), done.stderr
            assert done.stderr.count("\n") == 1, done.stderr
    assert noted(tmp_path) == []
