"""Scheduling services: validation, publishing and the change log, swaps, time off, lookup."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carerelay.audit.models import AuditEntry
from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Conflict, Forbidden, Invalid
from carerelay.scheduling import csv_import, lookup, service
from carerelay.scheduling.models import Schedule, ScheduleChange, Slot
from tests.scheduling_factories import (
    ADMIN,
    department,
    make_assignment,
    make_schedule,
    make_slot,
    person,
)

DAY, NIGHT = (time(7), time(19)), (time(19), time(7))
JAN = (date(2027, 1, 1), date(2027, 1, 31))


def _icu(session: Session, clock: FakeClock) -> tuple[int, Schedule, dict[str, int]]:
    """ICU (America/Chicago): physicians valmeida and cdubois, a January 2027 draft."""
    icu = department(session, "ICU")
    schedule = make_schedule(session, clock, department_id=icu.id, starts_on=JAN[0], ends_on=JAN[1])
    people = {u: person(session, u).id for u in ("valmeida", "cdubois", "hlee", "aokafor")}
    return icu.id, schedule, people


def _count(session: Session, model: type[object]) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_double_booking_is_refused_unless_an_assignment_allows_overlap(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        night = make_assignment(session, clock, department_id=icu, code="ICU-NIGHT", start=NIGHT[0], end=NIGHT[1])
        admin = make_assignment(session, clock, department_id=icu, code="ICU-ADMIN", start=time(9), end=time(11),
                                kind="admin", allow_overlap=True)
        clinic = make_assignment(session, clock, department_id=icu, code="ICU-CLINIC", start=time(12),
                                 end=time(20), kind="shift")
        make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 5),
                  person_id=people["valmeida"])
        # Back to back is not overlap: the day ends at 19:00, the night starts at 19:00.
        make_slot(session, clock, schedule=schedule, assignment=night, on_date=date(2027, 1, 5),
                  person_id=people["valmeida"])
        make_slot(session, clock, schedule=schedule, assignment=admin, on_date=date(2027, 1, 5),
                  person_id=people["valmeida"])
        with pytest.raises(Conflict) as refused:
            make_slot(session, clock, schedule=schedule, assignment=clinic, on_date=date(2027, 1, 5),
                      person_id=people["valmeida"])
        assert refused.value.field == "person_id" and "ICU-DAY" in refused.value.message
        with pytest.raises(Conflict):
            make_slot(session, clock, schedule=schedule, assignment=admin, on_date=date(2027, 1, 5),
                      person_id=people["valmeida"])
        # The night of the 5th runs into the morning of the 6th.
        with pytest.raises(Conflict) as overnight:
            make_slot(session, clock, schedule=schedule, assignment=make_assignment(
                session, clock, department_id=icu, code="ICU-EARLY", start=time(5), end=time(9)),
                on_date=date(2027, 1, 6), person_id=people["valmeida"])
        assert "ICU-NIGHT" in overnight.value.message


def test_person_must_belong_to_the_department_or_be_cross_credentialed(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        with pytest.raises(Invalid) as refused:
            make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 2),
                      person_id=people["aokafor"])
        assert refused.value.field == "person_id" and "cross-credentialed" in refused.value.message
        service.grant_cross_credential(session=session, clock=clock, actor=ADMIN, person_id=people["aokafor"],
                                       department_id=icu)
        slot = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 2),
                         person_id=people["aokafor"])
        assert slot.person_id == people["aokafor"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"on_date": date(2027, 2, 1)}, "on_date"),
    ({"person_id": None}, "person_id"),
    ({"person_id": None, "placeholder": "Locum"}, "placeholder_contact"),
    ({"person_id": 99999999}, "person_id"),
])
def test_bad_slots_name_the_field_and_write_nothing(
    db: Database, clock: FakeClock, kwargs: dict[str, object], field: str
) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        before = (_count(session, Slot), _count(session, AuditEntry))
        args: dict[str, object] = {"on_date": date(2027, 1, 3), "person_id": people["hlee"], **kwargs}
        with pytest.raises(Invalid) as refused:
            make_slot(session, clock, schedule=schedule, assignment=day, **args)  # type: ignore[arg-type]
        assert refused.value.field == field
        assert (_count(session, Slot), _count(session, AuditEntry)) == before


def test_schedules_refuse_inverted_and_overlapping_ranges(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, _, _ = _icu(session, clock)
        with pytest.raises(Invalid) as inverted:
            make_schedule(session, clock, department_id=icu, starts_on=date(2027, 3, 10), ends_on=date(2027, 3, 1))
        assert inverted.value.field == "ends_on"
        with pytest.raises(Conflict) as overlapping:
            make_schedule(session, clock, department_id=icu, starts_on=date(2027, 1, 20), ends_on=date(2027, 2, 5))
        assert overlapping.value.field == "starts_on"


def test_a_scheduler_edits_only_their_own_department(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        sam = person(session, "sscheduler")
        actor = Actor(person_id=sam.id, username=sam.username, roles=frozenset({"scheduler"}))
        with pytest.raises(Forbidden):
            make_schedule(session, clock, department_id=department(session, "HOSP").id, starts_on=JAN[0],
                          ends_on=JAN[1], actor=actor)
        own = make_schedule(session, clock, department_id=department(session, "CARD").id, starts_on=JAN[0],
                            ends_on=JAN[1], actor=actor)
        assert own.status == "draft"


def test_publish_cuts_versions_and_later_changes_are_logged(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        first = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 2),
                          person_id=people["valmeida"])
        assert _count(session, ScheduleChange) == 0  # drafts are not change-logged
        v1 = service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        assert v1.version == 1 and [s["username"] for s in v1.slots] == ["valmeida"]
        clock.advance(minutes=5)
        service.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=first.id,
                            fields=service.SlotFields(person_id=people["cdubois"], notes="covering"))
        second = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 3),
                           placeholder="Locum", contact="+1 312 555 0100")
        service.remove_slot(session=session, clock=clock, actor=ADMIN, slot_id=second.id)
        changes = service.list_changes(session=session, schedule_id=schedule.id, since_version=1)
        assert [c.action for c in changes] == ["slot.update", "slot.add", "slot.remove"]
        assert changes[0].before is not None and changes[0].before["username"] == "valmeida"
        assert changes[0].after is not None and changes[0].after["username"] == "cdubois"
        assert changes[0].actor_name == "test" and changes[0].at == clock.now()
        v2 = service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        assert v2.version == 2 and [s["username"] for s in v2.slots] == ["cdubois"]
        make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 4),
                  person_id=people["valmeida"])
        assert [c.action for c in service.list_changes(session=session, schedule_id=schedule.id,
                                                       since_version=2)] == ["slot.add"]


def test_assignment_hours_cannot_change_under_existing_slots(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 2),
                  person_id=people["valmeida"])
        with pytest.raises(Conflict) as refused:
            service.update_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=day.id,
                                      changes={"start_time": time(8)})
        assert refused.value.field == "start_time"
        renamed = service.update_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=day.id,
                                            changes={"name": "ICU Day", "mapping": {"epic": "ICU1"}})
        assert renamed.name == "ICU Day" and renamed.mapping == {"epic": "ICU1"}


def test_swap_give_away_and_trade(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        mine = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 2),
                         person_id=people["valmeida"])
        theirs = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 3),
                           person_id=people["cdubois"])
        service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        valmeida = Actor(person_id=people["valmeida"], username="valmeida", roles=frozenset({"clinician"}))
        trade = service.request_swap(session=session, clock=clock, actor=valmeida, slot_id=mine.id,
                                     to_person_id=people["cdubois"], other_slot_id=theirs.id)
        with pytest.raises(Forbidden):
            service.decide_swap(session=session, clock=clock, actor=valmeida, swap_id=trade.id, approve=True)
        service.decide_swap(session=session, clock=clock, actor=ADMIN, swap_id=trade.id, approve=True)
        assert (mine.person_id, theirs.person_id) == (people["cdubois"], people["valmeida"])
        assert mine.revision == 1
        with pytest.raises(Conflict):
            service.decide_swap(session=session, clock=clock, actor=ADMIN, swap_id=trade.id, approve=False)
        actions = [c.action for c in service.list_changes(session=session, schedule_id=schedule.id)]
        assert actions == ["slot.swap", "slot.swap"]


def test_swap_into_a_double_booking_is_refused_and_changes_nothing(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        day2 = make_assignment(session, clock, department_id=icu, code="ICU-DAY2", start=DAY[0], end=DAY[1],
                               call_order=2)
        mine = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 2),
                         person_id=people["valmeida"])
        make_slot(session, clock, schedule=schedule, assignment=day2, on_date=date(2027, 1, 2),
                  person_id=people["cdubois"])
        swap = service.request_swap(session=session, clock=clock, actor=ADMIN, slot_id=mine.id,
                                    to_person_id=people["cdubois"])
    with pytest.raises(Conflict), db.unit_of_work() as session:
        service.decide_swap(session=session, clock=clock, actor=ADMIN, swap_id=swap.id, approve=True)
    with db.unit_of_work() as session:
        assert session.get(Slot, mine.id).person_id == people["valmeida"]  # type: ignore[union-attr]
        service.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=mine.id,
                            fields=service.SlotFields(person_id=people["hlee"]))
    with pytest.raises(Conflict) as moved, db.unit_of_work() as session:
        service.decide_swap(session=session, clock=clock, actor=ADMIN, swap_id=swap.id, approve=True)
    assert "changed hands" in moved.value.message
    with db.unit_of_work() as session:
        assert session.get(Slot, mine.id).person_id == people["hlee"]  # type: ignore[union-attr]
        assert service.list_swaps(session=session, actor=ADMIN, status="pending")[-1].id == swap.id


def test_time_off_blocks_slots_and_cannot_be_approved_over_existing_ones(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        slot = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 10),
                         person_id=people["valmeida"])
        request = service.request_time_off(session=session, clock=clock, actor=ADMIN, person_id=people["valmeida"],
                                           starts_on=date(2027, 1, 9), ends_on=date(2027, 1, 12), reason="leave")
        with pytest.raises(Conflict) as busy:
            service.decide_time_off(session=session, clock=clock, actor=ADMIN, request_id=request.id, approve=True)
        assert f"slot {slot.id}" in busy.value.message
        service.remove_slot(session=session, clock=clock, actor=ADMIN, slot_id=slot.id)
        approved = service.decide_time_off(session=session, clock=clock, actor=ADMIN, request_id=request.id,
                                           approve=True)
        assert approved.status == "approved" and approved.decided_by == "test"
        with pytest.raises(Conflict) as off:
            make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 11),
                      person_id=people["valmeida"])
        assert off.value.field == "person_id" and "time off" in off.value.message
        with pytest.raises(Invalid):
            service.request_time_off(session=session, clock=clock, actor=ADMIN, person_id=people["valmeida"],
                                     starts_on=date(2027, 1, 9), ends_on=date(2027, 1, 1))


def test_lookup_counts_only_published_schedules_in_call_order_with_reasons(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        second = make_assignment(session, clock, department_id=icu, code="ICU-CALL2", start=DAY[0], end=DAY[1],
                                 name="ICU On Call", call_order=2)
        first = make_assignment(session, clock, department_id=icu, code="ICU-CALL1", start=DAY[0], end=DAY[1],
                                name="ICU On Call", call_order=1)
        off = make_assignment(session, clock, department_id=icu, code="ICU-OFF", start=DAY[0], end=DAY[1],
                              kind="off", allow_overlap=True)
        make_slot(session, clock, schedule=schedule, assignment=second, on_date=date(2027, 1, 6),
                  placeholder="Agency intensivist", contact="+1 312 555 0199")
        make_slot(session, clock, schedule=schedule, assignment=first, on_date=date(2027, 1, 6),
                  person_id=people["cdubois"])
        make_slot(session, clock, schedule=schedule, assignment=off, on_date=date(2027, 1, 6),
                  person_id=people["valmeida"])
        at = datetime(2027, 1, 6, 14, 0, tzinfo=UTC)  # 08:00 in Chicago
        assert lookup.who_is_on(session=session, at=at, department_id=icu) == []
        service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        found = lookup.who_is_on(session=session, at=at, department_id=icu)
        assert [(o.call_order, o.person_id, o.name) for o in found] == [
            (1, people["cdubois"], "Dr. Chloe Dubois"), (2, None, "Agency intensivist (placeholder)")]
        assert found[0].reason == "ICU On Call — slot 2027-01-06 07:00–19:00 America/Chicago, call order 1"
        assert found[1].contact == "+1 312 555 0199"
        assert [o.person_id for o in lookup.who_is_on(session=session, at=at, assignment_id=off.id)] == []
        assert lookup.who_is_on(session=session, at=at - timedelta(hours=1, seconds=1), department_id=icu) == []
        assert lookup.who_is_on(session=session, at=at + timedelta(hours=11), department_id=icu) == []
        with pytest.raises(Invalid):
            lookup.who_is_on(session=session, at=at)


def test_on_call_now_from_the_demo_month(db: Database, clock: FakeClock) -> None:
    """The FakeClock's 2026-11-24 14:00Z is 08:00 in Chicago and 09:00 in New York."""
    with db.unit_of_work() as session:
        coverage = {c.department_code: c for c in lookup.on_call_now(session=session, at=clock.now())}
        assert set(coverage) == {"CARD", "HOSP", "NEURO"}
        card = coverage["CARD"]
        assert [(o.assignment_code, o.call_order) for o in card.now] == [("CARD-CALL1-DAY", 1),
                                                                         ("CARD-CALL2-DAY", 2)]
        assert card.now[0].reason == "Cardiology On Call — slot 2026-11-24 07:00–19:00 America/Chicago, call order 1"
        assert {o.assignment_code for o in card.next} == {"CARD-CALL1-NIGHT", "CARD-CALL2-NIGHT"}
        assert all(o.starts_at == datetime(2026, 11, 25, 1, 0, tzinfo=UTC) for o in card.next)
        neuro = coverage["NEURO"]
        assert neuro.now[0].reason.startswith("Neurology On Call — slot 2026-11-24 07:00–2026-11-25 07:00 "
                                              "America/New_York")
        assert [o.starts_at for o in neuro.next] == [datetime(2026, 11, 25, 12, 0, tzinfo=UTC)]
        assert coverage["HOSP"].now[0].assignment_name == "Hospitalist"


