"""Local wall-clock time → UTC, the one place scheduling touches time zones.

The rule (docs/subsystems/scheduling-dst.md), applied to every slot start and end:

1. Build the instant in the site's IANA zone from the slot's local date and the template's local
   time. An end time at or before the start time falls on the next local day; an end equal to the
   start means a 24-hour template (it ends at the same wall-clock time the next day).
2. **Skipped hour** (spring forward): a local start or end that does not exist is refused with
   ``Invalid`` naming the field. We never shift it silently: a shift that "starts at 02:30" on that
   night is a scheduling mistake someone must see.
3. **Repeated hour** (fall back): an ambiguous local time means its **first** occurrence
   (``fold=0``, still daylight time). Because a start and an end that meet at the same wall-clock time
   resolve the same way, back-to-back shifts stay contiguous.
4. Convert to UTC last. Durations are whatever the UTC instants say: a 19:00–07:00 night is 11 h in
   spring and 13 h in autumn; a 24 h template lasts 23 h or 25 h on those days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from carerelay.core.errors import Invalid


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_exists(naive: datetime, tz: ZoneInfo) -> bool:
    """False for a wall-clock time inside the skipped hour (it does not survive a round trip)."""
    aware = naive.replace(tzinfo=tz, fold=0)
    back = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return back == naive


def to_utc(naive: datetime, tz: ZoneInfo, *, field: str) -> datetime:
    """Rules 2 and 3 of the module docstring."""
    if not local_exists(naive, tz):
        raise Invalid(
            f"{field}: {naive:%Y-%m-%d %H:%M} does not exist in {tz.key} (the clocks skip that hour "
            "when daylight saving time starts); choose a time outside the skipped hour",
            field=field,
        )
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Span:
    starts_at: datetime
    ends_at: datetime
    local_start: datetime
    local_end: datetime

    @property
    def duration(self) -> timedelta:
        return self.ends_at - self.starts_at


def local_end_date(on_date: date, start: time, end: time) -> date:
    return on_date + timedelta(days=1) if end <= start else on_date


def slot_span(on_date: date, start: time, end: time, tz_name: str, *, field_prefix: str = "") -> Span:
    """The UTC span of a template worked on ``on_date`` in zone ``tz_name``."""
    tz = zone(tz_name)
    local_start = datetime.combine(on_date, start)
    local_end = datetime.combine(local_end_date(on_date, start, end), end)
    starts_at = to_utc(local_start, tz, field=f"{field_prefix}start_time")
    ends_at = to_utc(local_end, tz, field=f"{field_prefix}end_time")
    return Span(starts_at=starts_at, ends_at=ends_at, local_start=local_start, local_end=local_end)


def local_window(span_start: datetime, span_end: datetime, tz_name: str) -> str:
    """'2026-11-24 07:00–19:00 America/Chicago' for reasons and feeds (local wall-clock times)."""
    tz = zone(tz_name)
    start = span_start.astimezone(tz)
    end = span_end.astimezone(tz)
    end_text = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M}–{end_text} {tz.key}"
