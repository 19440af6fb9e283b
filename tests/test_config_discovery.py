"""The configuration file is found from the working directory upward, as ruff and mypy find theirs.

The nearest folder holding ``pocketcore.toml``, or a ``pyproject.toml`` with
a ``[tool.pocketcore]`` table, wins; a ``pyproject.toml`` without the table
is passed over; the search stops at the top of the repository (``.git`` or
``.hg``), and an error about a limiter nobody declared names the folders
searched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pocketcore
from pocketcore import ConfigError
from pocketcore._runtime import config
from pocketcore._runtime.config import RunSettings, find_config

# What a folder may hold: its configuration files, and whether it is a repository's top.
FILES = ("pocketcore.toml", "pyproject.toml", "pyproject.toml without the table")
folder_contents = st.fixed_dictionaries(
    {
        "files": st.sets(st.sampled_from(FILES)),
        "marker": st.sampled_from([None, ".git", ".hg", ".git file"]),
    }
)


def lay_down(folder: Path, level: int, files: set[str], marker: str | None) -> None:
    """Files whose ``max_concurrency`` tells which folder, and which file, was read."""
    if "pocketcore.toml" in files:
        (folder / "pocketcore.toml").write_text(f"max_concurrency = {100 + level}\n")
    if "pyproject.toml" in files:
        (folder / "pyproject.toml").write_text(
            f"[tool.pocketcore]\nmax_concurrency = {200 + level}\n"
        )
    elif "pyproject.toml without the table" in files:
        (folder / "pyproject.toml").write_text("[tool.black]\nline-length = 100\n")
    if marker == ".git file":  # a worktree's .git is a file
        (folder / ".git").write_text("gitdir: elsewhere\n")
    elif marker is not None:
        (folder / marker).mkdir()


def expected(levels: list[dict[str, object]]) -> tuple[int | None, int]:
    """The value the nearest file sets (None: none found), and the last level searched."""
    for level in reversed(range(len(levels))):
        files = levels[level]["files"]
        assert isinstance(files, set)
        if "pocketcore.toml" in files:
            return 100 + level, level
        if "pyproject.toml" in files:
            return 200 + level, level
        if levels[level]["marker"] is not None:
            return None, level
    raise AssertionError("level 0 is always a repository's top")


@settings(max_examples=150, deadline=None)
@given(levels=st.lists(folder_contents, min_size=1, max_size=6))
def test_the_nearest_file_wins_and_the_search_stops_at_the_top_of_the_repository(
    levels: list[dict[str, object]],
) -> None:
    # Level 0 is a repository's top, so nothing above the temporary folder is read.
    levels[0] = {**levels[0], "marker": levels[0]["marker"] or ".git"}
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp, *(f"d{i}" for i in range(level + 1))) for level in range(len(levels))]
        for level, (folder, content) in enumerate(zip(folders, levels, strict=True)):
            folder.mkdir()
            lay_down(folder, level, content["files"], content["marker"])  # type: ignore[arg-type]
        value, last = expected(levels)
        start = folders[-1]
        setting = RunSettings(cwd=str(start)).get("max_concurrency")
        assert (setting and setting.value) == value
        search = find_config(str(start))
        assert search.folders == tuple(str(f) for f in reversed(folders[last:]))
        if setting is not None:
            # The source names the file by its path from the working directory.
            name = "pocketcore.toml" if value is not None and value < 200 else "pyproject.toml"
            path = os.path.join(*[".."] * (len(levels) - 1 - last), name)
            assert setting.source.startswith(f"key 'max_concurrency' in {path}")


def test_a_missing_limiter_names_the_folders_searched(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    inner = tmp_path / "examples" / "flows"
    inner.mkdir(parents=True)
    (tmp_path / "examples" / "pyproject.toml").write_text("[tool.black]\n")
    os.chdir(inner)

    class Limited(pocketcore.AsyncParallelBatchNode):
        limiter = "llm"

        async def prep_async(self, shared: dict[str, object]) -> list[int]:
            return [1, 2]

    with pytest.raises(ConfigError) as caught:
        pocketcore.run(pocketcore.AsyncFlow(start=Limited()), {})
    assert str(caught.value).endswith(
        "no configuration file found: searched pocketcore.toml and pyproject.toml in "
        f"{inner}, {tmp_path / 'examples'}, {tmp_path} "
        "(stopped at the top of the repository, which holds .git)"
    )
    # Declared two folders up, it is found, and an unknown name says which file was read.
    (tmp_path / "pocketcore.toml").write_text("[limiters.other]\nmax_per_second = 5\n")
    with pytest.raises(ConfigError) as caught:
        pocketcore.run(pocketcore.AsyncFlow(start=Limited()), {})
    message = str(caught.value)
    assert "declared limiters: other" in message
    found = os.path.join("..", "..", "pocketcore.toml")
    assert message.endswith(f"the configuration file is {found}")


PROGRAM = """\
import pocketcore

