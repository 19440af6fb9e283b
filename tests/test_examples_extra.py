"""The image-filter, parallel-summaries and fan-out examples: right results, on every executor.

The pixel checks decode the images and apply the filters with code of their
own, written for clarity rather than speed, so a mistake in the example's
filters or PNM codec cannot cancel itself out.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import pocketcore
from examples.fan_out import flow as fan_out
from examples.image_filter import flow as image_filter
from examples.image_filter import make_samples
from examples.parallel_summaries import flow as summaries
from examples.parallel_summaries import target

EXECUTORS = ["sequential", "asyncio", "trio"]
FILTER_NAMES = ["grayscale", "invert", "blur"]
SAMPLES = sorted(p for p in image_filter.IMAGES.iterdir() if p.suffix in (".ppm", ".pgm"))

Pixels = list[list[tuple[int, int, int]]]  # rows of (r, g, b)


# --- an independent reading of the images and the filters ---------------------


def read_pnm(path: Path) -> Pixels:
    """Decode a binary P5/P6 file line by line: a different route from the example's scanner."""
    data = path.read_bytes()
    tokens: list[bytes] = []
    rest = data
    while len(tokens) < 4:
        line, rest = rest.split(b"\n", 1)
        if not line.startswith(b"#"):
            tokens += line.split()
    magic, width, height, maxval = tokens
    assert maxval == b"255"
    w, h = int(width), int(height)
    if magic == b"P6":
        assert len(rest) == w * h * 3
        flat = [tuple(rest[i : i + 3]) for i in range(0, w * h * 3, 3)]
    else:
        assert magic == b"P5"
        assert len(rest) == w * h
        flat = [(v, v, v) for v in rest]
    return [flat[y * w : (y + 1) * w] for y in range(h)]  # type: ignore[misc]


def half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def expected_grayscale(img: Pixels) -> Pixels:
    def luma(r: int, g: int, b: int) -> int:
        return half_up(Fraction(299, 1000) * r + Fraction(587, 1000) * g + Fraction(114, 1000) * b)

    return [[(luma(*p),) * 3 for p in row] for row in img]


def expected_invert(img: Pixels) -> Pixels:
    return [[(255 - r, 255 - g, 255 - b) for r, g, b in row] for row in img]


def expected_blur(img: Pixels) -> Pixels:
    h, w = len(img), len(img[0])
    out: Pixels = []
    for y in range(h):
        row = []
        for x in range(w):
            near = [
                img[y + dy][x + dx]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
                if 0 <= y + dy < h and 0 <= x + dx < w
            ]
            mean = [half_up(Fraction(sum(p[c] for p in near), len(near))) for c in range(3)]
            row.append((mean[0], mean[1], mean[2]))
        out.append(row)
    return out


EXPECTED: dict[str, Callable[[Pixels], Pixels]] = {
    "grayscale": expected_grayscale,
    "invert": expected_invert,
    "blur": expected_blur,
}


# --- running the flow -------------------------------------------------------------


def filter_images(
    executor: str,
    out: Path,
    *,
    parallel: bool = True,
    delay: float = 0.0,
    max_concurrency: int | None = None,
    **shared: Any,
) -> tuple[float, dict[str, Any]]:
    """Run the image-filter flow into ``out``; return the wall time and the shared store."""
    shared = {"output_dir": str(out), "delay": delay, **shared}
    flow = image_filter.build_flow(parallel=parallel)
    if max_concurrency is None:
        return image_filter.timed(flow, executor, shared)
    # The flow's limit applies to the batch flow inside it, as the flow's own would.
    limited = pocketcore.AsyncFlow(start=flow, max_concurrency=max_concurrency)
    return image_filter.timed(limited, executor, shared)


