"""Unit shift changes across daylight saving time: wall-clock 07:00 and 19:00, whatever UTC says."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from carerelay.core.errors import Invalid
from carerelay.staffing.models import DEFAULT_PRECEDENCE
from carerelay.staffing.shifts import (
    UnitSettings,
    check_precedence,
    next_shift,
    parse_changes,
    previous_shift,
    shift_at,
)


def _unit(tz: str = "America/Chicago", changes: tuple[str, ...] = ("07:00", "19:00")) -> UnitSettings:
    return UnitSettings(1, "4W", tz, parse_changes(changes), 30, DEFAULT_PRECEDENCE, True)


def test_day_and_night_on_an_ordinary_day() -> None:
    day = shift_at(_unit(), datetime(2026, 11, 24, 14, 0, tzinfo=UTC))  # 08:00 CST
    assert day.starts_at == datetime(2026, 11, 24, 13, tzinfo=UTC)
    assert day.ends_at == datetime(2026, 11, 25, 1, tzinfo=UTC)
    assert day.label == "07:00–19:00"
    night = next_shift(_unit(), day.starts_at)
    assert night.label == "19:00–07:00" and night.ends_at - night.starts_at == timedelta(hours=12)
    assert previous_shift(_unit(), night.starts_at + timedelta(minutes=1)) == day
    assert shift_at(_unit(), day.ends_at) == night  # a change belongs to the shift it starts


@pytest.mark.parametrize(("night_of", "hours"), [((2026, 3, 7), 11), ((2026, 10, 31), 13)])
def test_the_night_across_a_dst_change_follows_the_wall_clock(night_of: tuple[int, int, int], hours: int) -> None:
    settings = _unit()
    tz_day = datetime(*night_of, 20, 0, tzinfo=UTC)  # 14:00 in Chicago, the day before the change
    night = next_shift(settings, tz_day)
    assert night.label == "19:00–07:00"
    assert night.ends_at - night.starts_at == timedelta(hours=hours)


def test_a_change_inside_the_skipped_hour_happens_when_the_clocks_jump() -> None:
    settings = _unit(changes=("02:30", "14:30"))
    shift = shift_at(settings, datetime(2026, 3, 8, 5, 0, tzinfo=UTC))  # 23:00 CST on the 7th
    assert shift.ends_at == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # 03:00 CDT, the first instant after the gap
    after = shift_at(settings, shift.ends_at)
    assert after.ends_at == datetime(2026, 3, 8, 19, 30, tzinfo=UTC)  # 14:30 CDT


def test_a_repeated_hour_means_its_first_occurrence() -> None:
    settings = _unit(changes=("01:30", "13:30"))
    shift = shift_at(settings, datetime(2026, 11, 1, 2, 0, tzinfo=UTC))  # 21:00 CDT on Oct 31
    assert shift.ends_at == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 CDT, not 01:30 CST


def test_three_shifts_and_another_zone() -> None:
    settings = _unit("America/New_York", ("07:00", "15:00", "23:00"))
    shift = shift_at(settings, datetime(2026, 7, 1, 20, 0, tzinfo=UTC))  # 16:00 EDT
    assert shift.label == "15:00–23:00" and shift.starts_at == datetime(2026, 7, 1, 19, tzinfo=UTC)


def test_settings_are_checked() -> None:
    for bad in ([], ["7am"], ["07:00", "07:00"]):
        with pytest.raises(Invalid) as refused:
            parse_changes(bad)
        assert refused.value.field == "shift_changes"
    assert parse_changes(["19:00", "07:00"]) == (time(7), time(19))
    with pytest.raises(Invalid):
        check_precedence(["manual", "file"])
    assert check_precedence(["sync", "manual", "file", "adt_rol"])[0] == "sync"
