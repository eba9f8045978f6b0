"""Kronos row inclusion and cost centres, OpTime time zones, trigger times, configuration checks."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Invalid
from carerelay.directory import service as directory
from carerelay.integrations.exports import runner
from carerelay.integrations.exports.config import Daily, Interval, PayPeriod
from carerelay.integrations.exports.triggers import next_due, pay_period
from carerelay.scheduling import service as scheduling
from tests.exports_helpers import ADMIN, CARD, folder, make_connector, map_codes, run_now
from tests.scheduling_factories import department, person

HOSP = ("HOSP-DAY", "HOSP-NIGHT")


def _wfc(db: Database, clock: FakeClock, tmp_path: Path, include: dict[str, list[str]],
         **options: object) -> list[dict[str, str]]:
    with db.unit_of_work() as session:
        connector = make_connector(
            session, clock, target="kronos_wfc", departments=["CARD", "HOSP"], transport=folder(tmp_path),
            trigger={"kind": "pay_period", "anchor": "2026-11-24", "length_days": 1},
            options={"include": include, "department_ids": {"CARD": "1001", "HOSP": "1002"}, **options})
        map_codes(session, clock, connector, {code: {} for code in CARD + HOSP})
        run = runner.dry_run(session=session, clock=clock, actor=ADMIN, connector_id=connector.id)
        assert run.status == "dry_run", run.error
        assert run.payload is not None
        return list(csv.DictReader(io.StringIO(run.payload.decode())))


@pytest.mark.parametrize(("include", "expected"), [
    ({"non_exempt": ["call"], "exempt": []}, {("non_exempt", "call")}),
    ({"non_exempt": ["shift", "call"], "exempt": ["shift"]}, {("non_exempt", "call"), ("exempt", "shift")}),
    ({"non_exempt": [], "exempt": ["call"]}, {("exempt", "call")}),
    ({"exempt": ["shift", "call"], "non_exempt": ["shift", "call"]},
     {("non_exempt", "call"), ("exempt", "shift"), ("exempt", "call")}),
])
def test_kronos_rows_follow_the_personnel_type_by_assignment_type_matrix(
    db: Database, clock: FakeClock, tmp_path: Path, include: dict[str, list[str]], expected: set[tuple[str, str]]
) -> None:
    rows = _wfc(db, clock, tmp_path, include)
    with db.unit_of_work() as session:
        kinds = {a.code: a.kind for a in scheduling.list_assignments(session=session)}
        types = {p["kronos_id"]: p["personnel_type"] for p in directory.search_people(
            session=session, query=directory.PersonQuery(), limit=500)}
    assert {(types[r["Employee ID"]], kinds[r["Assignment"]]) for r in rows} == expected


def test_home_shifts_charge_the_home_coid_away_shifts_the_away_coid(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    with db.unit_of_work() as session:
        park, bell = person(session, "hpark"), person(session, "mbell")
        card = department(session, "CARD").id
        for who in (park, bell):
            scheduling.grant_cross_credential(session=session, clock=clock, actor=ADMIN, person_id=who.id,
                                              department_id=card)
        directory.update_person(session=session, clock=clock, actor=ADMIN, person_id=park.id,
                                changes={"away_cost_center": "CC-FLOAT"})
        schedule = scheduling.find_schedule(session=session, department_id=card, on_date=date(2026, 11, 24))
        assert schedule is not None
        slots = {s.assignment.code: s for s in scheduling.list_slots(session=session, schedule_id=schedule.id,
                                                                     on_date=date(2026, 11, 24))}
        # Park is on HOSP-DAY today: give her tonight's cardiology call, and Bell the second call.
        for code, who in (("CARD-CALL1-NIGHT", park), ("CARD-CALL2-NIGHT", bell)):
            scheduling.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=slots[code].id,
                                   fields=scheduling.SlotFields(person_id=who.id))
        park_id, bell_id = str(park.kronos_id), str(bell.kronos_id)
    everything = {"exempt": ["shift", "call"], "non_exempt": ["shift", "call"]}
    rows = {(r["Employee ID"], r["Assignment"]): r for r in _wfc(db, clock, tmp_path, everything,
                                                                 department_coids={"CARD": "CC-CARD-POOL"})}
    assert (rows[(park_id, "HOSP-DAY")]["COID"], rows[(park_id, "HOSP-DAY")]["Transfer"]) == ("CC-HOSP", "N")
    assert (rows[(park_id, "CARD-CALL1-NIGHT")]["COID"], rows[(park_id, "CARD-CALL1-NIGHT")]["Transfer"]) == (
        "CC-FLOAT", "Y")
    assert rows[(bell_id, "CARD-CALL2-NIGHT")]["COID"] == "CC-CARD-POOL"  # no away COID: the worked department's

    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="kronos_wfc", name="no-coids", departments=["CARD"],
                                   transport=folder(tmp_path),
                                   trigger={"kind": "pay_period", "anchor": "2026-11-24", "length_days": 1},
                                   options={"include": everything, "department_ids": {"CARD": "1001"}})
        map_codes(session, clock, connector, {code: {} for code in CARD})
        cid = connector.id
    failed = run_now(db, clock, cid)
    assert failed.status == "failed" and "mbell works CARD-CALL2-NIGHT away from home" in (failed.error or "")


def test_optime_translates_times_into_the_epic_zone_across_the_autumn_change(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    clock.set(datetime(2026, 11, 1, 15, 0, tzinfo=UTC))  # US clocks fell back at 02:00 that morning
    mappings: dict[str, dict[str, object]] = {"NEURO-CALL": {"import_group": "EAST", "role": "Neurologist"}}
    payloads = {}
    for name, zone in (("east", None), ("central", "America/Chicago"), ("pacific", "America/Los_Angeles")):
        with db.unit_of_work() as session:
            connector = make_connector(session, clock, target="epic_optime", name=name, departments=["NEURO"],
                                       transport=folder(tmp_path), options={"future_days": 0,
                                                                            "output_timezone": zone})
            map_codes(session, clock, connector, mappings)
            run = runner.dry_run(session=session, clock=clock, actor=ADMIN, connector_id=connector.id)
            assert run.payload is not None
            payloads[name] = next(csv.DictReader(io.StringIO(run.payload.decode())))
    span = {k: (r["Start Date"], r["Start Time"], r["End Date"], r["End Time"], r["Time Zone"])
            for k, r in payloads.items()}
    assert span == {"east": ("11/01/2026", "07:00", "11/02/2026", "07:00", "America/New_York"),
                    "central": ("11/01/2026", "06:00", "11/02/2026", "06:00", "America/Chicago"),
                    "pacific": ("11/01/2026", "04:00", "11/02/2026", "04:00", "America/Los_Angeles")}


def test_trigger_times() -> None:
    after = datetime(2026, 11, 24, 14, 3, 10, tzinfo=UTC)
    assert next_due(Interval(kind="interval", minutes=5), after=after, timezone="UTC") == after.replace(
        minute=5, second=0)
    daily = Daily(kind="daily", at=time(2, 0))
    assert next_due(daily, after=after, timezone="America/Chicago") == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    # 02:30 does not exist on 8 March 2026 in Chicago: the run moves to the first minute that does.
    spring = Daily(kind="daily", at=time(2, 30))
    assert next_due(spring, after=datetime(2026, 3, 8, 7, 0, tzinfo=UTC), timezone="America/Chicago") == datetime(
        2026, 3, 8, 8, 0, tzinfo=UTC)
    # 01:30 happens twice on 1 November 2026: the first one (CDT) only.
    autumn = Daily(kind="daily", at=time(1, 30))
    first = next_due(autumn, after=datetime(2026, 11, 1, 5, 0, tzinfo=UTC), timezone="America/Chicago")
    assert first == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    assert next_due(autumn, after=first, timezone="America/Chicago") == datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
    period = PayPeriod(kind="pay_period", anchor=date(2026, 11, 1), length_days=14)
    assert pay_period(period, date(2026, 11, 14)) == (date(2026, 11, 1), date(2026, 11, 14))
    assert pay_period(period, date(2026, 11, 15)) == (date(2026, 11, 15), date(2026, 11, 28))
    assert pay_period(period, date(2026, 10, 31)) == (date(2026, 10, 18), date(2026, 10, 31))


@pytest.mark.parametrize(("values", "field"), [
    ({"target": "epic_optime", "person_key": "kronos_id"}, "person_key"),
    ({"target": "outlook", "person_key": "unique_id", "transport": {"kind": "http", "base_url": "http://x"}},
     "person_key"),
    ({"target": "epic_on_call_finder", "person_key": "kronos_idd"}, "person_key"),
    ({"target": "epic_on_call_finder", "transport": {"kind": "http", "base_url": "http://x"}}, "transport.kind"),
    ({"target": "epic_on_call_finder", "trigger": {"kind": "interval", "minutes": 0}}, "trigger"),
    ({"target": "epic_on_call_finder", "options": {"future_dayz": 3}}, "options"),
    ({"target": "epic_on_call_finder", "departments": ["CRAD"]}, "departments"),
    ({"target": "no_such_target"}, "target"),
    ({"target": "epic_on_call_finder", "notify": ["not an address"]}, "notify"),
])
def test_configuration_mistakes_are_refused_naming_the_field(
    db: Database, clock: FakeClock, tmp_path: Path, values: dict[str, object], field: str
) -> None:
    values.setdefault("transport", folder(tmp_path))
    with db.unit_of_work() as session, pytest.raises(Invalid) as refused:
        make_connector(session, clock, **values)
    assert refused.value.field == field


def test_an_unnamed_slot_goes_to_epic_as_a_placeholder_with_its_number(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    with db.unit_of_work() as session:
        card = department(session, "CARD").id
        schedule = scheduling.find_schedule(session=session, department_id=card, on_date=date(2026, 11, 24))
        assert schedule is not None
        night = next(s for s in scheduling.list_slots(session=session, schedule_id=schedule.id,
                                                      on_date=date(2026, 11, 24))
                     if s.assignment.code == "CARD-CALL2-NIGHT")
        locum = scheduling.SlotFields(placeholder_name="Locum cardiologist", placeholder_contact="+15550142000",
                                      notes="agency shift")
        scheduling.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=night.id, fields=locum)
        connector = make_connector(session, clock, target="epic_on_call_finder", departments=["CARD"],
                                   transport=folder(tmp_path), options={"past_days": 0, "future_days": 0,
                                                                        "placeholder_id": "PLACEHOLDER"})
        map_codes(session, clock, connector, {"CARD-CALL2-NIGHT": {"team_id": "CARD-ONCALL", "note_prefix": "NB:"}})
        run = runner.dry_run(session=session, clock=clock, actor=ADMIN, connector_id=connector.id)
    assert run.payload is not None
    [row] = list(csv.DictReader(io.StringIO(run.payload.decode())))
    assert (row["Provider ID"], row["Provider Name"], row["Phone"], row["Call Order"], row["Note"]) == (
        "PLACEHOLDER", "Locum cardiologist", "+15550142000", "2", "NB: agency shift")
