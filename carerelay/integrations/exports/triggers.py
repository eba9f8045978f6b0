"""When a connector runs next: every N minutes, daily at a local time, and which pay period is current.

Local times follow the scheduling rule (docs/subsystems/scheduling-dst.md): a daily time inside the
skipped spring-forward hour runs at the first minute that exists after it; a time in the repeated
autumn hour runs at its first occurrence, once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from carerelay.integrations.exports.config import Daily, Interval, PayPeriod, Trigger
from carerelay.scheduling.timeline import local_exists, zone

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _at_local(day: date, at: time, tz_name: str) -> datetime:
    tz = zone(tz_name)
    naive = datetime.combine(day, at)
    while not local_exists(naive, tz):
        naive += timedelta(minutes=1)
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def next_due(trigger: Trigger, *, after: datetime, timezone: str) -> datetime | None:
    """The first due time strictly after ``after``; None for triggers driven by schedule changes."""
    if isinstance(trigger, Interval):
        step = timedelta(minutes=trigger.minutes)
        elapsed = (after - EPOCH) // step
        return EPOCH + (elapsed + 1) * step
    if isinstance(trigger, Daily | PayPeriod):
        local_day = after.astimezone(zone(timezone)).date()
        for offset in range(0, 3):
            due = _at_local(local_day + timedelta(days=offset), trigger.at, timezone)
            if due > after:
                return due
    return None


def pay_period(trigger: PayPeriod, day: date) -> tuple[date, date]:
    """The pay period containing ``day``: (first day, last day)."""
    index = (day - trigger.anchor).days // trigger.length_days
    first = trigger.anchor + timedelta(days=index * trigger.length_days)
    return first, first + timedelta(days=trigger.length_days - 1)
