"""Charts drawn on the server as SVG: no chart library, no script, readable without JavaScript.

Each chart is an ``<svg role="img">`` with a title and a description, and every label is escaped;
the page also shows the same numbers as a table for screen readers and for copying.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 36, 64
BAR = "#0b5cad"
MARK = "#a4161a"
INK = "#1b2430"
GRID = "#c7ced8"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    mark: float | None = None
    note: str = ""


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def _fmt(value: float) -> str:
    if value >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def bar_chart(*, title: str, description: str, bars: Sequence[Bar], unit: str, mark_label: str = "",
              chart_id: str = "chart", counts: bool = False) -> Markup:
    """Vertical bars (e.g. the median) with an optional tick per bar (e.g. the 90th percentile).
    ``counts``: whole numbers on the axis (a number of alerts has no fractions)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    highest = max([b.value or 0 for b in bars] + [b.mark or 0 for b in bars] + [0.0])
    top = 4.0 * max(1, math.ceil(highest / 4)) if counts else _nice_max(highest)
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">',
             f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(description)}</desc>',
             f'<text x="{LEFT}" y="20" font-size="14" font-weight="600" fill="{INK}">{escape(title)}</text>']
    for n in range(5):
        value = top * n / 4
        y = TOP + plot_h - plot_h * n / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{GRID}"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{INK}">{_fmt(value)}</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" transform="rotate(-90 14 {TOP + plot_h / 2:.1f})" '
                 f'text-anchor="middle" fill="{INK}">{escape(unit)}</text>')
    if not bars:
        parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
                     f'fill="{INK}">No data in this period</text>')
    slot = plot_w / max(1, len(bars))
    width = max(2.0, min(40.0, slot * 0.6))
    every = max(1, math.ceil(len(bars) / 16))
    for i, bar in enumerate(bars):
        x = LEFT + slot * i + (slot - width) / 2
        tooltip = f"{bar.label}: " + (f"{_fmt(bar.value)} {unit}" if bar.value is not None else "none acknowledged")
        if bar.mark is not None and mark_label:
            tooltip += f"; {mark_label} {_fmt(bar.mark)} {unit}"
        if bar.note:
            tooltip += f"; {bar.note}"
        if bar.value is not None:
            h = plot_h * bar.value / top
            parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
                         f'fill="{BAR}"><title>{escape(tooltip)}</title></rect>')
        else:
            parts.append(f'<text x="{x + width / 2:.1f}" y="{TOP + plot_h - 4:.1f}" text-anchor="middle" '
                         f'fill="{MARK}">–<title>{escape(tooltip)}</title></text>')
        if bar.mark is not None:
            y = TOP + plot_h - plot_h * bar.mark / top
            parts.append(f'<line x1="{x - 3:.1f}" y1="{y:.1f}" x2="{x + width + 3:.1f}" y2="{y:.1f}" '
                         f'stroke="{MARK}" stroke-width="3"><title>{escape(tooltip)}</title></line>')
        if i % every == 0:
            lx, ly = x + width / 2, TOP + plot_h + 14
            parts.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="end" transform="rotate(-40 {lx:.1f} {ly:.1f})" '
                         f'fill="{INK}">{escape(bar.label)}</text>')
    if mark_label:
        lx = WIDTH - RIGHT - 230
        parts.append(f'<rect x="{lx}" y="10" width="12" height="12" fill="{BAR}"/>'
                     f'<text x="{lx + 16}" y="20" fill="{INK}">median</text>'
                     f'<line x1="{lx + 80}" y1="16" x2="{lx + 96}" y2="16" stroke="{MARK}" stroke-width="3"/>'
                     f'<text x="{lx + 100}" y="20" fill="{INK}">{escape(mark_label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


BUCKETS = ((60, "< 1 min"), (120, "1–2 min"), (300, "2–5 min"), (600, "5–10 min"), (900, "10–15 min"),
           (1800, "15–30 min"), (3600, "30–60 min"), (math.inf, "> 1 h"))


def histogram_bars(seconds: Sequence[float], open_count: int) -> list[Bar]:
    counts = [0] * len(BUCKETS)
    for value in seconds:
        for i, (limit, _) in enumerate(BUCKETS):
            if value < limit:
                counts[i] += 1
                break
    bars = [Bar(label, float(count)) for (_, label), count in zip(BUCKETS, counts, strict=True)]
    bars.append(Bar("still open", float(open_count), note="not acknowledged yet"))
    return bars
