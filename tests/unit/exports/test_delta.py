"""Delta files across publish, change, unpublish and the first file of a new pay period."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.scheduling import service as scheduling
from carerelay.scheduling.models import Slot
from tests.exports_helpers import ADMIN, CARD, folder, make_connector, map_codes, run_now
from tests.scheduling_factories import department, person

WFD = {"segment_type": "Required", "comment": "carerelay"}


def _rows(payload: bytes | None) -> list[dict[str, str]]:
    assert payload is not None
    return list(csv.DictReader(io.StringIO(payload.decode())))


def _slot(db: Database, code: str, on: date) -> Slot:
    with db.unit_of_work() as session:
        assignment = scheduling.find_assignment(session=session, code=code)
        assert assignment is not None
        schedule = scheduling.find_schedule(session=session, department_id=assignment.department_id, on_date=on)
        assert schedule is not None
        slot = next(s for s in scheduling.list_slots(session=session, schedule_id=schedule.id, on_date=on)
                    if s.assignment_id == assignment.id)
        session.expunge(slot)
        return slot


def test_kronos_wfd_delta_across_change_unpublish_publish_and_a_new_pay_period(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    clock.set(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))  # 02:00 in Chicago, inside the 23–24 Nov period
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="kronos_wfd", departments=["CARD"], content="delta",
                                   trigger={"kind": "pay_period", "anchor": "2026-11-23", "length_days": 2},
                                   options={"include": {"exempt": ["call"], "non_exempt": ["call"]}},
                                   transport=folder(tmp_path), file_name="wfd_{run}.csv")
        map_codes(session, clock, connector, {code: WFD for code in CARD})
        cid = connector.id

    first = run_now(db, clock, cid)
    assert (first.status, first.content, first.period_start) == ("succeeded", "full", "2026-11-23")
    assert len(_rows(first.payload)) == 8 and {r["Action"] for r in _rows(first.payload)} == {"ADD"}
    assert (tmp_path / "out" / str(first.file_name)).read_bytes() == first.payload  # delivered what is kept

    tonight = _slot(db, "CARD-CALL1-NIGHT", date(2026, 11, 24))
    with db.unit_of_work() as session:
        lindqvist = person(session, "tlindqvist")
        scheduling.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=tonight.id,
                               fields=scheduling.SlotFields(person_id=lindqvist.id))
        kronos_id = lindqvist.kronos_id
    changed = run_now(db, clock, cid)
    assert changed.content == "delta"
    assert [(r["Action"], r["Employee ID"], r["Start Date Time"]) for r in _rows(changed.payload)] == [
        ("CHANGE", kronos_id, "2026-11-24T19:00")]

    quiet = run_now(db, clock, cid)
    assert quiet.status == "succeeded" and quiet.row_count == 0 and _rows(quiet.payload) == []

    with db.unit_of_work() as session:
        schedule_id = tonight.schedule_id
        scheduling.unpublish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule_id)
    withdrawn = run_now(db, clock, cid)
    assert [r["Action"] for r in _rows(withdrawn.payload)] == ["DELETE"] * 8
    assert kronos_id in {r["Employee ID"] for r in _rows(withdrawn.payload)}  # deletes carry what was sent

    with db.unit_of_work() as session:
        scheduling.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule_id)
    republished = run_now(db, clock, cid)
    assert [r["Action"] for r in _rows(republished.payload)] == ["ADD"] * 8

    clock.set(datetime(2026, 11, 25, 8, 0, tzinfo=UTC))  # the 25–26 Nov period begins
    new_period = run_now(db, clock, cid)
    rows = _rows(new_period.payload)
    assert (new_period.content, new_period.period_start) == ("full", "2026-11-25")
    assert {r["Action"] for r in rows} == {"ADD"} and len(rows) == 8
    assert {r["Shift Date"] for r in rows} == {"2026-11-25", "2026-11-26"}  # exactly the period's dates

    later = run_now(db, clock, cid)
    assert later.content == "delta" and later.row_count == 0


def test_new_innovations_first_file_is_everything_then_only_changes(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="new_innovations", departments=["CARD"],
                                   options={"past_days": 0, "future_days": 1}, transport=folder(tmp_path))
        map_codes(session, clock, connector, {code: {"duty_hour_name": "Call", "assignment_name": "Cardiology"}
                                              for code in CARD})
        cid = connector.id
    first = run_now(db, clock, cid)
    assert first.content == "full" and first.row_count == 8
    day = _slot(db, "CARD-CALL2-DAY", date(2026, 11, 25))
    with db.unit_of_work() as session:
        scheduling.remove_slot(session=session, clock=clock, actor=ADMIN, slot_id=day.id)
    second = run_now(db, clock, cid)
    assert [(r["Action"], r["Start Date"]) for r in _rows(second.payload)] == [("DELETE", "11/25/2026")]


def test_people_without_the_key_and_unmapped_assignments_are_listed_not_sent(
    db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="epic_on_call_finder", departments=["CARD"],
                                   options={"past_days": 0, "future_days": 0}, transport=folder(tmp_path))
        map_codes(session, clock, connector, {"CARD-CALL1-DAY": {"team_id": "C1"}})
        cid = connector.id
        assert department(session, "CARD").id in (connector.department_ids or [])
    run = run_now(db, clock, cid)
    assert run.status == "succeeded"
    assert {u["code"] for u in run.unmapped} == {"CARD-CALL2-DAY", "CARD-CALL1-NIGHT", "CARD-CALL2-NIGHT"}
    assert [e["username"] for e in run.excluded] == ["ecole"] and run.excluded[0]["reason"] == "no epic_ser_id"
    assert _rows(run.payload) == []  # today's CARD-CALL1-DAY is the resident, who has no SER id
