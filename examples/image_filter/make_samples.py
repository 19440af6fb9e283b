"""Draw the example's sample images into ``images/``.

Run ``python -m examples.image_filter.make_samples`` from the repository root.
The images are tiny (32 x 24) so the pure-Python filters stay fast; they
are drawn from formulas, so this script regenerates the same bytes every
time. Three are colour PPM files and one is a grey PGM file, to exercise both
formats the flow reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from .flow import IMAGES, Image, encode_ppm

WIDTH, HEIGHT = 32, 24
Pixel = tuple[int, int, int]


def draw(paint: Callable[[int, int], Pixel]) -> Image:
    """An image whose pixel at ``(x, y)`` is ``paint(x, y)``."""
    rgb = bytes(c for y in range(HEIGHT) for x in range(WIDTH) for c in paint(x, y))
    return Image(WIDTH, HEIGHT, rgb)


def gradient(x: int, y: int) -> Pixel:
    """Red grows to the right, green downwards, blue is constant."""
    return x * 255 // (WIDTH - 1), y * 255 // (HEIGHT - 1), 128


def checker(x: int, y: int) -> Pixel:
    """Red and cream squares of 4 x 4 pixels."""
    return (220, 40, 40) if (x // 4 + y // 4) % 2 else (250, 240, 210)


def sunset(x: int, y: int) -> Pixel:
    """An orange sky over a blue sea, with a yellow sun on the horizon."""
    horizon = HEIGHT * 2 // 3
    if math.hypot(x - WIDTH / 2, y - horizon) < 6 and y < horizon:
        return 255, 220, 60
    if y < horizon:
        t = y / horizon
        return 250, int(120 + 80 * t), int(60 + 40 * t)
    return 20, 60 + 10 * (y % 2), 140


def rings(x: int, y: int) -> int:
    """Light and dark rings around the centre (a grey value)."""
    return 230 if int(math.hypot(x - WIDTH / 2, y - HEIGHT / 2)) // 3 % 2 else 40


def encode_pgm(grey: bytes) -> bytes:
    """A binary PGM (``P5``) file of ``WIDTH x HEIGHT`` grey bytes."""
    return b"P5\n# rings, drawn by make_samples.py\n%d %d\n255\n" % (WIDTH, HEIGHT) + grey


def main(folder: Path = IMAGES) -> list[Path]:
    """Write the sample images into ``folder`` and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "gradient.ppm": encode_ppm(draw(gradient)),
        "checker.ppm": encode_ppm(draw(checker)),
        "sunset.ppm": encode_ppm(draw(sunset)),
        "rings.pgm": encode_pgm(bytes(rings(x, y) for y in range(HEIGHT) for x in range(WIDTH))),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


if __name__ == "__main__":
    for path in main():
        print(path)
