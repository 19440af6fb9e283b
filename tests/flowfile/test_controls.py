"""Per-item controls in flow files: max_per_second, limiter and on_error, checked and applied."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import pocketcore
from pocketcore import Registry

from .support import EXECUTORS, load, problems

LIMITERS = """
[limiters.llm]
max_concurrency = 2
[limiters.db]
max_per_second = 50
"""


@pytest.fixture
def declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory whose pocketcore.toml declares the limiters ``llm`` and ``db``."""
    (tmp_path / "pocketcore.toml").write_text(LIMITERS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Picky(pocketcore.AsyncParallelBatchNode):
    """Halves even numbers; an odd one fails. Notes when each item starts, and how many overlap."""

    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        shared["starts"], shared["live"], shared["most"] = [], 0, 0
        self.shared = shared
        return list(shared["items"])

    async def exec_async(self, item: int) -> int:
        shared = self.shared
        shared["starts"].append(time.monotonic())
        shared["live"] += 1
        shared["most"] = max(shared["most"], shared["live"])
        await anyio.sleep(0.02)
        shared["live"] -= 1
        if item % 2:
            raise ValueError(f"odd: {item}")
        return item // 2

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["out"] = exec_res


PICKY = "tests.flowfile.test_controls:Picky"


def one_node(settings: str, *, config: str = "", flow: str = "") -> str:
    return (
        f"[config]\n{config}\n[flow]\nstart = 'a'\ntype = 'AsyncFlow'\n{flow}\n"
        f"[flow.nodes.a]\nuse = '{PICKY}'\n{settings}\n"
    )


# --- bad values, each at its place -------------------------------------------------------

BAD = [
    (
        "max_per_second = 0",
        "max_per_second: expected a positive number of items per second, got 0 (int)",
    ),
    (
        "max_per_second = -2.5",
        "max_per_second: expected a positive number of items per second, got -2.5 (float)",
    ),
    (
        "max_per_second = inf",
        "max_per_second: expected a positive number of items per second, got inf (float)",
    ),
    (
        "max_per_second = nan",
        "max_per_second: expected a positive number of items per second, got nan (float)",
    ),
    (
        "max_per_second = '10'",
        "max_per_second: expected a positive number of items per second, got '10' (str)",
    ),
    (
        "max_per_second = true",
        "max_per_second: expected a positive number of items per second, got True (bool)",
    ),
    ("on_error = 'ignore'", "on_error: expected 'raise' or 'collect', got 'ignore' (str)"),
    ("on_error = 'Collect'", "on_error: expected 'raise' or 'collect', got 'Collect' (str)"),
    ("on_error = false", "on_error: expected 'raise' or 'collect', got False (bool)"),
    ("limiter = 3", "limiter: expected the name of a declared limiter (str), got 3 (int)"),
    ("limiter = ''", "limiter: expected the name of a declared limiter (str), got '' (str)"),
    (
        "limiter = { max_concurrency = 2 }",
        "limiter: expected the name of a declared limiter (str), got {'max_concurrency': 2} (dict)",
    ),
    (
        "limiter = 'lmm'",
        "limiter: unknown limiter 'lmm' ([limiters] in pocketcore.toml "
        "declares: db, llm); did you mean 'llm'?",
    ),
]


@pytest.mark.parametrize(("line", "message"), BAD, ids=[line for line, _ in BAD])
@pytest.mark.parametrize("where", ["node", "flow", "config"])
def test_a_bad_value_is_reported_at_its_place(
    registry: Registry, declared: Path, where: str, line: str, message: str
) -> None:
    text = {
        "node": one_node(line),
        "flow": one_node("", flow=line),
        "config": one_node("", config=line),
    }[where]
    place = {"node": "[flow.nodes.a]", "flow": "[flow]", "config": "[config]"}[where]
    assert problems(text, registry) == [f"{place} {message}"]


def test_every_bad_control_is_reported_at_once(registry: Registry, declared: Path) -> None:
    text = one_node(
        "max_per_second = 0\nlimiter = 'nope'\non_error = 'skip'",
        config="on_error = 'collect'\nlimiter = 'db'\nmax_per_second = -1",
        flow="limiter = 7",
    )
    assert [p.partition(":")[0] for p in problems(text, registry)] == [
        "[config] max_per_second",
        "[flow] limiter",
        "[flow.nodes.a] max_per_second",
        "[flow.nodes.a] limiter",
        "[flow.nodes.a] on_error",
    ]


def test_limiter_names_come_from_the_working_directory(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = one_node("limiter = 'llm'")
    (problem,) = problems(text, registry)
    assert problem.startswith(
        "[flow.nodes.a] limiter: unknown limiter 'llm' (no limiters are declared; declare one "
        "under [limiters.NAME] in pocketcore.toml or [tool.pocketcore.limiters.NAME] in "
        "pyproject.toml; no configuration file found: searched pocketcore.toml and "
        f"pyproject.toml in {tmp_path}, {tmp_path.parent}, "
    )
    (tmp_path / "pyproject.toml").write_text("[tool.pocketcore.limiters.llm]\nmax_per_second = 5\n")
    assert load(text, registry).names["a"].limiter == "llm"
    # A configuration file the run could not use is named in the problem.
    (tmp_path / "pyproject.toml").write_text("[tool.pocketcore.limiters.llm]\nmax_per_second = 0\n")
    (found,) = problems(text, registry)
    assert found.startswith("[flow.nodes.a] limiter: cannot check limiter 'llm': ")
    assert "[limiters.llm] in pyproject.toml" in found


# --- good values are set, and applied ----------------------------------------------------


def test_good_values_are_set_as_attributes_and_config(registry: Registry, declared: Path) -> None:
    loaded = load(
        one_node(
            "max_per_second = 20\nlimiter = 'llm'\non_error = 'collect'",
            config="max_per_second = 2.5\nlimiter = 'db'\non_error = 'raise'\nexecutor = 'trio'",
            flow="on_error = 'collect'\nmax_per_second = 7",
        ),
        registry,
    )
    node = loaded.names["a"]
    assert (node.max_per_second, node.limiter, node.on_error) == (20, "llm", "collect")
    assert (loaded.flow.max_per_second, loaded.flow.on_error) == (7, "collect")
    assert loaded.flow.limiter is None
    assert (loaded.max_per_second, loaded.limiter, loaded.on_error) == (2.5, "db", "raise")
    assert loaded.config == {
        "executor": "trio",
        "max_per_second": 2.5,
        "limiter": "db",
        "on_error": "raise",
    }
    assert load(one_node(""), registry).config == {}


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("where", ["node", "flow", "config"])
def test_on_error_collect_from_a_file(
    registry: Registry, declared: Path, executor: str, where: str
) -> None:
    line = "on_error = 'collect'"
    text = {
        "node": one_node(line),
        "flow": one_node("", flow=line),
        "config": one_node("", config=line),
    }[where]
    loaded = load(text, registry)
    shared: dict[str, Any] = {"items": [4, 1, 6, 3]}
    pocketcore.run(loaded.flow, shared, **{**loaded.config, "executor": executor})
    out = shared["out"]
    assert [out[0], out[2]] == [2, 3]
    assert [(type(f), f.item, f.index, str(f.exception)) for f in (out[1], out[3])] == [
        (pocketcore.Failed, 1, 1, "odd: 1"),
        (pocketcore.Failed, 3, 3, "odd: 3"),
    ]


def test_without_collect_the_first_failure_is_raised(registry: Registry, declared: Path) -> None:
    loaded = load(one_node("on_error = 'raise'", config="on_error = 'collect'"), registry)
    with pytest.raises(ValueError, match="odd"):
        pocketcore.run(loaded.flow, {"items": [1, 2]}, **loaded.config)


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_max_per_second_and_a_declared_limiter_from_a_file(
    registry: Registry, declared: Path, executor: str
) -> None:
    # Paced at 25 a second, six items start about 40 ms apart: 200 ms from first to last.
    loaded = load(one_node("max_per_second = 25"), registry)
    shared: dict[str, Any] = {"items": [0, 2, 4, 6, 8, 10]}
    pocketcore.run(loaded.flow, shared, executor=executor)
    starts = shared["starts"]
    assert starts[-1] - starts[0] >= 0.19
    assert shared["out"] == [0, 1, 2, 3, 4, 5]
    # The declared limiter llm lets two items in at once; the config names it for the run.
    loaded = load(one_node("", config="limiter = 'llm'"), registry)
    shared = {"items": list(range(0, 20, 2))}
    pocketcore.run(loaded.flow, shared, executor=executor, **loaded.config)
    assert shared["most"] == 2
