"""Server-drawn SVG charts the routing dashboard has no shape for: several lines over
labelled periods (throughput, lead time percentiles).

Built like routing/svg.py: format_html escapes every label, the chart is an image
named by its <title> and described by its <desc>, each point has its own <title>, and
each series differs by dash pattern and marker as well as colour (never colour alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from routing.svg import PALETTE, WIDTH, _ceiling, _frame, _join, _n

DASHES = ("", "6 4", "2 3", "10 3 2 3")
MARKERS = ("circle", "square", "diamond", "triangle")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per label; None: nothing measured there


def _marker(shape: str, x: float, y: float, colour: str, title: str) -> SafeString:
    if shape == "square":
        return format_html(
            '<rect x="{}" y="{}" width="7" height="7" fill="{}"><title>{}</title></rect>',
            _n(x - 3.5),
            _n(y - 3.5),
            colour,
            title,
        )
    if shape == "diamond":
        points = f"{_n(x)},{_n(y - 5)} {_n(x + 5)},{_n(y)} {_n(x)},{_n(y + 5)} {_n(x - 5)},{_n(y)}"
    elif shape == "triangle":
        points = f"{_n(x)},{_n(y - 5)} {_n(x + 5)},{_n(y + 4)} {_n(x - 5)},{_n(y + 4)}"
    else:
        return format_html(
            '<circle cx="{}" cy="{}" r="3.5" fill="{}"><title>{}</title></circle>',
            _n(x),
            _n(y),
            colour,
            title,
        )
    return format_html(
        '<polygon points="{}" fill="{}"><title>{}</title></polygon>', points, colour, title
    )


def multi_line(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str] = lambda value: f"{value:g}",
    axis_fmt: Callable[[float], str] | None = None,
    label_every: int = 1,
) -> SafeString:
    """Lines of values over labelled periods, oldest first; a gap where a value is None.
    `fmt` writes a value in the points' titles and the description, `axis_fmt` (short:
    the axis has 60 pixels) on the y axis."""
    height, left, right, top, bottom = 260, 64, 20, 40, 32
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    measured = [v for s in series for v in s.values if v is not None]
    if not labels or not measured:
        empty = format_html('<text x="8" y="36" class="chart-label">{}</text>', "No data yet.")
        return _frame(chart_id, 60, title, "No data in these periods.", empty)
    y_top = _ceiling(max(math.ceil(max(measured)), 1))
    step = plot_w / max(len(labels) - 1, 1)

    def xy(index: int, value: float) -> tuple[float, float]:
        return left + index * step, top + plot_h - value / y_top * plot_h

    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="chart-grid"></line>'
        '<text x="{}" y="{}" text-anchor="end" class="chart-axis">{}</text>',
        (
            (left, _n(y), WIDTH - right, _n(y), left - 6, _n(y + 4), (axis_fmt or fmt)(value))
            for value in (0, y_top / 2, y_top)
            # Counts get no half tick between 0 and 1.
            if value != 0.5 or not all(float(v).is_integer() for v in measured)
            for y in (top + plot_h - value / y_top * plot_h,)
        ),
    )
    ticks = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" class="chart-axis">{}</text>',
        (
            (_n(left + i * step), height - 10, label)
            for i, label in enumerate(labels)
            if i % label_every == 0 or i == len(labels) - 1
        ),
    )
    legend = format_html_join(
        "",
        '<g><line x1="{}" y1="14" x2="{}" y2="14" stroke="{}" stroke-width="2" '
        'stroke-dasharray="{}"></line><text x="{}" y="18" class="chart-legend">{}</text></g>',
        (
            (
                left + i * 170,
                left + i * 170 + 24,
                PALETTE[i % len(PALETTE)],
                DASHES[i % len(DASHES)],
                left + i * 170 + 30,
                s.name,
            )
            for i, s in enumerate(series)
        ),
    )
    lines = []
    summaries = []
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        marks = []
        for index, (label, value) in enumerate(zip(labels, s.values, strict=True)):
            if value is None:
                runs.append([])
                continue
            x, y = xy(index, value)
            runs[-1].append((x, y))
            marks.append(
                _marker(MARKERS[i % len(MARKERS)], x, y, colour, f"{s.name}, {label}: {fmt(value)}")
            )
        for run in runs:
            if len(run) > 1:
                lines.append(
                    format_html(
                        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2" '
                        'stroke-dasharray="{}"></polyline>',
                        " ".join(f"{_n(x)},{_n(y)}" for x, y in run),
                        colour,
                        DASHES[i % len(DASHES)],
                    )
                )
        lines.extend(marks)
        known = [(label, v) for label, v in zip(labels, s.values, strict=True) if v is not None]
        if known:
            high_label, high = max(known, key=lambda pair: pair[1])
            summaries.append(
                f"{s.name}: {fmt(known[-1][1])} in the latest period ({known[-1][0]}), "
                f"highest {fmt(high)} ({high_label})"
            )
        else:
            summaries.append(f"{s.name}: no data")
    desc = f"From {labels[0]} to {labels[-1]}. " + "; ".join(summaries) + "."
    body = format_html("{}{}{}{}", legend, grid, ticks, _join(lines))
    return _frame(chart_id, height, title, desc, body)
