"""A unit's shifts: its local shift-change times (default 07:00 and 19:00) turned into UTC spans.

The rule is scheduling's (docs/subsystems/scheduling-dst.md, ``scheduling/timeline.py``): build each
change in the site's IANA zone from the local date and time, convert to UTC last; a repeated
wall-clock hour (autumn) means its first occurrence. A shift change is a recurring event, not a
slot someone typed, so one that falls inside the skipped hour (spring) cannot be refused: it happens
when the clocks jump, the first instant after the gap. A 19:00–07:00 night therefore lasts 11 h in
spring and 13 h in autumn, exactly as the wall clock says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from carerelay.core.errors import Invalid
from carerelay.directory.models import Site
from carerelay.patients.models import Unit
from carerelay.scheduling.timeline import local_exists, zone
from carerelay.staffing.models import DEFAULT_PRECEDENCE, Source, StaffingUnit

DEFAULT_CHANGES = ("07:00", "19:00")
DEFAULT_FLAG_MINUTES = 30


@dataclass(frozen=True)
class UnitSettings:
    unit_id: int
    code: str
    timezone: str
    changes: tuple[time, ...]
    flag_minutes_before: int
    precedence: tuple[str, ...]
    configured: bool

    def rank(self, source: str) -> int:
        """Higher wins."""
        return len(self.precedence) - self.precedence.index(source) if source in self.precedence else 0


@dataclass(frozen=True)
class Shift:
    starts_at: datetime
    ends_at: datetime
    timezone: str

    @property
    def label(self) -> str:
        tz = zone(self.timezone)
        return f"{self.starts_at.astimezone(tz):%H:%M}–{self.ends_at.astimezone(tz):%H:%M}"

    def describe(self) -> str:
        tz = zone(self.timezone)
        return f"{self.starts_at.astimezone(tz):%Y-%m-%d} {self.label} {self.timezone}"


def parse_changes(values: Sequence[str], *, field: str = "shift_changes") -> tuple[time, ...]:
    if not values:
        raise Invalid("give at least one shift change time (HH:MM)", field=field)
    parsed = []
    for value in values:
        try:
            parsed.append(time.fromisoformat(value))
        except ValueError:
            raise Invalid(f"{value!r} is not a time (HH:MM)", field=field) from None
    if len(set(parsed)) != len(parsed):
        raise Invalid("a shift change time appears twice", field=field)
    return tuple(sorted(t.replace(second=0, microsecond=0) for t in parsed))


def check_precedence(values: Sequence[str], *, field: str = "precedence") -> tuple[str, ...]:
    known = [s.value for s in Source]
    if sorted(values) != sorted(known):
        raise Invalid(f"list every source exactly once, highest first: {', '.join(known)}", field=field)
    return tuple(values)


def settings_for(session: Session, unit: Unit) -> UnitSettings:
    site = session.get_one(Site, unit.site_id)
    row = session.get(StaffingUnit, unit.id)
    if row is None:
        return UnitSettings(unit.id, unit.code, site.timezone, parse_changes(DEFAULT_CHANGES), DEFAULT_FLAG_MINUTES,
                            DEFAULT_PRECEDENCE, False)
    return UnitSettings(unit.id, unit.code, site.timezone, parse_changes(row.shift_changes), row.flag_minutes_before,
                        tuple(row.precedence or DEFAULT_PRECEDENCE), True)


def change_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    naive = datetime.combine(day, at)
    if local_exists(naive, tz):
        return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # Inside the skipped hour: the first whole second whose wall-clock reading is past ``naive``
    # (the instant the clocks jump) lies between the two readings zoneinfo offers for it.
    low, high = sorted(int(naive.replace(tzinfo=tz, fold=f).timestamp()) for f in (0, 1))
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) > naive:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def boundaries(settings: UnitSettings, around: datetime, days: int = 2) -> list[datetime]:
    tz = zone(settings.timezone)
    local_day = around.astimezone(tz).date()
    found = {change_instant(local_day + timedelta(days=d), t, tz)
             for d in range(-days, days + 1) for t in settings.changes}
    return sorted(found)


def shift_at(settings: UnitSettings, at: datetime) -> Shift:
    """The shift in progress at ``at``: from the last change at or before it to the next change."""
    marks = boundaries(settings, at)
    start = max(m for m in marks if m <= at)
    end = min(m for m in marks if m > at)
    return Shift(start, end, settings.timezone)


def next_shift(settings: UnitSettings, at: datetime) -> Shift:
    return shift_at(settings, shift_at(settings, at).ends_at)


def previous_shift(settings: UnitSettings, at: datetime) -> Shift:
    current = shift_at(settings, at)
    return shift_at(settings, current.starts_at - timedelta(seconds=1))


def next_change(settings: UnitSettings, after: datetime) -> datetime:
    return shift_at(settings, after).ends_at