def test_time_off_for_a_person_without_department_needs_a_system_admin(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        operator = person(session, "ooperator")
        sam = person(session, "sscheduler")
        scheduler = Actor(person_id=sam.id, username=sam.username, roles=frozenset({"scheduler"}))
        with pytest.raises(Forbidden):
            service.request_time_off(session=session, clock=clock, actor=scheduler, person_id=operator.id,
                                     starts_on=date(2027, 2, 1), ends_on=date(2027, 2, 2))
        admin = Actor(person_id=person(session, "admin").id, username="admin", roles=frozenset({"system_admin"}))
        granted = service.request_time_off(session=session, clock=clock, actor=admin, person_id=operator.id,
                                           starts_on=date(2027, 2, 1), ends_on=date(2027, 2, 2))
        assert granted.status == "pending" and granted.requested_by == "admin"
        own = Actor(person_id=operator.id, username=operator.username, roles=frozenset({"operator"}))
        assert service.request_time_off(session=session, clock=clock, actor=own, person_id=operator.id,
                                        starts_on=date(2027, 3, 1), ends_on=date(2027, 3, 1)).person_id == operator.id


def test_only_the_person_on_a_slot_or_an_editor_requests_its_swap(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        slot = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 2),
                         placeholder="Locum", contact="555-0100")
        stranger = Actor(person_id=people["hlee"], username="hlee", roles=frozenset({"nurse"}))
        with pytest.raises(Forbidden):
            service.request_swap(session=session, clock=clock, actor=stranger, slot_id=slot.id,
                                 to_person_id=people["cdubois"])
        anonymous = Actor(person_id=None, username="anonymous")
        with pytest.raises(Forbidden):
            service.request_swap(session=session, clock=clock, actor=anonymous, slot_id=slot.id,
                                 to_person_id=people["cdubois"])


