"""``pocketcore run`` totals what each node class reported using, in a line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketcore._cli.usage_totals import UsageCounter
from pocketcore._runtime.usage import amounts

from .support import EXECUTORS, call

LLM = """
import pocketcore


class Summarize(pocketcore.AsyncParallelBatchNode):
    '''Each item is the tokens its call used; an item of -1 fails once, after its call.'''

    async def prep_async(self, shared):
        return shared["tokens"]

    async def exec_async(self, tokens):
        pocketcore.report_usage(tokens=abs(tokens))
        if tokens < 0 and self.cur_retry == 0:
            raise ValueError("a refusal the provider billed")
        return tokens

    async def post_async(self, shared, prep_res, exec_res):
        shared["done"] = len(exec_res)


class Decide(pocketcore.Node):
    def exec(self, prep_res):
        pocketcore.report_usage(input_tokens=1200, output_tokens=34.5)
        return "ok"


class Quiet(pocketcore.Node):
    def exec(self, prep_res):
        return "nothing reported"


class Chapters(pocketcore.AsyncBatchFlow):
    async def prep_async(self, shared):
        return [{"chapter": n} for n in range(3)]


def build():
    summarize = Summarize(max_retries=2)
    summarize >> Decide() >> Quiet()
    return pocketcore.AsyncFlow(start=summarize)


def chapters():
    return Chapters(start=Summarize(max_retries=2))


lone = Decide()
"""


@pytest.fixture
def llm(tmp_path: Path) -> Path:
    path = tmp_path / "llm.py"
    path.write_text(LLM)
    return path


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_line_per_node_class_that_reported(
    llm: Path, capsys: pytest.CaptureFixture[str], executor: str
) -> None:
    shared = json.dumps({"tokens": [1000, 250_000, -3, 1_000_000]})
    code, out, err = call(
        capsys,
        "run",
        f"{llm}:build",
        "--shared",
        shared,
        "--executor",
        executor,
        "--output",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["shared"]["done"] == 4  # stdout is the store alone
    # The item that failed once reported twice: both calls were billed.
    assert err.splitlines() == [
        "pocketcore: Summarize: 4 items, 1,251,006 tokens",
        "pocketcore: Decide: 1 step, 1,200 input_tokens, 34.50 output_tokens",
    ]


def test_the_nodes_inside_a_batch_flow_count_not_the_flow(
    llm: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = call(
        capsys, "run", f"{llm}:chapters", "--shared", '{"tokens": [5, 6]}', "--output", "none"
    )
    assert code == 0, err
    assert err.splitlines() == ["pocketcore: Summarize: 6 items, 33 tokens"]


def test_a_plain_node_run_alone_and_quiet(llm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "run", f"{llm}:lone", "--output", "none")
    assert (code, err) == (
        0,
        "pocketcore: Decide: 1 step, 1,200 input_tokens, 34.50 output_tokens\n",
    )
    code, _, err = call(capsys, "run", f"{llm}:lone", "--output", "none", "-q")
    assert (code, err) == (0, "")


def test_a_failed_run_still_says_what_it_used(
    llm: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Summarize with one attempt: the item of -3 fails the run, after its call.
    target = llm.with_name("once.py")
    target.write_text(LLM + "\nonce = Summarize()\n")
    code, _, err = call(capsys, "run", f"{target}:once", "--shared", '{"tokens": [-3]}')
    assert code == 1
    assert err.splitlines()[0] == "pocketcore: Summarize: 1 item, 3 tokens"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(-50_000, 10**9), max_size=20))
def test_the_line_is_the_sum_of_every_report(
    llm: Path, capsys: pytest.CaptureFixture[str], tokens: list[int]
) -> None:
    shared = json.dumps({"tokens": tokens})
    code, _, err = call(capsys, "run", f"{llm}:build", "--shared", shared, "--output", "none")
    assert code == 0, err
    lines = err.splitlines()
    total = sum(abs(t) * (2 if t < 0 else 1) for t in tokens)
    if tokens:  # a report of 0 tokens is a report
        items = f"{len(tokens)} item" + ("" if len(tokens) == 1 else "s")
        assert lines[0] == f"pocketcore: Summarize: {items}, {total:,} tokens"
    else:  # nothing reported, nothing said
        assert not lines[0].startswith("pocketcore: Summarize")
    assert lines[-1].startswith("pocketcore: Decide: 1 step")


def test_the_counter_hears_no_single_item() -> None:
    # It adds nothing to an item's trip: only runs, steps and batches end in it.
    hooks = {name for name in dir(UsageCounter) if name.startswith("pocketcore_")}
    assert hooks == {
        "pocketcore_batch_start",
        "pocketcore_batch_end",
        "pocketcore_node_end",
        "pocketcore_run_end",
    }


def test_amounts() -> None:
    assert amounts({"tokens": 1234567.0, "images": 2.5}) == "1,234,567 tokens, 2.50 images"
    assert amounts({}) == ""