class Limited(pocketcore.AsyncParallelBatchNode):
    limiter = "llm"

    async def prep_async(self, shared):
        return [1, 2, 3]

    async def exec_async(self, item):
        return item * 2

    async def post_async(self, shared, prep_res, exec_res):
        shared["out"] = exec_res

shared = {}
pocketcore.run(pocketcore.AsyncFlow(start=Limited()), shared)
print(shared["out"])
"""


def test_a_script_run_from_a_subfolder_of_the_project_finds_its_configuration(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "scripts" / "nested").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [project]
            name = "demo"

            [tool.pocketcore.limiters.llm]
            max_per_second = 50
            """)
    )
    script = project / "scripts" / "limited.py"
    script.write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETCORE_")}
    for cwd in (project, project / "scripts", project / "scripts" / "nested"):
        done = subprocess.run(
            [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "[2, 4, 6]\n", "")
    # From outside the project, the search goes on from the script's own folder.
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "[2, 4, 6]\n", "")


# A repository: its top, two folders below it, and one below each of those.
TREE = ("", "a", "a/b", "c", "c/d")


@settings(max_examples=150, deadline=None)
@given(
    holding=st.sets(st.sampled_from(TREE)),
    cwd=st.sampled_from(TREE),
    program=st.one_of(st.none(), st.sampled_from(TREE)),
)
def test_the_program_folder_is_searched_when_the_working_directory_finds_nothing(
    holding: set[str], cwd: str, program: str | None
) -> None:
    def chain(folder: str) -> list[str]:
        """``folder`` and those above it, up to the repository's top."""
        parts = folder.split("/") if folder else []
        return ["/".join(parts[:n]) for n in range(len(parts), -1, -1)]

    first = next((f for f in chain(cwd) if f in holding), None)
    then = None if program is None else next((f for f in chain(program) if f in holding), None)
    want = first if first is not None else then
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        (top / ".git").mkdir()
        for folder in TREE:
            (top / folder).mkdir(parents=True, exist_ok=True)
        for level, folder in enumerate(TREE):
            if folder in holding:
                (top / folder / "pocketcore.toml").write_text(f"max_concurrency = {level + 1}\n")
        old = os.getcwd()
        os.chdir(top / cwd)
        config.set_program(None if program is None else str(top / program / "flow.py"))
        try:
            setting = RunSettings().get("max_concurrency")
            search = find_config()
        finally:
            config.set_program(None)
            os.chdir(old)
    got = None if setting is None else TREE[setting.value - 1]
    assert got == want
    # Every folder is searched once at most, nearest first.
    assert len(set(search.folders)) == len(search.folders)
    if want is None:
        assert search.describe().startswith("no configuration file found")


@pytest.mark.parametrize("how", ["python", "pocketcore run"])
def test_a_program_run_from_elsewhere_finds_the_file_beside_it(tmp_path: Path, how: str) -> None:
    (tmp_path / ".git").mkdir()
    program = tmp_path / "examples" / "limited"
    program.mkdir(parents=True)
    (program / "pocketcore.toml").write_text("[limiters.llm]\nmax_concurrency = 2\n")
    (program / "flow.py").write_text(
        textwrap.dedent(
            """
            import pocketcore

            class Limited(pocketcore.AsyncParallelBatchNode):
                limiter = "llm"

                async def prep_async(self, shared):
                    return [1, 2, 3]

                async def exec_async(self, item):
                    return item * 2

                async def post_async(self, shared, prep_res, exec_res):
                    shared["out"] = exec_res
                    print("out", exec_res)

            flow = pocketcore.AsyncFlow(start=Limited())

            if __name__ == "__main__":
                pocketcore.run(flow, {})
            """
        )
    )
    if how == "python":
        command = [sys.executable, "examples/limited/flow.py"]
    else:
        command = [sys.executable, "-m", "pocketcore", "run", "examples/limited/flow.py:flow"]
        command += ["--output", "none"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "out [2, 4, 6]" in done.stdout
    # Without the file beside the program, the error names both searches.
    (program / "pocketcore.toml").unlink()
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "unknown limiter 'llm'" in done.stderr
    assert done.stderr.rstrip().endswith(
        f"searched pocketcore.toml and pyproject.toml in {tmp_path} (stopped at the top of the "
        f"repository, which holds .git), then from the program's folder in {program}, "
        f"{program.parent} (reached a folder searched already)"
    )
