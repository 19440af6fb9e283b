"""The measuring machinery: interleaved repeats, medians of ratios, one table, JSON.

A :class:`Group` is a set of contenders measured side by side in this process:
every repeat takes one sample of each contender, in a rotating order
(A B C, B C A, C A B, ...), so slow drifts of a shared machine hit all of them
alike. A sample returns a total (seconds, or bytes of peak traced memory) for
``units`` steps or items; the figure of a sample is total / units. A
:class:`Row` compares two contenders of a group: its ratio is the median of the
per-repeat ratios subject / reference, which is what the targets are judged on.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["time", "memory"]


@dataclass
class Contender:
    """One thing being measured.

    Attributes:
        key: Identifier, unique within its group (used by rows and in the JSON).
        label: What the table calls it.
        sample: Takes one measurement; returns seconds or bytes for ``units`` units.
        units: Steps or items one sample covers.
        warmup: Take one untimed sample first.
    """

    key: str
    label: str
    sample: Callable[[], float]
    units: int
    warmup: bool = True
    samples: list[float] = field(default_factory=list)

    def figures(self) -> list[float]:
        return [s / self.units for s in self.samples]

    def median(self, totals: bool = False) -> float:
        return statistics.median(self.samples if totals else self.figures())


@dataclass
class Row:
    """A comparison: ``subject`` (pocketcore) against ``reference``.

    Attributes:
        subject: Key of the pocketcore contender.
        reference: Key of the reference contender.
        target: The target for the median ratio (at most), or ``None``
            when the row is for information only.
        label: The scenario text, when it differs from the group's.
        totals: Compare whole-sample totals instead of per-unit figures.
    """

    subject: str
    reference: str
    target: float | None = None
    label: str | None = None
    totals: bool = False


@dataclass
class Result:
    """What one row measured."""

    section: str
    scenario: str
    subject: str
    subject_figure: str
    reference: str
    reference_figure: str
    ratio: float
    ratio_low: float
    ratio_high: float
    target: float | None
    met: bool | None
    unit: str
    subject_median: float
    reference_median: float


@dataclass
class Group:
    """Contenders measured side by side, and the rows comparing them.

    Attributes:
        key: Identifier, for ``--only`` and the JSON.
        section: Heading the group belongs to in the table.
        scenario: What is measured, for the table.
        kind: ``"time"`` (samples in seconds) or ``"memory"`` (bytes).
        unit: What one unit is: ``"step"``, ``"item"``, ``"batch"``.
        notes: Lines to print under the table once the group is measured.
    """

    key: str
    section: str
    scenario: str
    kind: Kind
    unit: str
    contenders: list[Contender]
    rows: list[Row]
    repeats: int
    notes: Callable[[Group], list[str]] | None = None

    def contender(self, key: str) -> Contender:
        for c in self.contenders:
            if c.key == key:
                return c
        raise KeyError(key)

    @property
    def subject(self) -> Contender:
        return self.contender(self.rows[0].subject)

    def run(self, progress: Callable[[str], None]) -> None:
        for c in self.contenders:
            if c.warmup:
                gc.collect()
                c.sample()
        count = len(self.contenders)
        for r in range(self.repeats):
            for i in range(count):
                c = self.contenders[(r + i) % count]
                gc.collect()
                c.samples.append(c.sample())
            progress(f"  {self.key}: repeat {r + 1}/{self.repeats}")

    def results(self) -> list[Result]:
        out = []
        for row in self.rows:
            subj, ref = self.contender(row.subject), self.contender(row.reference)
            if row.totals:
                a, b = subj.samples, ref.samples
            else:
                a, b = subj.figures(), ref.figures()
            ratios = sorted(x / y for x, y in zip(a, b, strict=True))
            ratio = statistics.median(ratios)
            out.append(
                Result(
                    section=self.section,
                    scenario=row.label or self.scenario,
                    subject=subj.label,
                    subject_figure=self.format(subj.median(row.totals), row.totals),
                    reference=ref.label,
                    reference_figure=self.format(ref.median(row.totals), row.totals),
                    ratio=ratio,
                    ratio_low=ratios[0],
                    ratio_high=ratios[-1],
                    target=row.target,
                    met=None if row.target is None else ratio <= row.target,
                    unit=self.unit_name(row.totals),
                    subject_median=subj.median(row.totals),
                    reference_median=ref.median(row.totals),
                )
            )
        return out

    def unit_name(self, totals: bool) -> str:
        if self.kind == "memory":
            return "bytes" if totals else f"bytes/{self.unit}"
        return "seconds" if totals else f"seconds/{self.unit}"

    def format(self, value: float, totals: bool = False) -> str:
        if self.kind == "memory":
            if totals:
                return f"{value / 2**20:.2f} MiB"
            return f"{value:,.0f} B/{self.unit}"
        per = "" if totals else f"/{self.unit}"
        if value < 1e-3:
            return f"{value * 1e6:.2f} us{per}"
        if value < 1:
            return f"{value * 1e3:.1f} ms{per}"
        return f"{value:.2f} s{per}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "section": self.section,
            "scenario": self.scenario,
            "kind": self.kind,
            "unit": self.unit,
            "repeats": self.repeats,
            "contenders": [
                {
                    "key": c.key,
                    "label": c.label,
                    "units": c.units,
                    "samples": c.samples,
                    "median_per_unit": c.median() if c.samples else None,
                }
                for c in self.contenders
            ],
            "rows": [r.__dict__ for r in self.results()],
            "notes": self.notes(self) if self.notes else [],
        }


def format_ratio(ratio: float) -> str:
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def render_table(groups: list[Group], markdown: bool = False) -> str:
    """All groups' rows as one table (plain text, or Markdown)."""
    header = ["scenario", "pocketcore", "reference", "reference figure", "ratio", "target"]
    lines: list[list[str]] = []
    sections: list[int] = []
    section = None
    for g in groups:
        if g.section != section:
            section = g.section
            sections.append(len(lines))
            lines.append([f"[{section}]", "", "", "", "", ""])
        previous = None
        for res in g.results():
            if res.target is None:
                target = "info"
            else:
                target = f"<= {res.target:g}: {'met' if res.met else 'MISSED'}"
            # The scenario and pocketcore's figure are written once per run of equal rows.
            same = previous == (res.scenario, res.subject_figure)
            previous = (res.scenario, res.subject_figure)
            lines.append(
                [
                    "" if same else res.scenario,
                    "" if same else res.subject_figure,
                    res.reference,
                    res.reference_figure,
                    format_ratio(res.ratio),
                    target,
                ]
            )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for i, line in enumerate(lines):
            if i in sections:
                out.append(f"| **{line[0][1:-1]}** |" + " |" * (len(header) - 1))
            else:
                out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |")
        return "\n".join(out)
    widths = [
        max(len(header[k]), *(len(line[k]) for i, line in enumerate(lines) if i not in sections))
        for k in range(len(header))
    ]
    rule = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), rule]
    for i, line in enumerate(lines):
        if i in sections:
            out.append(line[0])
        else:
            cells = [
                c.ljust(w) if k in (0, 2, 5) else c.rjust(w)
                for k, (c, w) in enumerate(zip(line, widths, strict=True))
            ]
            out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def render_targets(groups: list[Group]) -> tuple[str, int, int]:
    """One line per performance target: target, measured median ratio, met or missed."""
    out = []
    met = missed = 0
    for g in groups:
        for res in g.results():
            if res.target is None:
                continue
            ok = bool(res.met)
            met += ok
            missed += not ok
            out.append(
                f"  {'met   ' if ok else 'MISSED'}  {res.section} | {res.scenario} | "
                f"vs {res.reference}: "
                f"ratio {format_ratio(res.ratio)} "
                f"(repeats {format_ratio(res.ratio_low)}..{format_ratio(res.ratio_high)}), "
                f"target <= {res.target:g}"
            )
    return "\n".join(out), met, missed
