"""Bar charts drawn on the server as SVG geometry (the template writes the elements; no script).

Horizontal bars: long labels in Mongolian fit, and the chart stays readable on a narrow screen.
A suppressed value has no bar; the template marks it in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LABEL_WIDTH = 270
BAR_AREA = 330
ROW = 26
BAR = 18


@dataclass
class Bar:
    label: str
    values: list[float | None]  # one per series; None: suppressed (or not measurable)
    y: float = 0
    widths: list[float] = field(default_factory=list)


@dataclass
class Chart:
    title: str
    series: list[str]
    bars: list[Bar]
    unit: str = ""
    width: int = LABEL_WIDTH + BAR_AREA + 60
    height: int = 0
    label_width: int = LABEL_WIDTH
    bar_height: float = BAR


def bar_chart(
    title: str, series: list[str], rows: list[tuple[str, list[float | None]]], *, unit: str = ""
) -> Chart:
    """A chart of `rows` (label, one value per series), scaled to the largest value."""
    biggest = max((v for _label, values in rows for v in values if v is not None), default=0) or 1
    per_row = ROW * len(series) + 8
    bars = []
    for i, (label, values) in enumerate(rows):
        widths = [0.0 if v is None else round(BAR_AREA * v / biggest, 1) for v in values]
        bars.append(Bar(label=label, values=values, y=10 + i * per_row, widths=widths))
    height = 10 + len(rows) * per_row + (0 if rows else 40)
    return Chart(
        title=title, series=series, bars=bars, unit=unit, height=height, bar_height=min(BAR, ROW - 6)
    )
