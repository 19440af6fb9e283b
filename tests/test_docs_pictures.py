"""The docs' pictures were made from the commands shown next to them (``nox -s pictures``).

Making them needs Chromium (CI checks them so with ``nox -s pictures --
--check``); what is checked here needs nothing: each picture in README.md
and docs/ has a command before it, and the command kept in the PNG is that
one, so editing a command without remaking its picture fails here.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from .browser import pictures as docs_pictures


def test_every_picture_was_made_from_the_command_shown_before_it() -> None:
    shown = docs_pictures.pictures()
    assert shown, "no picture found: the scan proves nothing"
    for picture in shown:
        kept = docs_pictures.png_text(picture.png)
        assert kept.get(docs_pictures.COMMAND_KEY) == picture.command, picture.png.name
        assert kept.get(docs_pictures.PAGE_KEY, "").startswith("pocketcore timeline: ")


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(k, b) for k, b in chunks)


def test_text_chunks_are_read_back(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(
        _png(
            [
                (b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)),
                (b"tEXt", b"pocketcore-command\0pocketcore run x --timeline t.html"),
                (b"zTXt", b"pocketcore-page\0\0" + zlib.compress(b"pocketcore timeline: X")),
                (b"IEND", b""),
            ]
        )
    )
    assert docs_pictures.png_text(path) == {
        "pocketcore-command": "pocketcore run x --timeline t.html",
        "pocketcore-page": "pocketcore timeline: X",
    }


def test_a_picture_without_a_command_before_it_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "# A\n\n```console\n$ pocketcore run a.py:flow --timeline t.html\n```\n\n"
        "## B\n\n![shot](docs/shot.png)\n",
        encoding="utf-8",
    )
    with pytest.raises(docs_pictures.Problem, match=r"README.md: docs/shot.png: the console"):
        docs_pictures.pictures(tmp_path)
    (tmp_path / "docs" / "x.md").write_text(
        "```console\n$ pocketcore run a.py:flow --timeline t.html\n```\n\n![shot](shot.png)\n",
        encoding="utf-8",
    )
    (tmp_path / "README.md").write_text("no pictures\n", encoding="utf-8")
    (shown,) = docs_pictures.pictures(tmp_path)
    assert shown.command == "pocketcore run a.py:flow --timeline t.html"
    assert shown.png == tmp_path / "docs" / "shot.png"


def test_generated_blocks_are_found_with_their_commands() -> None:
    found = docs_pictures.samples()
    assert [s.doc.name for s in found] == ["cli.md"]
    (plugins,) = found
    assert plugins.commands == (
        "pocketcore plugins",
        "POCKETCORE_PLUGINS=asyncio,trio,nope pocketcore plugins",
    )
