"""The result cache on the command line: ``run --cache``/``--no-cache``, ``cache info|clear``.

The store here is ``testfile`` (``tests/filestore.py``), a plugin's store
kept in one file, registered for each test; each ``exec`` notes its call in
``calls.txt``, so a test sees what a run computed.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pocketcore
from pocketcore._cli.cache import find_node, human_size
from pocketcore._cli.errors import BadInput
from tests import filestore
from tests.strategies import node_label_sets, store_sizes

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
    cache = True  # a plain node is cached only when it opts in

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
    cache = True

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


#: The line a run with a cache ends with, per batch node class.
COUNTED = re.compile(r"pocketcore: \w+: [\d,]+ from cache, [\d,]+ computed")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """``pocketcore run cached:build ARGS``, which must succeed; its shared store.

    Its stderr holds nothing but the count of cached and computed items.
    """
    code, out, err = call(capsys, "run", "cached:build", *args, "--output", "json")
    assert code == 0, err
    assert all(COUNTED.fullmatch(line) for line in err.splitlines()), err
    shared: dict[str, Any] = json.loads(out)["shared"]
    return shared


# --- pocketcore run --cache / --no-cache -------------------------------------------------


REPORTED = """
import pocketcore


class Load(pocketcore.Node):
    cache = True  # a plain node opts in

    def prep(self, shared):
        return "texts"

    def exec(self, folder):
        return folder.upper()


class Half(pocketcore.ParallelBatchNode):
    on_error = "collect"

    def prep(self, shared):
        return list(range(shared.get("n", 100)))

    def exec(self, x):
        if x == shared_failing():
            raise ValueError(f"item {x} fails")
        return x // 2

    def post(self, shared, prep_res, exec_res):
        shared["done"] = sum(1 for r in exec_res if not isinstance(r, pocketcore.Failed))


def shared_failing():
    import os

    return int(os.environ.get("FAILING", "-1"))


class Opted(pocketcore.BatchNode):
    cache = False

    def prep(self, shared):
        return [1, 2]


def build():
    load = Load()
    load >> Half() >> Opted()
    return pocketcore.Flow(start=load)
