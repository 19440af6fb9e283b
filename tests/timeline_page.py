"""Reading a timeline page back: its bars and profiles, and whether it needs anything outside."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class Page(HTMLParser):
    """The bars and profiles of a timeline page, with their attributes and tooltips."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.shapes: list[dict[str, Any]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[tuple[str, str]] = []  # (class, text) of the SVG's text elements
        self._in_text: str | None = None
        self._in_title: dict[str, Any] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("rect", "path", "line"):
            shape = {"tag": tag, **dict(attrs), "title": ""}
            shape["classes"] = set(str(shape.get("class", "")).split())
            self.shapes.append(shape)
        elif tag == "title" and self.shapes:
            self._in_title = self.shapes[-1]
        elif tag == "text":
            self._in_text = str(dict(attrs).get("class") or "")
            self.texts.append((self._in_text, ""))

    def handle_data(self, data: str) -> None:
        if self._in_title is not None:
            self._in_title["title"] += data
        elif self._in_text is not None:
            css, text = self.texts[-1]
            self.texts[-1] = (css, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = None
        elif tag == "text":
            self._in_text = None

    def items(self, batch: int = 0) -> list[dict[str, Any]]:
        return [
            s
            for s in self.shapes
            if s["tag"] == "rect" and "item" in s["classes"] and s.get("data-batch") == str(batch)
        ]

    def of_class(self, css: str) -> list[dict[str, Any]]:
        return [s for s in self.shapes if css in s["classes"]]


def assert_self_contained(text: str) -> None:
    assert "http://" not in text
    assert "https://" not in text
    page = Page(text)
    for tag, attrs in page.tags:
        assert "src" not in attrs, tag
        assert tag not in ("link", "script", "img", "iframe", "object", "embed")
        assert not str(attrs.get("href", "")).strip(), tag
    assert "@import" not in text
    assert "url(" not in text
