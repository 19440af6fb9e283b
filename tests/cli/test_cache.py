"""The result cache on the command line: ``run --cache``/``--no-cache``, ``cache info|clear``.

The store here is ``testfile`` (``tests/filestore.py``), a plugin's store
kept in one file, registered for each test; each ``exec`` notes its call in
``calls.txt``, so a test sees what a run computed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from tests import filestore

from .support import assert_bad_input, call

CACHED = """
import anyio
import pocketcore


def note(what):
    with open("calls.txt", "a") as f:
        f.write(what + "\\n")


class Square(pocketcore.AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return shared.get("items", [1, 2, 3])

    async def exec_async(self, x):
        note(f"square {x}")
        await anyio.sleep(0)
        return x * x

    async def post_async(self, shared, prep_res, exec_res):
        shared["squares"] = exec_res


class Total(pocketcore.Node):
    def prep(self, shared):
        return shared["squares"]

    def exec(self, squares):
        note(f"total {squares}")
        return sum(squares)

    def post(self, shared, prep_res, exec_res):
        shared["total"] = exec_res


class Announce(pocketcore.Node):
    cache = False  # a side effect: never skipped

    def exec(self, prep_res):
        note("announce")


def build():
    square = Square()
    square >> Total() >> Announce()
    return pocketcore.AsyncFlow(start=square)
"""

OTHER = """
import pocketcore


class Square(pocketcore.Node):
    def exec(self, prep_res):
        return 0
"""

FLOW_FILE = """
[config]
{config}

[flow]
type = "AsyncFlow"
start = "square"

[flow.nodes.square]
use = "cached:Square"
next = "total"

[flow.nodes.total]
use = "cached:Total"
{total}
"""

ALL = ["square 1", "square 2", "square 3", "total [1, 4, 9]", "announce"]


@pytest.fixture(autouse=True)
def store(tmp_path: Path) -> Iterator[Path]:
    """``cached.py`` in the working directory, and the ``testfile`` store registered.

    Yields the path of a test cache the tests name as ``testfile:results``.
    """
    (tmp_path / "cached.py").write_text(CACHED)
    plugin = filestore.FileStorePlugin()
    registry = pocketcore.get_registry()
    registry.register(plugin, name="test-file-store")
    try:
        yield tmp_path / "results"
    finally:
        registry.unregister(plugin)
        pocketcore.close_stores()


def flow_file(path: Path, *, config: str = "", total: str = "") -> str:
    path.write_text(FLOW_FILE.format(config=config, total=total))
    return path.name


def calls() -> list[str]:
    """What ran since the last call (each exec, in the order they noted it)."""
    path = Path("calls.txt")
    if not path.exists():
        return []
    found = path.read_text().splitlines()
    path.unlink()
    return found


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """``pocketcore run cached:build ARGS``, which must succeed; its shared store."""
    code, out, err = call(capsys, "run", "cached:build", *args, "--output", "json")
    assert (code, err) == (0, ""), err
    shared: dict[str, Any] = json.loads(out)["shared"]
    return shared


# --- pocketcore run --cache / --no-cache -------------------------------------------------


def test_a_second_run_computes_nothing(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    first = run(capsys, "--cache", "testfile:results")
    assert sorted(calls()) == sorted(ALL)
    assert (
        run(capsys, "--cache", "testfile:results")
        == first
        == {
            "squares": [1, 4, 9],
            "total": 14,
        }
    )
    assert calls() == ["announce"]  # cache = False on the class: always run
    # New inputs are computed; the rest come from the cache.
    run(capsys, "--cache", "testfile:results", "--shared", '{"items": [2, 3, 4]}')
    assert calls() == ["square 4", "total [4, 9, 16]", "announce"]
    assert filestore.entries(store) == {"cached.Square": 4, "cached.Total": 2}


def test_without_a_cache_everything_is_computed(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys)
    run(capsys)
    assert sorted(calls()) == sorted(ALL * 2)


def test_no_cache_beats_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    monkeypatch.setenv("POCKETCORE_CACHE", "testfile:results")
    run(capsys)
    run(capsys)
    assert sorted(calls()) == sorted([*ALL, "announce"])  # the environment's cache works
    run(capsys, "--no-cache")
    assert sorted(calls()) == sorted(ALL)
    run(capsys, "--cache", "off")  # the same, in the words the environment and files use
    assert sorted(calls()) == sorted(ALL)
    assert filestore.entries(store).total() == 4


def test_a_flow_files_config_and_the_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = flow_file(tmp_path / "flow.toml", config='cache = "testfile:from-file"')
    code, _, err = call(capsys, "run", name, "-q")
    assert (code, err) == (0, "")
    assert filestore.entries(tmp_path / "from-file").total() == 4
    assert len(calls()) == 4  # the file's flow has no Announce
    call(capsys, "run", name)
    assert calls() == []
    # --cache wins over [config]; --no-cache turns it off.
    call(capsys, "run", name, "--cache", "testfile:from-option")
    assert len(calls()) == 4
    assert filestore.entries(tmp_path / "from-option").total() == 4
    call(capsys, "run", name, "--no-cache")
    assert len(calls()) == 4


def test_a_node_of_a_flow_file_opts_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    name = flow_file(tmp_path / "flow.toml", total="cache = false")
    code, _, err = call(capsys, "run", name, "--cache", "testfile:results")
    assert (code, err) == (0, ""), err
    assert sorted(calls()) == ["square 1", "square 2", "square 3", "total [1, 4, 9]"]
    code, _, err = call(capsys, "run", name, "--cache", "testfile:results")
    assert (code, err) == (0, ""), err
    assert calls() == ["total [1, 4, 9]"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cache", ""], "argument --cache: must name a store (a path, NAME:...), got ''"),
        (["--cache", "  "], "argument --cache: must name a store"),
        (
            ["--cache", "x.db", "--no-cache"],
            "argument --no-cache: not allowed with argument --cache",
        ),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = call(capsys, "run", "cached:build", *args)
    assert_bad_input(code, out, err)
    assert err.startswith(f"pocketcore: error: {message}"), err


def test_a_store_that_cannot_be_opened_is_one_line_naming_where_it_was_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "junk").write_text("not a cache")
    folder, junk = tmp_path / "folder", tmp_path / "junk"
    for args, message in [
        (
            ["--cache", "testfile:folder"],
            f"the test cache {folder} is a directory (cache from --cache)",
        ),
        (["--cache", "testfile:junk"], f"the file {junk} is not a test cache (cache from --cache)"),
        (
            ["--cache", "nope:x"],
            "unknown cache store 'nope' (from --cache); registered stores: ",
        ),
    ]:
        code, out, err = call(capsys, "run", "cached:build", *args)
        assert_bad_input(code, out, err)
        assert err.startswith(f"pocketcore: error: {message}"), err
    name = flow_file(tmp_path / "flow.toml", config='cache = "testfile:folder"')
    code, out, err = call(capsys, "run", name)
    assert_bad_input(code, out, err)
    assert err.endswith("is a directory (cache from [config] of flow.toml)\n"), err
    monkeypatch.setenv("POCKETCORE_CACHE", "testfile:junk")
    code, out, err = call(capsys, "run", "cached:build")
    assert_bad_input(code, out, err)
    assert err.endswith(
        "is not a test cache (cache from environment variable POCKETCORE_CACHE)\n"
    ), err
    assert calls() == []  # found before anything ran


def test_verbose_shows_the_cache(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def cache_line(*args: str) -> str:
        code, _, err = call(capsys, "run", "cached:build", "-v", "-q", *args)
        assert code == 0, err
        (line,) = [line for line in err.splitlines() if line.startswith("pocketcore: cache:")]
        return line

    assert cache_line() == "pocketcore: cache: not set (off)"
    assert cache_line("--no-cache") == "pocketcore: cache: off (from --no-cache)"
    assert cache_line("--cache", "OFF") == "pocketcore: cache: off (from --cache)"
    assert cache_line("--cache", "testfile:results") == (
        "pocketcore: cache: testfile:results (from --cache)"
    )
    monkeypatch.setenv("POCKETCORE_CACHE", "testfile:results")
    assert cache_line() == (
        "pocketcore: cache: testfile:results (from environment variable POCKETCORE_CACHE)"
    )
    monkeypatch.setenv("POCKETCORE_CACHE", "off")
    assert cache_line() == "pocketcore: cache: off (from environment variable POCKETCORE_CACHE)"