"""


def test_reports_count_what_came_from_the_cache(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "reported.py").write_text(REPORTED)
    args = ("run", "reported:build", "--cache", "testfile:results")
    code, _, err = call(capsys, *args, "--shared", '{"n": 99}')
    assert code == 0, err
    assert err.splitlines() == [
        "pocketcore: Load: 0 from cache, 1 computed",
        "pocketcore: Half: 0 from cache, 99 computed",  # Opted says cache = False
    ]
    # 99 items from the cache and one that fails: all of them are counted.
    monkeypatch.setenv("FAILING", "99")
    code, _, err = call(capsys, *args)
    assert code == 0, err
    assert err.splitlines() == [
        "pocketcore: Load: 1 from cache, 0 computed",
        "pocketcore: Half: 99 from cache, 0 computed",
        "pocketcore: 101 ok, 1 failed",  # Half's 99 from the cache, and Opted's 2
    ]


def test_a_fully_cached_batchs_bar_ends_full(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pocketcore._cli import main

    class FakeTerminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    (tmp_path / "reported.py").write_text(REPORTED)
    args = ["run", "reported:build", "--cache", "testfile:results", "--shared", '{"n": 50}']
    for _ in range(2):
        terminal = FakeTerminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert main(args) == 0
    assert "50/50" in terminal.getvalue()
    assert "Half: 50 from cache, 0 computed" in terminal.getvalue()


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
    # The squares' whole-batch entry now holds the second batch (one per node).
    assert filestore.entries(store) == {
        "cached.Square": 4,
        "cached.Square [whole batches]": 1,
        "cached.Total": 2,
    }


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
    assert filestore.entries(store).total() == 5  # 3 squares, their batch, 1 total


def test_a_flow_files_config_and_the_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = flow_file(tmp_path / "flow.toml", config='cache = "testfile:from-file"')
    code, _, err = call(capsys, "run", name, "-q")
    assert (code, err) == (0, "")
    assert filestore.entries(tmp_path / "from-file").total() == 5
    assert len(calls()) == 4  # the file's flow has no Announce
    call(capsys, "run", name)
    assert calls() == []
    # --cache wins over [config]; --no-cache turns it off.
    call(capsys, "run", name, "--cache", "testfile:from-option")
    assert len(calls()) == 4
    assert filestore.entries(tmp_path / "from-option").total() == 5
    call(capsys, "run", name, "--no-cache")
    assert len(calls()) == 4


def test_a_node_of_a_flow_file_opts_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    name = flow_file(tmp_path / "flow.toml", total="cache = false")
    code, _, err = call(capsys, "run", name, "--cache", "testfile:results")
    assert (code, err) == (0, "pocketcore: Square: 0 from cache, 3 computed\n"), err
    assert sorted(calls()) == ["square 1", "square 2", "square 3", "total [1, 4, 9]"]
    code, _, err = call(capsys, "run", name, "--cache", "testfile:results")
    assert (code, err) == (0, "pocketcore: Square: 3 from cache, 0 computed\n"), err
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


# --- pocketcore cache info -------------------------------------------------------------


def info_lines(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    code, out, err = call(capsys, "cache", "info", *args)
    assert (code, err) == (0, ""), err
    return out.splitlines()


def test_info_counts_the_entries_of_each_node_class(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    run(capsys, "--cache", "testfile:results", "--shared", '{"items": [1, 2, 3, 4]}')
    run(capsys, "--cache", "testfile:results", "--shared", '{"items": [5]}')
    size = human_size(store.stat().st_size)
    lines = info_lines(capsys, "testfile:results")
    assert lines[0] == f"location  {store}"
    assert lines[1:] == [
        "source    the SPEC argument",
        f"size      {size}",
        "",
        "node class                     entries",
        "cached.Square                        5",
        "cached.Square [whole batches]        1",
        "cached.Total                         2",
        "total                                8",
    ]
    as_json = json.loads(call(capsys, "cache", "info", "testfile:results", "--json")[1])
    assert as_json == {
        "location": str(store),
        "source": "the SPEC argument",
        "exists": True,
        "entries": {"cached.Square": 5, "cached.Square [whole batches]": 1, "cached.Total": 2},
        "total": 8,
        "size": store.stat().st_size,
    }


def test_info_of_an_empty_store(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    run(capsys, "--cache", "testfile:results")
    call(capsys, "cache", "clear", "testfile:results")
    assert info_lines(capsys, "testfile:results")[2:] == [
        f"size      {human_size(store.stat().st_size)}",
        "entries   none",
    ]


def test_info_uses_the_configured_cache(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run(capsys, "--cache", "testfile:results")
    (tmp_path / "pocketcore.toml").write_text('cache = "testfile:results"\n')
    assert info_lines(capsys)[1:] == [
        "source    key 'cache' in pocketcore.toml",
        f"size      {human_size((tmp_path / 'results').stat().st_size)}",
        "",
        "node class                     entries",
        "cached.Square                        3",
        "cached.Square [whole batches]        1",
        "cached.Total                         1",
        "total                                5",
    ]
    # The environment wins over the file, as for a run.
    monkeypatch.setenv("POCKETCORE_CACHE", "testfile:elsewhere")
    (tmp_path / "elsewhere").mkdir()
    code, out, err = call(capsys, "cache", "info")
    assert_bad_input(code, out, err)
    assert err == (
        f"pocketcore: error: the test cache {tmp_path}/elsewhere is a directory "
        "(cache from environment variable POCKETCORE_CACHE)\n"
    )


@pytest.mark.parametrize("command", ["info", "clear"])
def test_with_no_cache_configured_there_is_nothing_to_open(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    tmp_path: Path,
) -> None:
    code, out, err = call(capsys, "cache", command)
    assert_bad_input(code, out, err)
    assert err.startswith(
        f"pocketcore: error: no cache is configured: name one (pocketcore cache {command} SPEC), "
        "or set POCKETCORE_CACHE or 'cache' in pocketcore.toml or [tool.pocketcore] of "
        "pyproject.toml; no configuration file found: searched pocketcore.toml and "
        f"pyproject.toml in {tmp_path}, {tmp_path.parent}, "
    ), err
    monkeypatch.setenv("POCKETCORE_CACHE", "off")
    code, out, err = call(capsys, "cache", command)
    assert_bad_input(code, out, err)
    assert err == (
        "pocketcore: error: the cache is off (from environment variable POCKETCORE_CACHE): "
        "name a store as SPEC\n"
    )
    assert sorted(p.name for p in Path().iterdir()) == ["cached.py"]  # no file was made
    monkeypatch.delenv("POCKETCORE_CACHE")
    # A file found further up that sets no cache is named.
    (tmp_path / "pyproject.toml").write_text("[tool.pocketcore]\nmax_concurrency = 2\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    code, out, err = call(capsys, "cache", command)
    assert_bad_input(code, out, err)
    assert err.endswith(f"; the configuration file is {os.path.join('..', 'pyproject.toml')}\n")


@pytest.mark.parametrize("command", ["info", "clear"])
def test_the_memory_store_is_not_shown_from_another_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    code, out, err = call(capsys, "cache", command, "memory")
    assert_bad_input(code, out, err)
    assert err.startswith(
        "pocketcore: error: the 'memory' cache (from the SPEC argument) lives in the process "
        "that runs a flow and ends with it: a new process has nothing in it to show or clear"
    ), err
    monkeypatch.setenv("POCKETCORE_CACHE", "memory")
    code, out, err = call(capsys, "cache", command)
    assert_bad_input(code, out, err)
    assert "(from environment variable POCKETCORE_CACHE)" in err


def test_an_sqlite_file_that_does_not_exist_is_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.db"
    for spec in ("missing.db", "sqlite:///missing.db", str(missing)):
        assert info_lines(capsys, spec) == [
            f"location  {missing} (no such file: nothing stored yet)",
            "source    the SPEC argument",
        ]
        info = json.loads(call(capsys, "cache", "info", spec, "--json")[1])
        assert (info["exists"], info["total"], info["size"]) == (False, 0, 0)
        assert call(capsys, "cache", "clear", spec) == (
            0,
            f"nothing to clear: {missing} does not exist\n",
            "",
        )
    assert not missing.exists()


def test_a_store_that_fails_while_read_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    run(capsys, "--cache", "testfile:results")

    def fail(*args: object) -> None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(filestore.FileStore, "info", fail)
    code, out, err = call(capsys, "cache", "info", "testfile:results")
    assert_bad_input(code, out, err)
    assert err == (
        f"pocketcore: error: cache store {store} failed while reading its entries: "
        "OSError: disk I/O error\n"
    )
    monkeypatch.setattr(filestore.FileStore, "clear", fail)
    code, out, err = call(capsys, "cache", "clear", "testfile:results")
    assert_bad_input(code, out, err)
    assert err.endswith("failed while clearing it: OSError: disk I/O error\n")


@given(size=store_sizes)
def test_sizes_are_shown_to_one_decimal_in_the_largest_unit_below_1000(size: int) -> None:
    shown = human_size(size)
    if size < 1000:
        assert shown == ("1 byte" if size == 1 else f"{size} bytes")
        return
    match = re.fullmatch(r"(\d{1,3}\.\d) (kB|MB|GB|TB|PB|EB|ZB|YB)", shown)
    assert match is not None, shown
    number, unit = float(match[1]), match[2]
    scale = 1000 ** (["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"].index(unit) + 1)
    assert 1.0 <= number < 1000
    assert abs(number * scale - size) <= 0.05 * scale + 1e-9 * size


def test_sizes_at_the_edges() -> None:
    assert [human_size(n) for n in (0, 1, 999, 1000, 1049, 1050, 999_949, 999_950, 1_234_567)] == [
        "0 bytes",
        "1 byte",
        "999 bytes",
        "1.0 kB",
        "1.0 kB",
        "1.1 kB",
        "999.9 kB",
        "1.0 MB",
        "1.2 MB",
    ]


# --- pocketcore cache clear ------------------------------------------------------------


def test_clear_node_removes_only_that_classs_entries(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    run(capsys, "--cache", "testfile:results")
    calls()
    code, out, err = call(capsys, "cache", "clear", "testfile:results", "--node", "Total")
    assert (code, out, err) == (0, f"removed 1 entry of cached.Total from {store}\n", "")
    assert filestore.entries(store) == {"cached.Square": 3, "cached.Square [whole batches]": 1}
    run(capsys, "--cache", "testfile:results")
    assert calls() == ["total [1, 4, 9]", "announce"]  # the squares still came from the cache
    code, out, _ = call(capsys, "cache", "clear", "testfile:results", "--node", "cached:Square")
    # The class's whole batches go with its results: nothing of it is left to hit.
    assert (code, out) == (
        0,
        f"removed 4 entries of cached.Square (3 results, 1 whole batch) from {store}\n",
    )
    assert filestore.entries(store) == {"cached.Total": 1}
    code, out, _ = call(capsys, "cache", "clear", "testfile:results")
    assert (code, out) == (0, f"removed 1 entry from {store}\n")
    assert filestore.entries(store) == {}


def test_clear_node_with_a_whole_batch_label_removes_those_entries_alone(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    run(capsys, "--cache", "testfile:results")
    label = "cached.Square [whole batches]"
    code, out, err = call(capsys, "cache", "clear", "testfile:results", "--node", label)
    assert (code, out, err) == (0, f"removed 1 entry of {label} from {store}\n", "")
    assert filestore.entries(store) == {"cached.Square": 3, "cached.Total": 1}


def test_clear_uses_the_configured_cache(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    monkeypatch.setenv("POCKETCORE_CACHE", "testfile:results")
    run(capsys)
    calls()
    code, out, _ = call(capsys, "cache", "clear", "--node", "cached.Square")
    assert (code, out) == (
        0,
        f"removed 4 entries of cached.Square (3 results, 1 whole batch) from {store}\n",
    )
    run(capsys)
    assert sorted(calls()) == sorted(["square 1", "square 2", "square 3", "announce"])


def test_a_node_name_that_is_ambiguous_or_unknown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, store: Path
) -> None:
    (tmp_path / "other.py").write_text(OTHER)
    run(capsys, "--cache", "testfile:results")
    code, _, err = call(capsys, "run", "other:Square", "--cache", "testfile:results")
    assert code == 0, err
    for name, message in [
        (
            "Square",
            f"--node 'Square' matches 2 node classes in {store}: cached.Square, other.Square; "
            "give the whole name",
        ),
        (
            "Sqare",
            f"--node 'Sqare': no such node class in {store}; its node classes: cached.Square, "
            "cached.Total, other.Square; did you mean 'Square'?",
        ),
        ("quare", f"--node 'quare': no such node class in {store}; its node classes: "),
    ]:
        code, out, err = call(capsys, "cache", "clear", "testfile:results", "--node", name)
        assert_bad_input(code, out, err)
        assert err.startswith(f"pocketcore: error: {message}"), err
    assert filestore.entries(store).total() == 6  # nothing was removed


@given(labels=node_label_sets, data=st.data())
def test_a_node_name_means_the_one_class_it_names(labels: list[str], data: st.DataObject) -> None:
    entries = dict.fromkeys(labels, 1)
    label = data.draw(st.sampled_from(labels))
    assert find_node(label, entries) == label  # a whole label means itself, always
    module, _, qualname = label.partition(".")
    assert find_node(f"{module}:{qualname}", entries) == label
    tail = label.split(".", data.draw(st.integers(1, label.count(".")))).pop()
    sharing = [other for other in labels if other == tail or other.endswith("." + tail)]
    if tail in entries:
        assert find_node(tail, entries) == tail
    elif sharing == [label]:
        assert find_node(tail, entries) == label
    else:
        with pytest.raises(BadInput, match=r"matches \d node classes"):
            find_node(tail, entries)
    with pytest.raises(BadInput, match="no such node class"):
        find_node("x" + label, entries)