def written(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_the_samples_are_colour_and_grey_images() -> None:
    assert {p.suffix for p in SAMPLES} == {".ppm", ".pgm"}
    assert len(SAMPLES) >= 3


def test_every_image_x_filter_pair_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _, shared = filter_images("asyncio", out)
    names = {f"{p.stem}-{f}.ppm" for p in SAMPLES for f in FILTER_NAMES}
    assert set(written(out)) == names
    assert shared["outputs"] == sorted(str(out / n) for n in names)
    # The defaults are written back, and the scratch space is gone.
    assert shared["input_dir"] == str(image_filter.IMAGES)
    assert shared["filters"] == FILTER_NAMES
    assert "work" not in shared


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_pixels_match_an_independent_computation(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    filter_images("asyncio", out, filters=[name])
    assert len(written(out)) == len(SAMPLES)
    for source in SAMPLES:
        result = read_pnm(out / f"{source.stem}-{name}.ppm")
        assert result == EXPECTED[name](read_pnm(source)), f"{source.name} x {name}"


def test_a_grey_input_gives_a_grey_blur(tmp_path: Path) -> None:
    # The PGM sample is read as RGB with equal channels, so every filter
    # output of it stays grey.
    out = tmp_path / "out"
    filter_images("asyncio", out, filters=["blur"])
    grey = next(p for p in SAMPLES if p.suffix == ".pgm")
    pixels = read_pnm(out / f"{grey.stem}-blur.ppm")
    assert all(r == g == b for row in pixels for r, g, b in row)


def test_same_outputs_on_every_executor_and_one_by_one(tmp_path: Path) -> None:
    runs = {}
    for executor in EXECUTORS:
        filter_images(executor, tmp_path / executor)
        runs[executor] = written(tmp_path / executor)
    filter_images("asyncio", tmp_path / "one-by-one", parallel=False)
    runs["one-by-one"] = written(tmp_path / "one-by-one")
    first = runs["sequential"]
    assert len(first) == len(SAMPLES) * len(FILTER_NAMES)
    for executor, files in runs.items():
        assert files == first, executor


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_parallel_executors_beat_sequential_by_a_wide_margin(tmp_path: Path, executor: str) -> None:
    # 12 passes x 80 ms: ~1 s one after another, ~0.1 s (plus the filters'
    # own CPU time) in parallel. Measured side by side in this process, not
    # against a clock budget; half the sequential time leaves a wide margin.
    delay = 0.08
    passes = len(SAMPLES) * len(FILTER_NAMES)
    sequential, _ = filter_images("sequential", tmp_path / "seq", delay=delay)
    parallel, _ = filter_images(executor, tmp_path / "par", delay=delay)
    assert sequential >= passes * delay  # the sleeps alone guarantee this
    assert parallel < sequential / 2


def test_the_batch_flow_runs_one_pass_at_a_time_whatever_the_executor(tmp_path: Path) -> None:
    delay = 0.03
    passes = len(SAMPLES) * len(FILTER_NAMES)
    seconds, _ = filter_images("asyncio", tmp_path / "out", parallel=False, delay=delay)
    assert seconds >= passes * delay


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_a_limit_on_the_flow_bounds_the_passes_in_flight(tmp_path: Path, executor: str) -> None:
    # With at most 3 passes at once, 12 passes need at least 4 rounds of the delay.
    delay = 0.05
    passes = len(SAMPLES) * len(FILTER_NAMES)
    seconds, _ = filter_images(executor, tmp_path / "out", delay=delay, max_concurrency=3)
    assert seconds >= math.ceil(passes / 3) * delay
    assert len(written(tmp_path / "out")) == passes


def test_an_unknown_filter_fails_before_any_pass(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"unknown filter\(s\) \['sepia'\]; known filters"):
        filter_images("asyncio", out, filters=["invert", "sepia"])
    assert not out.exists()


def test_an_empty_input_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.ppm/\.pgm images in"):
        filter_images("asyncio", tmp_path / "out", input_dir=str(tmp_path / "empty"))


def test_a_broken_image_fails_the_run_with_its_own_error(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "good.ppm").write_bytes(b"P6\n1 1\n255\n\x01\x02\x03")
    (images / "cut.ppm").write_bytes(b"P6\n2 2\n255\n\x01\x02\x03")
    with pytest.raises(ValueError, match="expected 12 bytes of pixels, found 3"):
        filter_images("asyncio", tmp_path / "out", input_dir=str(images))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"P3\n1 1\n255\n0 0 0\n", "not an 8-bit binary PPM/PGM image"),
        (b"P6\n1 1\n65535\n", "not an 8-bit binary PPM/PGM image"),
        (b"P6\n1", "truncated PNM header"),
    ],
)
def test_the_decoder_rejects_what_it_cannot_read(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        image_filter.decode_pnm(data)


def test_encode_and_decode_round_trip() -> None:
    img = image_filter.Image(2, 1, bytes([1, 2, 3, 250, 251, 252]))
    assert image_filter.decode_pnm(image_filter.encode_ppm(img)) == img


def test_the_sample_script_redraws_the_shipped_images(tmp_path: Path) -> None:
    drawn = make_samples.main(tmp_path)
    assert sorted(p.name for p in drawn) == [p.name for p in SAMPLES]
    for path in drawn:
        assert path.read_bytes() == (image_filter.IMAGES / path.name).read_bytes(), path.name


def test_the_module_level_flow_runs_as_a_target(tmp_path: Path) -> None:
    # What `pocketcore run examples/image_filter/flow.py:flow` does: the
    # module's object, the default executor, a shared store from the caller.
    assert isinstance(image_filter.flow, pocketcore.AsyncParallelBatchFlow)
    shared: dict[str, Any] = {"output_dir": str(tmp_path), "delay": 0, "filters": ["invert"]}
    pocketcore.run(image_filter.flow, shared)
    assert len(shared["outputs"]) == len(SAMPLES)


def test_the_demo_prints_a_row_per_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(image_filter, "DELAY", 0.01)
    monkeypatch.setattr(image_filter, "OUT", tmp_path / "out")
    assert image_filter.main([]) == 0
    out = capsys.readouterr().out
    assert "AsyncBatchFlow " in out
    for name, entry in pocketcore.get_registry().executors.items():
        if not getattr(entry.executor, "remote", False):  # remote ones only on request
            assert f"AsyncParallelBatchFlow   {name}" in out
    assert f"{len(SAMPLES) * 3} images written to {tmp_path / 'out'}" in out


def test_the_demo_rejects_an_unknown_executor(capsys: pytest.CaptureFixture[str]) -> None:
    assert image_filter.main(["nope"]) == 2
    assert "unknown executor(s): nope" in capsys.readouterr().out


# --- parallel_summaries/target.py ---------------------------------------------------


@pytest.fixture
def fast_llm(monkeypatch: pytest.MonkeyPatch) -> float:
    delay = 0.05
    monkeypatch.setattr(summaries, "DELAY", delay)
    return delay


def expected_summaries() -> dict[str, str]:
    return {
        p.stem: p.read_text().split(". ")[0].strip().rstrip(".") + "."
        for p in sorted(summaries.TEXTS.glob("*.txt"))
    }


def summarise(flow: pocketcore.AsyncFlow, executor: str | None = None) -> tuple[float, Any]:
    """Run a target as `pocketcore run` would: an empty store, the executor if one is named."""
    shared: dict[str, Any] = {}
    start = time.perf_counter()
    pocketcore.run(flow, shared, executor=executor)
    return time.perf_counter() - start, shared["summaries"]


def second_step(flow: pocketcore.AsyncFlow) -> pocketcore.BaseNode:
    """What the flow runs after loading the texts."""
    assert isinstance(flow.start_node, summaries.LoadTexts)
    return flow.start_node.successors["default"]


def test_the_targets_are_the_two_variants() -> None:
    assert target.flow is target.parallel
    assert isinstance(target.parallel, pocketcore.AsyncFlow)
    assert isinstance(target.one_by_one, pocketcore.AsyncFlow)
    assert type(second_step(target.parallel)) is summaries.SummarizeAll
    assert type(second_step(target.one_by_one)) is summaries.SummarizeOneByOne
    assert isinstance(second_step(target.parallel), pocketcore.AsyncParallelBatchNode)
    assert not isinstance(second_step(target.one_by_one), pocketcore.AsyncParallelBatchNode)


@pytest.mark.parametrize("executor", [None, *EXECUTORS])
def test_both_targets_summarise_every_file(fast_llm: float, executor: str | None) -> None:
    expected = expected_summaries()
    assert summarise(target.parallel, executor)[1] == expected
    assert summarise(target.one_by_one, executor)[1] == expected


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_the_parallel_target_beats_one_by_one(fast_llm: float, executor: str) -> None:
    one_by_one, _ = summarise(target.one_by_one, executor)
    parallel, _ = summarise(target.parallel, executor)
    assert one_by_one >= len(expected_summaries()) * fast_llm
    assert parallel < one_by_one / 2


def test_the_target_module_also_loads_from_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Outside its package (a runner that loads files by path), the module
    # cannot import flow.py relatively and loads it by path instead: a fresh
    # copy, which reads its delay from the environment.
    monkeypatch.setenv("SUMMARY_DELAY", "0.01")
    path = Path(target.__file__)
    spec = importlib.util.spec_from_file_location("summaries_target_by_path", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.flow is module.parallel
    shared: dict[str, Any] = {}
    pocketcore.run(module.one_by_one, shared, executor="asyncio")
    assert shared["summaries"] == expected_summaries()


# --- as `pocketcore run` targets, in a subprocess ------------------------------------

REPO = Path(__file__).resolve().parents[1]


def pocketcore_run(*args: str, **env: str) -> Any:
    """``python -m pocketcore run ARGS --output json`` from the repository root; its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "pocketcore", "run", *args, "--output", "json"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pocketcore_run_the_image_filter_file(tmp_path: Path) -> None:
    shared = {"output_dir": str(tmp_path), "filters": ["invert"], "delay": 0}
    result = pocketcore_run(
        "examples/image_filter/flow.py:flow", "--shared", json.dumps(shared), "--executor", "trio"
    )
    names = [f"{p.stem}-invert.ppm" for p in SAMPLES]
    assert result["shared"]["outputs"] == sorted(str(tmp_path / n) for n in names)
    for source in SAMPLES:
        assert read_pnm(tmp_path / f"{source.stem}-invert.ppm") == expected_invert(read_pnm(source))


def test_pocketcore_run_the_image_filter_factory(tmp_path: Path) -> None:
    shared = {"output_dir": str(tmp_path), "filters": ["grayscale"]}
    result = pocketcore_run(
        "examples.image_filter.flow:build_flow", "--shared", json.dumps(shared), FILTER_DELAY="0"
    )
    assert result["shared"]["delay"] == 0
    assert len(result["shared"]["outputs"]) == len(SAMPLES)


@pytest.mark.parametrize(
    "spec",
    [
        "examples/parallel_summaries/target.py:flow",
        "examples/parallel_summaries/target.py:one_by_one",
        "examples.parallel_summaries.target:parallel",
    ],
)
def test_pocketcore_run_the_summaries_targets(spec: str) -> None:
    result = pocketcore_run(spec, SUMMARY_DELAY="0.01")
    assert result["shared"]["summaries"] == expected_summaries()


@pytest.mark.parametrize("executor", ["asyncio", "trio"])
def test_the_fan_out_example_collects_its_failures(executor: str) -> None:
    shared: dict[str, Any] = {"n": 600}
    pocketcore.run(fan_out.Fetch(on_error="collect"), shared, executor=executor)
    failed = [i for i in range(600) if i % 97 == 5]
    assert shared == {"n": 600, "ok": 600 - len(failed), "failed": failed}
