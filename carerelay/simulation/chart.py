"""The run as one SVG file: alerts raised per hour, time to acknowledge by the hour they were raised
(median and 95th percentile), and how long the critical and STAT alerts waited.

Drawn with the web client's server-side charts (web/charts.py): no chart library, no script, every
label escaped, and each chart with a title and a description for screen readers.
"""

from __future__ import annotations

from html import escape
from typing import Any

from carerelay.web.charts import HEIGHT, WIDTH, Bar, bar_chart, histogram_bars

GAP = 12


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)


def render(report: dict[str, Any], critical_waits: list[float], critical_open: int) -> str:
    """``report`` is the run's JSON; ``critical_waits`` the seconds each acknowledged critical or STAT
    alert waited, ``critical_open`` how many were never acknowledged."""
    hourly = report["hourly"]
    sim = report["simulation"]
    charts = [
        bar_chart(title="Alerts raised per hour", chart_id="per-hour", unit="alerts", counts=True,
                  description=f"Alerts raised in each simulated hour from {sim['start_local']} ({sim['beds']} beds).",
                  bars=[Bar(h["label"], float(h["alerts"]), note=f"{h['critical_or_stat']} critical or STAT")
                        for h in hourly]),
        bar_chart(title="Time to acknowledge, by the hour raised", chart_id="ack", unit="minutes",
                  mark_label="95th percentile",
                  description="Median and 95th percentile of the minutes from raised to acknowledged.",
                  bars=[Bar(h["label"], _minutes(h["ack_p50_s"]), mark=_minutes(h["ack_p95_s"])) for h in hourly]),
        bar_chart(title="Critical and STAT alerts: time to acknowledge", chart_id="critical", unit="alerts",
                  counts=True, description="How many critical or STAT alerts were acknowledged within each time.",
                  bars=histogram_bars(critical_waits, critical_open)),
    ]
    total = len(charts) * HEIGHT + (len(charts) - 1) * GAP
    title = f"carerelay hospital-day simulation, {sim['start_local']}, {sim['hours']:g} h, {sim['beds']} beds"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {total}" width="{WIDTH}" '
             f'height="{total}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
             f'<rect width="{WIDTH}" height="{total}" fill="#ffffff"/>']
    for n, chart in enumerate(charts):
        y = n * (HEIGHT + GAP)
        parts.append(str(chart).replace("<svg ", f'<svg x="0" y="{y}" width="{WIDTH}" height="{HEIGHT}" ', 1))
    parts.append("</svg>\n")
    return "".join(parts)
