"""``pocketcore run --timeline FILE``: the run's timeline as one HTML file, also when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

import pocketcore
from pocketcore import Registry
from pocketcore._cli.usage_totals import USAGE_PLUGIN
from tests.timeline_page import Page, assert_self_contained

from .support import EXECUTORS, call, registrations


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_timeline_is_written(
    flows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], executor: str
) -> None:
    before = set(pocketcore.get_registry().pm.get_plugins())
    shared = '{"items": [1, 2, 3, 4, 5]}'
    code, out, err = call(
        capsys, "run", f"{flows}:double", "--shared", shared, "--executor", executor,
        "--max-concurrency", "2", "--timeline", "run.html",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert '"out": [\n    2,' in out  # the usual output, unchanged
    text = (tmp_path / "run.html").read_text(encoding="utf-8")
    assert_self_contained(text)
    bars = Page(text).items()
    assert sorted(int(b["data-index"]) for b in bars) == [0, 1, 2, 3, 4]
    assert {b["data-lane"] for b in bars} <= {"0", "1"}
    assert set(pocketcore.get_registry().pm.get_plugins()) == before  # gone after the run


def test_a_failing_run_still_writes_its_timeline(
    flows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = call(capsys, "run", f"{flows}:boom", "--timeline", "boom.html")
    assert code == 1
    assert "ValueError: boom" in err
    (run,) = Page((tmp_path / "boom.html").read_text(encoding="utf-8")).of_class("run")
    assert "failed" in run["classes"]
    assert run["title"].endswith("failed: ValueError: boom")


@pytest.mark.parametrize(
    ("where", "why"),
    [(".", "is a folder"), ("missing/run.html", "is in a folder that does not exist")],
)
def test_a_timeline_that_cannot_be_written_is_bad_input_before_the_run(
    flows: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    why: str,
) -> None:
    registered: list[object] = []
    monkeypatch.setattr(Registry, "register", lambda self, plugin, name=None: registered.append(1))
    code, out, err = call(capsys, "run", f"{flows}:greet", "--timeline", where)
    assert code == 2
    assert why in err
    assert (out, registered) == ("", [])


def test_no_timeline_no_observer(
    flows: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registered = registrations(monkeypatch)
    assert call(capsys, "run", f"{flows}:double")[0] == 0
    assert registered == [USAGE_PLUGIN]  # only the usage counter, which hears no item