def test_every_scheduling_change_writes_its_audit_entry(db: Database, clock: FakeClock) -> None:
    """Who, what and which object, in the same transaction as the change (positive, one per change)."""
    with db.unit_of_work() as session:
        last = session.execute(select(func.max(AuditEntry.seq))).scalar_one()
        icu, schedule, people = _icu(session, clock)
        day = make_assignment(session, clock, department_id=icu, code="ICU-DAY", start=DAY[0], end=DAY[1])
        service.update_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=day.id,
                                  changes={"name": "ICU Day"})
        service.grant_cross_credential(session=session, clock=clock, actor=ADMIN, person_id=people["aokafor"],
                                       department_id=icu)
        mine = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 2),
                         person_id=people["valmeida"])
        theirs = make_slot(session, clock, schedule=schedule, assignment=day, on_date=date(2027, 1, 3),
                           person_id=people["cdubois"])
        report = csv_import.import_slots_csv(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id,
                                             text="date,assignment,person\n2027-01-04,ICU-DAY,aokafor\n")
        assert report.imported == 1
        service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        service.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=mine.id,
                            fields=service.SlotFields(person_id=people["hlee"]))
        swap = service.request_swap(session=session, clock=clock, actor=ADMIN, slot_id=theirs.id,
                                    to_person_id=people["valmeida"])
        service.decide_swap(session=session, clock=clock, actor=ADMIN, swap_id=swap.id, approve=True)
        service.remove_slot(session=session, clock=clock, actor=ADMIN, slot_id=mine.id)
        leave = service.request_time_off(session=session, clock=clock, actor=ADMIN, person_id=people["cdubois"],
                                         starts_on=date(2027, 1, 20), ends_on=date(2027, 1, 21))
        service.decide_time_off(session=session, clock=clock, actor=ADMIN, request_id=leave.id, approve=False)
        service.revoke_cross_credential(session=session, clock=clock, actor=ADMIN, person_id=people["aokafor"],
                                        department_id=icu)
    with db.unit_of_work() as session:  # entries join the hash chain as their transaction commits
        entries = session.execute(select(AuditEntry).where(AuditEntry.seq > (last or 0))
                                  .order_by(AuditEntry.seq)).scalars().all()
        written = [(e.action, e.object_type, e.object_id) for e in entries]
        assert written == [
            ("scheduling.create_schedule", "schedule", str(schedule.id)),
            ("scheduling.create_assignment", "assignment", str(day.id)),
            ("scheduling.update_assignment", "assignment", str(day.id)),
            ("scheduling.grant_cross_credential", "person", str(people["aokafor"])),
            ("scheduling.add_slot", "slot", str(mine.id)),
            ("scheduling.add_slot", "slot", str(theirs.id)),
            ("scheduling.import_slots", "schedule", str(schedule.id)),
            ("scheduling.publish_schedule", "schedule", str(schedule.id)),
            ("scheduling.slot_update", "slot", str(mine.id)),
            ("scheduling.request_swap", "swap", str(swap.id)),
            ("scheduling.slot_swap", "slot", str(theirs.id)),
            ("scheduling.decide_swap", "swap", str(swap.id)),
            ("scheduling.remove_slot", "slot", str(mine.id)),
            ("scheduling.request_time_off", "time_off", str(leave.id)),
            ("scheduling.decide_time_off", "time_off", str(leave.id)),
            ("scheduling.revoke_cross_credential", "person", str(people["aokafor"])),
        ]
        assert {e.actor_name for e in entries} == {"test"} and all(e.outcome == "success" for e in entries)
        by_action = {e.action: e for e in entries}
        assert by_action["scheduling.publish_schedule"].detail.get("version") == 1
        assert by_action["scheduling.decide_swap"].detail == {"status": "approved"}
