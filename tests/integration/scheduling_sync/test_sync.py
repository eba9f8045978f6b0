"""Vendor sync against local servers answering in QGenda's and Amion's shapes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import httpx2
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit.models import AuditEntry
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.scheduling import lookup, service
from carerelay.scheduling.models import Slot, SyncSource
from carerelay.scheduling.sync import engine
from tests.integration.scheduling_sync.vendors import VendorState, vendor_server
from tests.scheduling_factories import ADMIN, department, make_assignment, make_schedule, make_slot, person


@pytest.fixture
def vendor() -> Iterator[tuple[str, VendorState]]:
    with vendor_server() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=5) as client:
        yield client


def _ed(session: Session, clock: FakeClock) -> dict[str, int]:
    """ED (East Campus, America/New_York): day 07-19 and night 19-07, a published November 2026."""
    ed = department(session, "ED")
    day = make_assignment(session, clock, department_id=ed.id, code="ED-DAY", start=time(7), end=time(19),
                          kind="shift", name="ED Attending")
    night = make_assignment(session, clock, department_id=ed.id, code="ED-NIGHT", start=time(19), end=time(7),
                            kind="shift", name="ED Attending")
    schedule = make_schedule(session, clock, department_id=ed.id, starts_on=date(2026, 11, 1),
                             ends_on=date(2026, 11, 30))
    service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
    ids = {u: person(session, u).id for u in ("gwhitfield", "ydemir", "nbrennan")}
    return {"ed": ed.id, "day": day.id, "night": night.id, "schedule": schedule.id, **ids}


def _source(session: Session, clock: FakeClock, ids: dict[str, int], vendor: str, base_url: str,
            monkeypatch: pytest.MonkeyPatch) -> SyncSource:
    monkeypatch.setenv("CARERELAY_TEST_VENDOR_SECRET", "s3cret" if vendor == "qgenda" else "demo-site")
    source = engine.create_source(session=session, clock=clock, actor=ADMIN, vendor=vendor, name=f"ED {vendor}",
                                  department_id=ids["ed"], base_url=base_url + ("/v2" if vendor == "qgenda" else ""),
                                  account="CK-1", username="sync@example.org",
                                  secret_env="CARERELAY_TEST_VENDOR_SECRET")
    for external, username in (("S1", "gwhitfield"), ("S2", "ydemir"), ("S3", "nbrennan")):
        engine.map_person(session=session, clock=clock, actor=ADMIN, source_id=source.id, external_id=external,
                          person_id=ids[username])
    engine.map_assignment(session=session, clock=clock, actor=ADMIN, source_id=source.id, external_id="T-DAY",
                          assignment_id=ids["day"])
    engine.map_assignment(session=session, clock=clock, actor=ADMIN, source_id=source.id, external_id="T-NIGHT",
                          assignment_id=ids["night"])
    return source


def _entry(key: str, staff: str, task: str, start: datetime, hours: int, **extra: object) -> dict[str, object]:
    return {"ScheduleKey": key, "StaffKey": staff, "StaffFName": "F" + staff, "StaffLName": "L" + staff,
            "TaskKey": task, "TaskName": task, "StartDateUTC": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "EndDateUTC": (start + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ"), "IsPublished": True,
            "IsStruck": False, **extra}


def _utc(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def _vendor_slots(session: Session) -> list[tuple[str | None, int | None]]:
    rows = session.execute(select(Slot).where(Slot.source == "qgenda").order_by(Slot.starts_at)).scalars()
    return [(s.external_key, s.person_id) for s in rows]


def test_qgenda_pull_maps_reports_keeps_hand_entered_and_follows_changes(
    db: Database, clock: FakeClock, vendor: tuple[str, VendorState], http: httpx2.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, state = vendor
    with db.unit_of_work() as session:
        ids = _ed(session, clock)
        hand = make_slot(session, clock, schedule=service.get_schedule(session=session, schedule_id=ids["schedule"]),
                         assignment=service.get_assignment(session=session, assignment_id=ids["night"]),
                         on_date=date(2026, 11, 25), person_id=ids["nbrennan"])
        source = _source(session, clock, ids, "qgenda", base_url, monkeypatch)
    # Now is 2026-11-24 14:00Z (09:00 in New York); the window runs to 2026-11-26 14:00Z.
    state.qgenda_entries = [
        _entry("K1", "S1", "T-DAY", _utc(24, 12), 12),  # 24th 07-19, in progress
        _entry("K2", "S2", "T-NIGHT", _utc(25, 0), 12),  # 24th night
        _entry("K7", "S2", "T-DAY", _utc(25, 12), 12),  # 25th day
        _entry("K6", "S1", "T-NIGHT", _utc(26, 0), 12),  # 25th night: entered here by hand
        _entry("K3", "S9", "T-DAY", _utc(26, 12), 12),  # unknown person
        _entry("K4", "S1", "T-ECHO", _utc(26, 12), 8),  # unknown task
        _entry("K5", "S3", "T-DAY", _utc(26, 12), 12, IsPublished=False),
        _entry("K8", "S3", "T-DAY", _utc(28, 12), 12),  # beyond 48 h
    ]
    with db.unit_of_work() as session:
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert (run.status, run.fetched, run.created, run.updated, run.removed) == ("partial", 6, 3, 0, 0)
        assert sorted((u["kind"], u["id"]) for u in run.unmapped) == [("assignment", "T-ECHO"), ("person", "S9")]
        assert len(run.problems) == 1 and "entered by hand and is kept" in run.problems[0]["problem"]
        assert session.get(Slot, hand.id).person_id == ids["nbrennan"]  # type: ignore[union-attr]
        assert _vendor_slots(session) == [(f"{source.id}:K1", ids["gwhitfield"]), (f"{source.id}:K2", ids["ydemir"]),
                                          (f"{source.id}:K7", ids["ydemir"])]
        on = lookup.who_is_on(session=session, at=clock.now(), department_id=ids["ed"])
        assert [(o.person_id, o.reason) for o in on] == [
            (ids["gwhitfield"], "ED Attending — slot 2026-11-24 07:00–19:00 America/New_York, call order 1")]
        assert engine.due_sources(session=session, now=clock.now()) == []
    clock.advance(minutes=15)
    state.qgenda_entries[1]["StaffKey"] = "S3"  # the vendor swapped the night of the 24th
    del state.qgenda_entries[2]  # and dropped the 25th day
    with db.unit_of_work() as session:
        assert [s.id for s in engine.due_sources(session=session, now=clock.now())] == [source.id]
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert (run.created, run.updated, run.removed) == (0, 1, 1)
        assert _vendor_slots(session) == [(f"{source.id}:K1", ids["gwhitfield"]), (f"{source.id}:K2", ids["nbrennan"])]
        actions = [c.action for c in service.list_changes(session=session, schedule_id=ids["schedule"])]
        assert actions[-2:] == ["slot.sync", "slot.remove"]
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert (run.created, run.updated, run.removed) == (0, 0, 0)


def test_a_vendor_failure_fails_the_run_and_changes_nothing(
    db: Database, clock: FakeClock, vendor: tuple[str, VendorState], http: httpx2.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, state = vendor
    with db.unit_of_work() as session:
        ids = _ed(session, clock)
        source = _source(session, clock, ids, "qgenda", base_url, monkeypatch)
        state.qgenda_entries = [_entry("K1", "S1", "T-DAY", _utc(24, 12), 12)]
        engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        state.fail_with = 503
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert run.status == "failed" and run.error is not None and "503" in run.error
        assert len(_vendor_slots(session)) == 1  # a failed pull removes nothing
        monkeypatch.setenv("CARERELAY_TEST_VENDOR_SECRET", "wrong")
        state.fail_with = None
        refused = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert refused.status == "failed" and "login refused (401)" in (refused.error or "")


def test_amion_report_is_pulled_day_by_day_and_mismatched_hours_are_reported(
    db: Database, clock: FakeClock, vendor: tuple[str, VendorState], http: httpx2.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, state = vendor
    with db.unit_of_work() as session:
        ids = _ed(session, clock)
        source = _source(session, clock, ids, "amion", base_url, monkeypatch)
    state.amion_days = {
        (2026, 11, 24): ['"Whitfield, Grace",S1,,"ED Day",T-DAY,,11-24-26,0700,1900',
                         '"Demir, Yusuf",S2,,"ED Night",T-NIGHT,,11-24-26,1900,0700'],
        (2026, 11, 25): ['"Demir, Yusuf",S2,,"ED Day",T-DAY,,11-25-26,0800,1900',
                         '"Locum, Lee",L77,,"ED Night",T-NIGHT,,11-25-26,1900,0700'],
    }
    with db.unit_of_work() as session:
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert (run.status, run.created) == ("partial", 2)
        assert [u["id"] for u in run.unmapped] == ["L77"]
        assert len(run.problems) == 1 and "differ from ED-DAY" in run.problems[0]["problem"]
        slots = session.execute(select(Slot).where(Slot.source == "amion").order_by(Slot.starts_at)).scalars().all()
        assert [(s.on_date, s.person_id, s.starts_at) for s in slots] == [
            (date(2026, 11, 24), ids["gwhitfield"], _utc(24, 12)), (date(2026, 11, 24), ids["ydemir"], _utc(25, 0))]
    days = sorted({r.split("Day=")[1].split("&")[0] for r in state.requests if "Rpt=619" in r})
    assert days == ["23", "24", "25", "26"]


def test_amion_never_overwrites_a_slot_entered_by_hand(
    db: Database, clock: FakeClock, vendor: tuple[str, VendorState], http: httpx2.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, state = vendor
    with db.unit_of_work() as session:
        ids = _ed(session, clock)
        hand = make_slot(session, clock, schedule=service.get_schedule(session=session, schedule_id=ids["schedule"]),
                         assignment=service.get_assignment(session=session, assignment_id=ids["night"]),
                         on_date=date(2026, 11, 24), person_id=ids["nbrennan"])
        source = _source(session, clock, ids, "amion", base_url, monkeypatch)
    state.amion_days = {(2026, 11, 24): ['"Whitfield, Grace",S1,,"ED Day",T-DAY,,11-24-26,0700,1900',
                                         '"Demir, Yusuf",S2,,"ED Night",T-NIGHT,,11-24-26,1900,0700']}
    for _ in range(2):  # and again on the next pull: still kept, still reported
        with db.unit_of_work() as session:
            run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
            assert (run.status, run.created, run.updated, run.removed) == ("partial", 0 if _ else 1, 0, 0)
            assert [p["problem"] for p in run.problems] == [
                f"slot {hand.id} (ED-NIGHT on 2026-11-24) was entered by hand and is kept"]
            kept = session.get_one(Slot, hand.id)
            assert (kept.person_id, kept.source, kept.external_key) == (ids["nbrennan"], "manual", None)
            amion = session.execute(select(Slot.on_date, Slot.assignment_id).where(Slot.source == "amion")).all()
            assert amion == [(date(2026, 11, 24), ids["day"])]
        clock.advance(minutes=15)


SHIFTADMIN_GROUPS = [
    {"group_id": 23, "name": "Emergency Department", "short_name": "ED", "time_zone": "America/New_York",
     "is_active": 1},
    {"group_id": 24, "name": "Urgent Care", "short_name": "UC", "time_zone": "America/Chicago", "is_active": 1},
]


def _sa(sid: int, user: int, shift: int | None, short: str, start: str, end: str, group: int = 23) -> dict[str, object]:
    row: dict[str, object] = {
        "scheduled_shift_id": sid, "group_id": group, "user_id": user, "employee_id": f"E{user}",
        "first_name": f"F{user}", "last_name": f"L{user}", "shift_name": f"ED {short}", "shift_short_name": short,
        "shift_start": start, "shift_end": end}
    if shift is not None:
        row["shift_id"] = shift
    return row


def _shiftadmin_source(session: Session, clock: FakeClock, ids: dict[str, int], base_url: str,
                       monkeypatch: pytest.MonkeyPatch) -> SyncSource:
    monkeypatch.setenv("CARERELAY_TEST_SHIFTADMIN_PASSWORD", "s3cret")
    source = engine.create_source(session=session, clock=clock, actor=ADMIN, vendor="shiftadmin", name="ED ShiftAdmin",
                                  department_id=ids["ed"], base_url=f"{base_url}/vcare", account="23",
                                  username="sync@example.org", secret_env="CARERELAY_TEST_SHIFTADMIN_PASSWORD")
    for external, username in (("501", "gwhitfield"), ("502", "ydemir"), ("503", "nbrennan")):
        engine.map_person(session=session, clock=clock, actor=ADMIN, source_id=source.id, external_id=external,
                          person_id=ids[username])
    engine.map_assignment(session=session, clock=clock, actor=ADMIN, source_id=source.id, external_id="7",
                          assignment_id=ids["day"])
    engine.map_assignment(session=session, clock=clock, actor=ADMIN, source_id=source.id, external_id="8",
                          assignment_id=ids["night"])
    return source


def test_shiftadmin_pull_maps_reports_keeps_hand_entered_and_follows_changes(
    db: Database, clock: FakeClock, vendor: tuple[str, VendorState], http: httpx2.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, state = vendor
    with db.unit_of_work() as session:
        ids = _ed(session, clock)
        hand = make_slot(session, clock, schedule=service.get_schedule(session=session, schedule_id=ids["schedule"]),
                         assignment=service.get_assignment(session=session, assignment_id=ids["night"]),
                         on_date=date(2026, 11, 25), person_id=ids["nbrennan"])
        source = _shiftadmin_source(session, clock, ids, base_url, monkeypatch)
    state.shiftadmin_groups = SHIFTADMIN_GROUPS
    # Local New York wall-clock times, as ShiftAdmin gives them (month/day not zero-padded).
    state.shiftadmin_shifts = [
        _sa(101, 501, 7, "Day", "11/24/2026 07:00", "11/24/2026 19:00"),  # in progress
        _sa(102, 502, 8, "Night", "11/24/2026 19:00", "11/25/2026 07:00"),
        _sa(103, 501, 8, "Night", "11/25/2026 19:00", "11/26/2026 07:00"),  # entered here by hand
        _sa(104, 599, 7, "Day", "11/26/2026 07:00", "11/26/2026 19:00"),  # unknown person
        _sa(105, 503, None, "Echo", "11/26/2026 08:00", "11/26/2026 16:00"),  # no shift_id: by short name
        _sa(106, 502, 7, "Day", "11/25/2026 08:00", "11/25/2026 20:00", group=24),  # another group
        _sa(107, 503, 7, "Day", "11/28/2026 07:00", "11/28/2026 19:00"),  # beyond 48 h
    ]
    with db.unit_of_work() as session:
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert (run.status, run.fetched, run.created, run.updated, run.removed) == ("partial", 5, 2, 0, 0), run.error
        assert sorted((u["kind"], u["id"], u["name"]) for u in run.unmapped) == [
            ("assignment", "Echo", "ED Echo"), ("person", "599", "F599 L599")]
        assert [p["problem"] for p in run.problems] == [
            f"slot {hand.id} (ED-NIGHT on 2026-11-25) was entered by hand and is kept"]
        slots = session.execute(select(Slot).where(Slot.source == "shiftadmin").order_by(Slot.starts_at)).scalars()
        assert [(s.external_key, s.person_id, s.starts_at) for s in slots] == [
            (f"{source.id}:101", ids["gwhitfield"], _utc(24, 12)), (f"{source.id}:102", ids["ydemir"], _utc(25, 0))]
    with db.unit_of_work() as session:  # audit entries are chained as the run's transaction commits
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "scheduling.sync",
                                                         AuditEntry.object_id == str(source.id))).scalar_one()
        assert entry.actor_name == f"sync:shiftadmin:{source.id}" and entry.outcome == "success"
        assert entry.detail["run_id"] == run.id and entry.detail["created"] == 2 and entry.detail["unmapped"] == 2
    assert state.shiftadmin_bodies[-1] == {"endpoint": "org_scheduled_shifts", "start_date": "2026-11-23",
                                           "end_date": "2026-11-27", "group_id": 23, "sort": "shift_start:ASC"}
    clock.advance(minutes=15)
    state.shiftadmin_shifts[1]["user_id"] = 503  # ShiftAdmin swapped the night of the 24th
    with db.unit_of_work() as session:
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert (run.created, run.updated, run.removed) == (0, 1, 0)
        night = session.execute(select(Slot).where(Slot.external_key == f"{source.id}:102")).scalar_one()
        assert night.person_id == ids["nbrennan"] and session.get_one(Slot, hand.id).person_id == ids["nbrennan"]
        assert [c.action for c in service.list_changes(session=session, schedule_id=ids["schedule"])][-1] == "slot.sync"


def test_shiftadmin_refusals_fail_the_run_with_the_reason(
    db: Database, clock: FakeClock, vendor: tuple[str, VendorState], http: httpx2.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, state = vendor
    state.shiftadmin_groups = SHIFTADMIN_GROUPS
    with db.unit_of_work() as session:
        ids = _ed(session, clock)
        source = _shiftadmin_source(session, clock, ids, base_url, monkeypatch)
        monkeypatch.setenv("CARERELAY_TEST_SHIFTADMIN_PASSWORD", "wrong")
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert run.status == "failed" and "ShiftAdmin refused the API user (401)" in (run.error or "")
        monkeypatch.setenv("CARERELAY_TEST_SHIFTADMIN_PASSWORD", "s3cret")
        source.account = "99"
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert run.status == "failed" and "ShiftAdmin has no group 99" in (run.error or "")
        source.account = "23"
        state.shiftadmin_shifts = [_sa(201, 501, 7, "Day", "tomorrow", "11/24/2026 19:00")]
        run = engine.run_sync(session=session, clock=clock, source_id=source.id, http=http)
        assert run.status == "failed" and "shift_start 'tomorrow' is not a date and time" in (run.error or "")
