"""Server-side SVG charts of the dashboard: stacked bars and a line, no JavaScript.

The markup is built with format_html, so every label (queue titles come from admins)
is escaped. Each chart is an image to assistive technology (role="img") named by its
<title> and described by its <desc>; each mark has its own <title> with the number it
stands for, and the legend names every colour, so nothing is told by colour alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# Young to old: green, olive, amber, orange, red, purple (then again, for more buckets).
PALETTE = ("#2e7d32", "#827717", "#b26a00", "#d84315", "#b3261e", "#6a1b9a")
WIDTH = 720
LABEL_CHARS = 26


def _n(value: float) -> str:
    """A coordinate: short, locale-free."""
    return f"{value:.1f}".removesuffix(".0")


def _count(n: int, units: tuple[str, str]) -> str:
    return f"{n} {units[0] if n == 1 else units[1]}"


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _join(parts: Sequence[SafeString]) -> SafeString:
    """Concatenate markup already built by format_html (it stays safe, nothing re-escaped)."""
    return format_html_join("", "{}", ((part,) for part in parts))


def _frame(chart_id: str, height: int, title: str, desc: str, body: SafeString) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        'viewBox="0 0 {} {}" width="100%" aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        WIDTH,
        height,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        desc,
        body,
    )


def stacked_bars(
    *,
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[int]],
    units: tuple[str, str] = ("item", "items"),
) -> SafeString:
    """One horizontal bar per category, stacked by series (values[category][series])."""
    label_width, right, row, bar, top = 200, 56, 28, 18, 44
    plot = WIDTH - label_width - right
    height = top + max(len(categories), 1) * row + 8
    largest = max((sum(v) for v in values), default=0)
    scale = plot / largest if largest else 0.0
    spacing = min(110, plot // max(len(series), 1))
    legend = format_html_join(
        "",
        '<g><rect x="{}" y="8" width="12" height="12" fill="{}"></rect>'
        '<text x="{}" y="18" class="chart-legend">{}</text></g>',
        (
            (
                label_width + i * spacing,
                PALETTE[i % len(PALETTE)],
                label_width + i * spacing + 16,
                name,
            )
            for i, name in enumerate(series)
        ),
    )
    rows = []
    for index, (category, counts) in enumerate(zip(categories, values, strict=True)):
        y = top + index * row
        x = float(label_width)
        segments = []
        for i, (name, count) in enumerate(zip(series, counts, strict=True)):
            if not count:
                continue
            w = count * scale
            segments.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{}: {} {}</title></rect>",
                    _n(x),
                    y,
                    _n(w),
                    bar,
                    PALETTE[i % len(PALETTE)],
                    category,
                    _count(count, units),
                    name,
                )
            )
            x += w
        rows.append(
            format_html(
                '<g><text x="{}" y="{}" text-anchor="end" class="chart-label">{}<title>{}</title>'
                '</text>{}<text x="{}" y="{}" class="chart-value">{}</text></g>',
                label_width - 8,
                y + 14,
                _short(category),
                category,
                _join(segments),
                _n(x + 6),
                y + 14,
                sum(counts),
            )
        )
    if not categories:
        rows.append(
            format_html('<text x="{}" y="{}" class="chart-label">No queues to show</text>', 8, 62)
        )
    parts = [
        (category, sum(counts), ", ".join(f"{c} {s}" for s, c in zip(series, counts, strict=True)))
        for category, counts in zip(categories, values, strict=True)
    ]
    summary = "; ".join(f"{category}: {total} ({detail})" for category, total, detail in parts)
    return _frame(
        chart_id,
        height,
        title,
        summary or "No queues to show.",
        legend + _join(rows),
    )


def _ceiling(value: int) -> int:
    """A round top for the y axis: 1, 2, 5, 10, 20, 50, ... at least value."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def line_chart(
    *,
    chart_id: str,
    title: str,
    points: Sequence[tuple[dt.datetime, int]],
    units: tuple[str, str] = ("open item", "open items"),
    label_every: int = 6,
) -> SafeString:
    """A line of counts over time, with a dot (and its own title) per point."""
    height, left, right, top, bottom = 240, 48, 20, 16, 32
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    if not points:
        return _frame(chart_id, 60, title, "No data.", SafeString(""))
    highest = max(count for _, count in points)
    y_top = _ceiling(max(highest, 1))
    step = plot_w / max(len(points) - 1, 1)

    def xy(index: int, count: int) -> tuple[float, float]:
        return left + index * step, top + plot_h - count / y_top * plot_h

    def clock(moment: dt.datetime) -> str:
        return timezone.localtime(moment).strftime("%H:%M")

    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="chart-grid"></line>'
        '<text x="{}" y="{}" text-anchor="end" class="chart-axis">{}</text>',
        (
            (left, _n(y), WIDTH - right, _n(y), left - 6, _n(y + 4), value)
            for value in (0, y_top // 2 if y_top > 1 else None, y_top)
            if value is not None
            for y in (top + plot_h - value / y_top * plot_h,)
        ),
    )
    ticks = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" class="chart-axis">{}</text>',
        (
            (_n(left + i * step), height - 10, clock(moment))
            for i, (moment, _) in enumerate(points)
            if i % label_every == 0 or i == len(points) - 1
        ),
    )
    line = " ".join(f"{_n(x)},{_n(y)}" for x, y in (xy(i, c) for i, (_, c) in enumerate(points)))
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3" class="chart-dot"><title>{}: {}</title></circle>',
        (
            (_n(x), _n(y), clock(moment), _count(count, units))
            for i, (moment, count) in enumerate(points)
            for x, y in (xy(i, count),)
        ),
    )
    peak_at = next(moment for moment, count in points if count == highest)
    desc = (
        f"{_count(points[0][1], units)} at {clock(points[0][0])}, {points[-1][1]} at the end "
        f"({clock(points[-1][0])}); highest {highest} at {clock(peak_at)}."
    )
    body = format_html(
        '{}{}<polyline points="{}" class="chart-line" fill="none"></polyline>{}',
        grid,
        ticks,
        line,
        dots,
    )
    return _frame(chart_id, height, title, desc, body)
