"""The DST matrix: slot spans built in local time, converted to UTC last (scheduling-dst.md).

Two northern zones (America/New_York, Europe/Berlin) and a southern one (Australia/Sydney), each on
its spring-forward and fall-back nights, with overnight (19:00–07:00) and 24 h (07:00–07:00)
templates spanning the change. Expected instants are written out by hand, not computed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from carerelay.core.errors import Invalid
from carerelay.scheduling.timeline import local_window, slot_span

NIGHT = (time(19), time(7))
FULL = (time(7), time(7))
DAY = (time(7), time(19))


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


MATRIX = [
    # zone, template, local date, expected UTC start, expected UTC end, hours
    ("America/New_York", NIGHT, date(2027, 3, 13), utc(2027, 3, 14, 0), utc(2027, 3, 14, 11), 11),
    ("America/New_York", FULL, date(2027, 3, 13), utc(2027, 3, 13, 12), utc(2027, 3, 14, 11), 23),
    ("America/New_York", DAY, date(2027, 3, 14), utc(2027, 3, 14, 11), utc(2027, 3, 14, 23), 12),
    ("America/New_York", NIGHT, date(2027, 11, 6), utc(2027, 11, 6, 23), utc(2027, 11, 7, 12), 13),
    ("America/New_York", FULL, date(2027, 11, 6), utc(2027, 11, 6, 11), utc(2027, 11, 7, 12), 25),
    ("America/New_York", NIGHT, date(2027, 11, 7), utc(2027, 11, 8, 0), utc(2027, 11, 8, 12), 12),
    ("Europe/Berlin", NIGHT, date(2027, 3, 27), utc(2027, 3, 27, 18), utc(2027, 3, 28, 5), 11),
    ("Europe/Berlin", FULL, date(2027, 3, 27), utc(2027, 3, 27, 6), utc(2027, 3, 28, 5), 23),
    ("Europe/Berlin", NIGHT, date(2027, 10, 30), utc(2027, 10, 30, 17), utc(2027, 10, 31, 6), 13),
    ("Europe/Berlin", FULL, date(2027, 10, 30), utc(2027, 10, 30, 5), utc(2027, 10, 31, 6), 25),
    ("Australia/Sydney", NIGHT, date(2027, 10, 2), utc(2027, 10, 2, 9), utc(2027, 10, 2, 20), 11),
    ("Australia/Sydney", FULL, date(2027, 10, 2), utc(2027, 10, 1, 21), utc(2027, 10, 2, 20), 23),
    ("Australia/Sydney", NIGHT, date(2027, 4, 3), utc(2027, 4, 3, 8), utc(2027, 4, 3, 21), 13),
    ("Australia/Sydney", FULL, date(2027, 4, 3), utc(2027, 4, 2, 20), utc(2027, 4, 3, 21), 25),
]


@pytest.mark.parametrize(("tz", "template", "on_date", "start", "end", "hours"), MATRIX,
                         ids=[f"{m[0]}-{m[2]}-{m[1][0]:%H}-{m[1][1]:%H}" for m in MATRIX])
def test_spans_across_the_change(tz: str, template: tuple[time, time], on_date: date, start: datetime,
                                 end: datetime, hours: int) -> None:
    span = slot_span(on_date, template[0], template[1], tz)
    assert span.starts_at == start
    assert span.ends_at == end
    assert span.duration == timedelta(hours=hours)
    assert span.starts_at.tzinfo is UTC and span.ends_at.tzinfo is UTC


@pytest.mark.parametrize(("tz", "on_date", "field", "template"), [
    ("America/New_York", date(2027, 3, 14), "start_time", (time(2, 30), time(8))),
    ("America/New_York", date(2027, 3, 13), "end_time", (time(22), time(2, 0))),
    ("Europe/Berlin", date(2027, 3, 28), "start_time", (time(2), time(10))),
    ("Australia/Sydney", date(2027, 10, 3), "start_time", (time(2, 15), time(9))),
])
def test_a_time_in_the_skipped_hour_is_refused_naming_the_field(
    tz: str, on_date: date, field: str, template: tuple[time, time]
) -> None:
    with pytest.raises(Invalid) as refused:
        slot_span(on_date, template[0], template[1], tz)
    assert refused.value.field == field
    assert "does not exist" in refused.value.message and tz in refused.value.message


def test_the_skipped_hour_is_only_refused_on_its_night() -> None:
    span = slot_span(date(2027, 3, 15), time(2, 30), time(8), "America/New_York")
    assert span.starts_at == utc(2027, 3, 15, 6, 30)


def test_repeated_hour_means_its_first_occurrence_and_shifts_stay_contiguous() -> None:
    before = slot_span(date(2027, 11, 6), time(19), time(1, 30), "America/New_York")
    after = slot_span(date(2027, 11, 7), time(1, 30), time(7), "America/New_York")
    assert before.ends_at == utc(2027, 11, 7, 5, 30)  # 01:30 EDT, the first 01:30
    assert after.starts_at == before.ends_at
    assert after.duration == timedelta(hours=6, minutes=30)  # includes the repeated hour
    berlin = slot_span(date(2027, 10, 31), time(2, 30), time(7), "Europe/Berlin")
    assert berlin.starts_at == utc(2027, 10, 31, 0, 30)  # 02:30 CEST, the first 02:30
    assert berlin.duration == timedelta(hours=5, minutes=30)


def test_local_window_names_the_zone_and_the_next_day() -> None:
    span = slot_span(date(2027, 11, 6), *NIGHT, "America/New_York")
    assert local_window(span.starts_at, span.ends_at, "America/New_York") == \
        "2027-11-06 19:00–2027-11-07 07:00 America/New_York"
    day = slot_span(date(2026, 11, 24), *DAY, "America/Chicago")
    assert local_window(day.starts_at, day.ends_at, "America/Chicago") == "2026-11-24 07:00–19:00 America/Chicago"
