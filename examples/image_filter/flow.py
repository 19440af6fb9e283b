"""Apply every filter to every image, one pass of a parallel batch flow per pair.

``ImageFilterFlow`` is an ``AsyncParallelBatchFlow``: its ``prep_async`` returns
one params dict per (image x filter) pair, and each pass runs three nodes with
those params: load the image, apply the filter, save the result into the
output folder. The filter step pretends to be a slow remote call
(``anyio.sleep``), so how the run's executor schedules the passes shows in the
wall time. The same passes one after another, with an ``AsyncBatchFlow``, are
the baseline.

Run it from the repository root::

    python -m examples.image_filter.flow                 # every installed executor
    python -m examples.image_filter.flow asyncio trio    # just these
    FILTER_DELAY=0.1 python -m examples.image_filter.flow
    pocketcore run examples/image_filter/flow.py:flow --shared '{"filters": ["invert"]}'

The shared store it reads (every key optional; the defaults are written back,
so the final store says what was done):

* ``input_dir``: the folder of ``.ppm`` / ``.pgm`` images (default: the
  ``images`` folder next to this file);
* ``output_dir``: where results go, as ``IMAGE-FILTER.ppm`` (default: the
  ``out`` folder next to this file);
* ``filters``: the filter names to apply (default: all of :data:`FILTERS`);
* ``delay``: seconds each simulated remote call waits (default
  ``FILTER_DELAY`` from the environment, else 0.25).

After the run, ``outputs`` lists the files written, sorted.

Images are binary PNM files (``P6`` colour, ``P5`` grey, 8 bits), read and
written with the standard library alone; every common image viewer opens
them. This module imports nothing from its package, so ``pocketcore run`` can
load it by path.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import anyio

import pocketcore

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
OUT = HERE / "out"
DELAY = float(os.environ.get("FILTER_DELAY", "0.25"))
SUFFIXES = (".ppm", ".pgm")


# --- images ----------------------------------------------------------------


class Image(NamedTuple):
    """An 8-bit RGB image: ``rgb`` holds ``width * height`` pixels, row by row."""

    width: int
    height: int
    rgb: bytes


def _header(data: bytes, count: int) -> tuple[list[bytes], int]:
    """The first ``count`` whitespace-separated header fields and where the pixels start."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < count:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":  # a comment runs to the end of its line
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        start = pos
        while pos < len(data) and not data[pos : pos + 1].isspace():
            pos += 1
        if start == pos:
            raise ValueError("truncated PNM header")
        fields.append(data[start:pos])
    return fields, pos + 1  # exactly one whitespace byte ends the header


def decode_pnm(data: bytes) -> Image:
    """Decode a binary PPM (``P6``) or PGM (``P5``) image with a maxval of 255.

    Raises:
        ValueError: Not such an image, or its pixel data is cut short.
    """
    (magic, width, height, maxval), start = _header(data, 4)
    if magic not in (b"P5", b"P6") or maxval != b"255":
        raise ValueError(f"not an 8-bit binary PPM/PGM image (magic {magic!r}, maxval {maxval!r})")
    w, h = int(width), int(height)
    channels = 3 if magic == b"P6" else 1
    pixels = data[start : start + w * h * channels]
    if len(pixels) != w * h * channels:
        raise ValueError(f"expected {w * h * channels} bytes of pixels, found {len(pixels)}")
    if channels == 1:  # grey to RGB: every grey byte three times
        pixels = bytes(v for v in pixels for _ in range(3))
    return Image(w, h, pixels)


def encode_ppm(image: Image) -> bytes:
    """Encode ``image`` as a binary PPM (``P6``) file."""
    return b"P6\n%d %d\n255\n" % (image.width, image.height) + image.rgb


# --- filters -----------------------------------------------------------------


