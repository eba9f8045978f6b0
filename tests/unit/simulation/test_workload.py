"""The simulated day before it runs: seeded, the census played forward, DST-correct shift changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carerelay.core.errors import Invalid
from carerelay.simulation.hospital import BedRef, Clinician, Hospital, Team
from carerelay.simulation.runner import DEFAULT_START, Pacer, start_instant
from carerelay.simulation.workload import FLOWS, Hl7In, Workload, generate, shift_changes

START = start_instant(DEFAULT_START)


def _person(n: int, profession: str = "nurse") -> Clinician:
    return Clinician(n, f"p{n}", frozenset({profession}), profession, npi=f"{1000000000 + n}", family=f"F{n}",
                     given="G")


def _hospital() -> Hospital:
    beds = tuple(BedRef("4W", f"4{r:02d}", b, "MAINHOSP", "ward") for r in range(1, 9) for b in "AB")
    beds += tuple(BedRef("ICU", str(r), "A", "MAINHOSP", "icu") for r in range(1, 5))
    teams = {}
    for n, (unit, kind) in enumerate((u, k) for u in ("4W", "ICU") for k in ("day", "night")):
        mine = tuple(b for b in beds if b.unit == unit)
        teams[(unit, kind)] = Team(charge=_person(100 + n), nurses=((_person(200 + n), mine),),
                                   techs=(_person(300 + n, "tech"),))
    doctors = (_person(400, "physician"), _person(401, "physician"))
    return Hospital(zone="America/Chicago", beds=beds, zones={"4W": "America/Chicago", "ICU": "America/Chicago"},
                    teams=teams, attendings={"ward": doctors, "icu": doctors, "ed": doctors})


def _fields(raw: bytes) -> dict[str, list[str]]:
    return {seg.split("|")[0]: seg.split("|") for seg in raw.decode().split("\r") if seg}


def test_the_default_day_crosses_the_autumn_change_with_a_13_hour_night() -> None:
    assert start_instant(DEFAULT_START) == datetime(2026, 10, 31, 17, 0, tzinfo=UTC)  # noon, daylight time
    changes = shift_changes("America/Chicago", START, START + timedelta(hours=24))
    assert changes == [datetime(2026, 11, 1, 0, 0, tzinfo=UTC),   # 19:00 CDT
                       datetime(2026, 11, 1, 13, 0, tzinfo=UTC)]  # 07:00 CST
    assert changes[1] - changes[0] == timedelta(hours=13)
    spring = shift_changes("America/Chicago", datetime(2027, 3, 13, 18, tzinfo=UTC),
                           datetime(2027, 3, 14, 18, tzinfo=UTC))
    assert spring[1] - spring[0] == timedelta(hours=11)


def test_start_is_the_site_wall_clock_unless_an_offset_is_given() -> None:
    assert start_instant("2026-11-01T01:30") == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # first 01:30 (CDT)
    assert start_instant("2026-11-01T01:30-06:00") == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    with pytest.raises(Invalid) as refused:
        start_instant("tomorrow")
    assert refused.value.field == "start"


def _day(seed: int, hours: float = 4) -> Workload:
    return generate(hospital=_hospital(), start=START, hours=hours, seed=seed)


def test_a_seed_gives_the_same_day_and_every_flow_has_work() -> None:
    first, again, other = _day(5), _day(5), _day(6)
    assert [(e.at, e.item) for e in first.events] == [(e.at, e.item) for e in again.events]
    assert [(e.at, e.item) for e in first.events] != [(e.at, e.item) for e in other.events]
    assert all(first.count(flow) > 0 for flow in FLOWS), {flow: first.count(flow) for flow in FLOWS}
    assert [e.at for e in first.events] == sorted(e.at for e in first.events)


def test_results_name_patients_in_the_bed_the_adt_put_them_in() -> None:
    day = _day(7, hours=12)
    where: dict[str, str] = {}
    checked = 0
    for event in day.events:
        if not isinstance(event.item, Hl7In):
            continue
        segments = _fields(event.item.raw)
        mrn, bed = segments["PID"][3].split("^")[0], "^".join(segments["PV1"][3].split("^")[:3])
        kind = segments["MSH"][8].split("^")[1]
        if kind in ("A01", "A02"):
            where[mrn] = bed
        elif kind == "A03":
            where.pop(mrn)
        else:
            assert where.get(mrn) == bed, (mrn, bed)
            checked += 1
    assert checked > 20


def test_a_fast_run_never_waits_and_a_live_one_keeps_the_wall_clock() -> None:
    slept: list[float] = []
    now = [100.0]
    fast = Pacer(speed=0, start=START, monotonic=lambda: now[0], sleep=slept.append)
    fast.wait_until(START + timedelta(hours=5))
    assert slept == []
    live = Pacer(speed=60, start=START, monotonic=lambda: now[0], sleep=slept.append)
    live.wait_until(START + timedelta(minutes=30))  # 30 simulated minutes: 30 real seconds
    assert slept == [30.0]
    now[0] += 45
    live.wait_until(START + timedelta(minutes=40))  # due 40 s after the start, it is 45 s: no wait
    assert slept == [30.0] and live.behind_seconds == 5.0
