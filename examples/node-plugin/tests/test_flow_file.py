"""examples/flows/text_pipeline.toml: the plugin's nodes by name, in a flow file.

Loaded with the kernel's loader in this process, and run through the real
``pocketcore`` console script of this environment in a subprocess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from pocketcore import LoadedFlow, load_flow
from pocketcore_example_nodes.nodes import Uppercase, WordCount

PIPELINE = Path(__file__).resolve().parents[2] / "flows" / "text_pipeline.toml"
TEXT = "The cat sat.\nThe cat ran.\nA dog ran.\nThe end."
EXPECTED = {
    "text": TEXT,
    "shouted": TEXT.upper(),
    "word_counts": {"total": 11, "distinct": 7, "top": {"the": 3, "cat": 2, "ran": 2}},
}


def pipeline(delay: float | None = None) -> LoadedFlow:
    loaded = load_flow(PIPELINE)
    if delay is not None:  # the file's delay is for people; tests want it short
        loaded.names["shout"].params["delay"] = delay
    return loaded


def test_the_file_names_both_nodes_by_their_registered_names() -> None:
    loaded = pipeline()
    shout, count = loaded.names["shout"], loaded.names["count"]
    assert isinstance(shout, Uppercase)
    assert isinstance(count, WordCount)
    assert loaded.flow.start_node is shout  # type: ignore[attr-defined]
    assert shout.successors == {"default": count}
    assert shout.params == {"target": "shouted", "delay": 0.2}
    assert shout.max_concurrency == 4
    assert count.params == {"source": "shouted", "top": 3}
    assert (loaded.executor, loaded.max_concurrency) == (None, None)


@pytest.mark.parametrize("executor", ["sequential", "asyncio", "trio"])
def test_the_pipeline_gives_the_same_store_on_every_executor(executor: str) -> None:
    shared: dict[str, Any] = {"text": TEXT}
    pocketcore.run(pipeline(delay=0.001).flow, shared, executor=executor)
    assert shared == EXPECTED


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_the_node_limit_from_the_file_holds(executor: str) -> None:
    # 8 lines, at most 4 at once: two rounds of the delay, at least, but far
    # less than 8 rounds one at a time.
    delay = 0.06
    shared: dict[str, Any] = {"text": "x\n" * 8}
    start = time.perf_counter()
    pocketcore.run(pipeline(delay).flow, dict(shared), executor="sequential")
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    pocketcore.run(pipeline(delay).flow, shared, executor=executor)
    parallel = time.perf_counter() - start
    assert parallel >= 2 * delay
    assert sequential >= 8 * delay
    assert parallel < sequential / 2


def _pocketcore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script installed next to this interpreter, as a user would run it."""
    script = shutil.which("pocketcore", path=str(Path(sys.executable).parent))
    assert script is not None, "the pocketcore console script is not installed here"
    return subprocess.run([script, *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_pocketcore_run_runs_the_file(tmp_path: Path) -> None:
    done = _pocketcore(
        "run", str(PIPELINE), "--shared", json.dumps({"text": TEXT}), "--output", "json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"shared": EXPECTED, "action": None}


def test_pocketcore_nodes_lists_both_with_their_distribution(tmp_path: Path) -> None:
    done = _pocketcore("nodes", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {entry["name"]: entry for entry in json.loads(done.stdout)["nodes"]}
    assert listed["word_count"]["class"] == "pocketcore_example_nodes.nodes:WordCount"
    assert listed["word_count"]["supplier"] == (
        "entry point 'word_count' of pocketcore-example-nodes 0.1.0"
    )
    assert listed["uppercase"]["class"] == "pocketcore_example_nodes.nodes:Uppercase"
    assert listed["uppercase"]["supplier"] == "plugin 'example-nodes'"
    for name in ("word_count", "uppercase"):
        assert listed[name]["distribution"] == "pocketcore-example-nodes"
        assert listed[name]["version"] == "0.1.0"


def test_a_missing_text_fails_with_the_nodes_message(tmp_path: Path) -> None:
    done = _pocketcore("run", str(PIPELINE), cwd=tmp_path)
    assert done.returncode == 1
    assert "Uppercase: the shared store has no 'text' to read" in done.stderr
