"""Image filter: every filter on every image, one pass of a batch flow per pair.

The images are small and made in memory, and each filter waits on a slow
(simulated) image service before it applies. ``AsyncBatchFlow`` runs the
passes one after another; ``AsyncParallelBatchFlow`` hands them to the run's
executor. A remote executor cannot fan out a batch flow (its passes read and
write the shared store, which stays in this process), so the demo skips that
pairing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

import anyio

from pocketcore._nodes.flows import AsyncBatchFlow, AsyncParallelBatchFlow
from pocketcore._nodes.nodes import AsyncNode, BaseNode

from .spec import Demo

WIDTH, HEIGHT = 24, 16


class Image(NamedTuple):
    """An 8-bit RGB image: ``rgb`` holds ``width * height`` pixels, row by row."""

    width: int
    height: int
    rgb: bytes


def _paint(pixel: Callable[[int, int], tuple[int, int, int]]) -> Image:
    rgb = bytes(c for y in range(HEIGHT) for x in range(WIDTH) for c in pixel(x, y))
    return Image(WIDTH, HEIGHT, rgb)


IMAGES = {
    "gradient": _paint(lambda x, y: (x * 10, y * 15, 128)),
    "checks": _paint(lambda x, y: (255, 255, 255) if (x // 4 + y // 4) % 2 else (20, 40, 60)),
    "stripes": _paint(lambda x, y: (200, 30, 30) if y % 4 < 2 else (30, 30, 200)),
}
"""The images, made in memory, by name."""


def grayscale(image: Image) -> Image:
    """Luma per ITU-R BT.601, rounded, in all three channels."""
    rgb = image.rgb
    out = bytearray(len(rgb))
    for i in range(0, len(rgb), 3):
        y = (299 * rgb[i] + 587 * rgb[i + 1] + 114 * rgb[i + 2] + 500) // 1000
        out[i] = out[i + 1] = out[i + 2] = y
    return image._replace(rgb=bytes(out))


def invert(image: Image) -> Image:
    """Every channel ``v`` becomes ``255 - v``."""
    return image._replace(rgb=bytes(255 - v for v in image.rgb))


def blur(image: Image) -> Image:
    """A 3x3 box blur; at the edges only the neighbours inside the image count."""
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
"""The filters by name."""


def _key(params: dict[str, Any]) -> str:
    """The name of one pass, ``IMAGE-FILTER``: its slot in ``work`` and ``results``."""
    return f"{params['image']}-{params['filter']}"


class LoadImage(AsyncNode):
    """Put the pass's image into its slot of ``shared["work"]``."""

    async def prep_async(self, shared: dict[str, Any]) -> Image:
        image: Image = shared["images"][self.params["image"]]
        return image

    async def post_async(self, shared: dict[str, Any], prep_res: Image, exec_res: Any) -> None:
        # Passes may run at once and share the store: each keeps to its own key.
        shared["work"][_key(self.params)] = prep_res


class ApplyFilter(AsyncNode):
    """Apply the pass's filter, after a (simulated) round trip to an image service."""

    async def prep_async(self, shared: dict[str, Any]) -> tuple[Image, float]:
        return shared["work"][_key(self.params)], shared["delay"]

    async def exec_async(self, prep_res: tuple[Image, float]) -> Image:
        image, delay = prep_res
        await anyio.sleep(delay)
        return FILTERS[self.params["filter"]](image)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Image) -> None:
        shared["work"][_key(self.params)] = exec_res


class SaveImage(AsyncNode):
    """Record a digest of the pass's result in ``shared["results"]``."""

    async def prep_async(self, shared: dict[str, Any]) -> Image:
        image: Image = shared["work"].pop(_key(self.params))
        return image

    async def post_async(self, shared: dict[str, Any], prep_res: Image, exec_res: Any) -> None:
        shared["results"][_key(self.params)] = hashlib.sha256(prep_res.rgb).hexdigest()


class _Passes:
    """What both flow classes share: one params dict per (image, filter) pair."""

    async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, str]]:
        shared["work"], shared["results"] = {}, {}
        return [{"image": i, "filter": f} for i in sorted(shared["images"]) for f in FILTERS]


class FilterAll(_Passes, AsyncParallelBatchFlow):
    """Every pass at once, scheduled by the run's executor."""


class FilterOneByOne(_Passes, AsyncBatchFlow):
    """The same passes one after another, whatever the executor."""


def build(parallel: bool) -> BaseNode:
    """The flow: load, filter and save, once per pass."""
    load = LoadImage()
    load >> ApplyFilter() >> SaveImage()
    return FilterAll(start=load) if parallel else FilterOneByOne(start=load)


DEMO = Demo(
    title="image filter",
    kinds=("AsyncBatchFlow", "AsyncParallelBatchFlow"),
    delay_variable="FILTER_DELAY",
    default_delay=0.25,
    build=build,
    inputs=("images", IMAGES),
    output="results",  # a digest of each result image, by pass
)