def grayscale(image: Image) -> Image:
    """Luma per ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B), rounded, in all three channels."""
    rgb = image.rgb
    out = bytearray(len(rgb))
    for i in range(0, len(rgb), 3):
        # Integer weights in thousandths, + 500 to round half up, exactly.
        y = (299 * rgb[i] + 587 * rgb[i + 1] + 114 * rgb[i + 2] + 500) // 1000
        out[i] = out[i + 1] = out[i + 2] = y
    return image._replace(rgb=bytes(out))


_INVERTED = bytes(range(255, -1, -1))


def invert(image: Image) -> Image:
    """Every channel ``v`` becomes ``255 - v``."""
    return image._replace(rgb=image.rgb.translate(_INVERTED))


def blur(image: Image) -> Image:
    """A 3x3 box blur: each channel is the rounded mean of the pixel and its neighbours.

    At the edges only the neighbours inside the image count, so the borders do
    not darken.
    """
    w, h, rgb = image
    out = bytearray(len(rgb))
    for y in range(h):
        rows = range(max(y - 1, 0), min(y + 2, h))
        for x in range(w):
            cols = range(max(x - 1, 0), min(x + 2, w))
            n = len(rows) * len(cols)
            for c in range(3):
                total = sum(rgb[(r * w + k) * 3 + c] for r in rows for k in cols)
                out[(y * w + x) * 3 + c] = (total + n // 2) // n
    return image._replace(rgb=bytes(out))


FILTERS: dict[str, Callable[[Image], Image]] = {
    "grayscale": grayscale,
    "invert": invert,
    "blur": blur,
}
"""The filters by name, in the order they are applied by default."""


# --- the flow ------------------------------------------------------------------


def pass_key(params: dict[str, Any]) -> str:
    """The name of one pass, ``IMAGE-FILTER``: its output's stem and its slot in ``work``."""
    return f"{Path(params['image']).stem}-{params['filter']}"


class LoadImage(pocketcore.AsyncNode):
    """Read the pass's image (``params["image"]``) into the pass's slot of ``shared["work"]``."""

    async def prep_async(self, shared: dict[str, Any]) -> str:
        return str(self.params["image"])

    async def exec_async(self, prep_res: str) -> Image:
        # anyio.Path reads in a worker thread, on asyncio and trio alike.
        return decode_pnm(await anyio.Path(prep_res).read_bytes())

    async def post_async(self, shared: dict[str, Any], prep_res: str, exec_res: Image) -> None:
        # Passes run concurrently and share the store, so each keeps its
        # intermediate image under its own key rather than one common one.
        shared["work"][pass_key(self.params)] = exec_res


class ApplyFilter(pocketcore.AsyncNode):
    """Apply ``params["filter"]`` to the pass's image, through a (simulated) slow remote call."""

    async def prep_async(self, shared: dict[str, Any]) -> tuple[Image, float]:
        return shared["work"][pass_key(self.params)], float(shared["delay"])

    async def exec_async(self, prep_res: tuple[Image, float]) -> Image:
        image, delay = prep_res
        await anyio.sleep(delay)  # stands for the round trip to an image service
        return FILTERS[self.params["filter"]](image)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Image) -> None:
        shared["work"][pass_key(self.params)] = exec_res


class SaveImage(pocketcore.AsyncNode):
    """Write the pass's result to ``output_dir/IMAGE-FILTER.ppm`` and list it in ``outputs``."""

    async def prep_async(self, shared: dict[str, Any]) -> tuple[Image, Path]:
        key = pass_key(self.params)
        return shared["work"].pop(key), Path(shared["output_dir"]) / f"{key}.ppm"

    async def exec_async(self, prep_res: tuple[Image, Path]) -> str:
        image, path = prep_res
        await anyio.Path(path).write_bytes(encode_ppm(image))
        return str(path)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: str) -> None:
        shared["outputs"].append(exec_res)


class _Passes:
    """What both flow variants share: one params dict per (image x filter) pair."""

    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, str]]:
        # Defaults are written back as plain strings and lists, so the final
        # store records what was done and stays printable as JSON.
        input_dir = anyio.Path(shared.setdefault("input_dir", str(IMAGES)))
        output_dir = anyio.Path(shared.setdefault("output_dir", str(OUT)))
        filters = shared.setdefault("filters", list(FILTERS))
        shared.setdefault("delay", DELAY)
        unknown = [f for f in filters if f not in FILTERS]
        if unknown:
            raise ValueError(f"unknown filter(s) {unknown}; known filters: {list(FILTERS)}")
        images = sorted([str(p) async for p in input_dir.iterdir() if p.suffix in SUFFIXES])
        if not images:
            raise FileNotFoundError(f"no {'/'.join(SUFFIXES)} images in {input_dir}")
        await output_dir.mkdir(parents=True, exist_ok=True)
        # Created before any pass starts, so concurrent passes only ever touch
        # their own keys of these.
        shared["work"], shared["outputs"] = {}, []
        return [{"image": p, "filter": f} for p in images for f in filters]

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        del shared["work"]  # empty by now: every pass took its image out
        shared["outputs"].sort()  # completion order differs between executors


class ImageFilterFlow(_Passes, pocketcore.AsyncParallelBatchFlow):
    """Every image x filter pass at once, scheduled by the run's executor."""


class ImageFilterFlowOneByOne(_Passes, pocketcore.AsyncBatchFlow):
    """The same passes one after another, whatever the executor (the baseline)."""


def build_flow(*, parallel: bool = True) -> pocketcore.AsyncFlow:
    """Build the image-filter flow: parallel passes, or one by one with ``parallel=False``."""
    load = LoadImage()
    load >> ApplyFilter() >> SaveImage()
    if parallel:
        return ImageFilterFlow(start=load)
    return ImageFilterFlowOneByOne(start=load)


flow = build_flow()
"""The parallel flow, for ``pocketcore run examples/image_filter/flow.py:flow``."""


# --- the demo ------------------------------------------------------------------


def timed(
    flow: pocketcore.AsyncFlow, executor: str, shared: dict[str, Any] | None = None
) -> tuple[float, dict[str, Any]]:
    """Run ``flow`` with ``executor``; return the wall time and the shared store."""
    shared = {} if shared is None else shared
    start = time.perf_counter()
    pocketcore.run(flow, shared, executor=executor)
    return time.perf_counter() - start, shared


def main(argv: list[str]) -> int:
    """Run the flow with each executor named in ``argv`` (default: all installed)."""
    executors = pocketcore.get_registry().executors
    installed = sorted(executors)
    # Remote executors (dask) only on request: a cluster per run is no demo.
    wanted = argv or [n for n in installed if not getattr(executors[n].executor, "remote", False)]
    unknown = [name for name in wanted if name not in installed]
    if unknown:
        print(f"unknown executor(s): {', '.join(unknown)}; installed: {', '.join(installed)}")
        return 2
    n_images = sum(1 for p in IMAGES.iterdir() if p.suffix in SUFFIXES)
    print(
        f"{n_images} images x {len(FILTERS)} filters = {n_images * len(FILTERS)} passes, "
        f"simulated remote call of {DELAY:.2f} s each\n"
    )
    print(f"{'flow':<24} {'executor':<12} {'wall time':>10} {'x delay':>8}")
    rows = [("AsyncBatchFlow", name, build_flow(parallel=False)) for name in wanted[:1]]
    rows += [("AsyncParallelBatchFlow", name, build_flow()) for name in wanted]
    first: dict[str, bytes] | None = None
    outputs: list[str] = []
    for kind, name, flow in rows:
        seconds, shared = timed(flow, name)
        print(f"{kind:<24} {name:<12} {seconds:>9.2f}s {seconds / DELAY:>7.1f}x")
        outputs = shared["outputs"]
        written = {Path(p).name: Path(p).read_bytes() for p in outputs}
        if first is not None and written != first:
            print("  (different images than the first run!)")
            return 1
        first = written
    print(f"\n{len(outputs)} images written to {OUT}:")
    for path in outputs:
        print(f"  {Path(path).name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
