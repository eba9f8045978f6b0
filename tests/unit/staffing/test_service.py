"""The rules every assignment passes, whichever source it comes from (staffing/service.py docstring).

Runs on the demo hospital: on 4W the day shift (07:00–19:00 Chicago; the FakeClock starts at 08:00)
has Dana Whitaker in charge and Carol Nurse on 411–412, the night Greta Olsen and Luis Ferreira.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from carerelay.alerts.models import Alert, AlertRecipient
from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Conflict, Forbidden, Invalid
from carerelay.directory.models import Person
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.parser import parse
from carerelay.integrations.hl7.processor import process_message
from carerelay.patients.service import ResultPolicy
from carerelay.staffing import file_import, service
from carerelay.staffing.models import StaffAssignment, StaffingConflict
from tests.hl7support import SAMPLES
from tests.staffing_support import ADMIN, DAY_START, NIGHT_START, assign, csv_bytes, file_feed, pid, who

FEED = Feed(name="adt", port=0, timezone="America/Chicago")


def _adt(db: Database, clock: FakeClock, sample: str, **replacements: str) -> str:
    text = (SAMPLES / sample).read_text()
    for old, new in replacements.items():
        text = text.replace(old.replace("_", "^"), new.replace("_", "^"))
    with db.unit_of_work() as session:
        outcome = process_message(session=session, clock=clock, actor=Actor(person_id=None, username="hl7:adt"),
                                  parsed=parse(text.encode()), feed=FEED, policy=ResultPolicy(),
                                  stat_priorities=("S",), message_id=None)
    return outcome.note


def test_default_window_is_the_units_shift_in_progress(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        change = assign(session, clock, "4W", "nurse", "kasante", "401", "A")
        row = change.assignment
        assert change.outcome == "created" and row is not None
        assert (row.starts_at, row.ends_at) == (DAY_START, NIGHT_START)
        assert who(session, "location:4W/401/A/nurse", clock.now()) == ["kasante"]
        assert who(session, "location:4W/401/A/nurse", NIGHT_START + timedelta(minutes=1)) == ["golsen"]


@pytest.mark.parametrize(("args", "field", "words"), [
    ({"unit": "9Z", "role": "nurse", "room": "1", "bed": "A"}, "unit", "no unit '9Z'"),
    ({"unit": "4W", "role": "nurse", "room": "499", "bed": "A"}, "room", "no room '499'"),
    ({"unit": "4W", "role": "nurse", "room": "412", "bed": "Z"}, "bed", "no bed 412-Z"),
    ({"unit": "4W", "role": "nurse", "bed": "A"}, "room", "needs its room"),
    ({"unit": "4W", "role": "chaplain", "room": "412", "bed": "A"}, "role", "unknown care role"),
    ({"unit": "4W", "role": "charge_nurse", "room": "412", "bed": "A"}, "bed", "whole unit"),
    ({"unit": "4W", "role": "unit clerk", "room": "412"}, "room", "whole unit"),
])
def test_bad_targets_name_the_field(db: Database, clock: FakeClock, args: dict[str, str], field: str,
                                    words: str) -> None:
    with db.unit_of_work() as session, pytest.raises(Invalid) as refused:
        service.assign(session=session, clock=clock, actor=ADMIN,
                       item=service.AssignmentIn(person_id=pid(session, "kasante"), unit=args["unit"],
                                                 role=args["role"], room=args.get("room", ""), bed=args.get("bed", "")))
    assert refused.value.field == field and words in refused.value.message


def test_bad_people_and_times_name_the_field(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        for item, field in ((service.AssignmentIn(unit="4W", role="tech", person_id=999999), "person_id"),
                            (service.AssignmentIn(unit="4W", role="tech", person_id=pid(session, "amercer"),
                                                  starts_at=clock.now() + timedelta(hours=2),
                                                  ends_at=clock.now() + timedelta(hours=1)), "ends_at"),
                            (service.AssignmentIn(unit="4W", role="tech", person_id=pid(session, "amercer"),
                                                  ends_at=clock.now() + timedelta(days=9)), "ends_at")):
            with pytest.raises(Invalid) as refused:
                service.assign(session=session, clock=clock, actor=ADMIN, item=item)
            assert refused.value.field == field
        session.get_one(Person, pid(session, "amercer")).active = False
        with pytest.raises(Invalid, match="inactive"):
            assign(session, clock, "4W", "tech", "amercer")


def test_a_second_primary_nurse_for_a_bed_is_refused_unless_replacing(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        with pytest.raises(Conflict) as taken:
            assign(session, clock, "4W", "primary_nurse", "kasante", "412", "B")
        assert taken.value.field == "bed"
        assert "4W-412-B already has Carol Nurse, RN as primary nurse" in taken.value.message
        assert "replace=true" in taken.value.message
        clock.advance(minutes=30)
        change = assign(session, clock, "4W", "primary_nurse", "kasante", "412", "B", replace=True)
        assert change.assignment is not None and change.assignment.starts_at == clock.now()
        [carol] = change.ended
        assert carol.ends_at == clock.now() and carol.planned_ends_at == NIGHT_START
        assert carol.replaced_by_id == change.assignment.id and "replaced by" in (carol.end_reason or "")
        assert who(session, "location:4W/412/B/nurse", clock.now()) == ["kasante"]
        assert who(session, "location:4W/412/B/nurse", clock.now() - timedelta(minutes=5)) == ["cnurse"]
        # the same again changes nothing; a whole board is all or nothing
        assert assign(session, clock, "4W", "nurse", "kasante", "412", "B").outcome == "unchanged"
        items = [service.AssignmentIn(unit="4W", role="tech", person_id=pid(session, "amercer")),
                 service.AssignmentIn(unit="4W", role="nurse", person_id=pid(session, "kasante"), room="401",
                                      bed="A"),
                 service.AssignmentIn(unit="4W", role="nurse", person_id=pid(session, "kasante"), room="401",
                                      bed="Q")]
        before = session.query(StaffAssignment).count()
        with pytest.raises(Invalid) as refused, session.begin_nested():
            service.assign_many(session=session, clock=clock, actor=ADMIN, items=items)
        assert refused.value.field == "assignments[2].bed" and "nothing was saved" in refused.value.message
        assert session.query(StaffAssignment).count() == before


def test_a_file_does_not_overrule_the_charge_nurse_and_says_so(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        feed = file_feed(session, clock)
        content = csv_bytes("N804,4W,412,B,RN,,", "N804,4W,401,A,RN,,")
        report = file_import.import_file(session=session, clock=clock, feed=feed, name="a.csv", content=content,
                                         trigger="test")
        assert report.run.status == "ok" and report.run.conflicts == 1 and report.run.applied == 1
        assert who(session, "location:4W/412/B/nurse", clock.now()) == ["cnurse"]
        assert who(session, "location:4W/401/A/nurse", clock.now()) == ["kasante"]
        [conflict] = service.list_conflicts(session=session, unit="4W")
        assert conflict.outcome == "existing_kept" and conflict.kind == "slot"
        assert "manual takes precedence over file" in conflict.message and "from file a.csv row 2" in conflict.message
        alert = session.get_one(Alert, conflict.alert_id)
        assert alert.kind == "staffing_conflict" and alert.address == "location:4W/charge_nurse"
        assert [r.person_id for r in session.execute(select(AlertRecipient).where(
            AlertRecipient.alert_id == alert.id)).scalars()] == [pid(session, "dwhitaker")]
        # the next file saying the same counts the conflict again, without another alert
        clock.advance(minutes=30)
        again = file_import.import_file(session=session, clock=clock, feed=feed, name="b.csv", content=content,
                                        trigger="test")
        assert again.run.unchanged == 1 and again.run.conflicts == 1
        assert session.get_one(StaffingConflict, conflict.id).seen == 2
        assert len(service.list_conflicts(session=session, unit="4W")) == 1
        # a charge nurse's own entry replaces the file's, and that disagreement is recorded too
        change = assign(session, clock, "4W", "nurse", "tquinn", "401", "A")
        assert change.outcome == "created" and [c.outcome for c in change.conflicts] == ["incoming_applied"]
        assert who(session, "location:4W/401/A/nurse", clock.now()) == ["tquinn"]


def test_a_file_naming_two_nurses_for_one_bed_is_refused_by_row(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        feed = file_feed(session, clock)
        report = file_import.import_file(session=session, clock=clock, feed=feed, name="two.csv", trigger="test",
                                         content=csv_bytes("N804,4W,402,A,RN,,", "N806,4W,402,A,RN,,",
                                                           "N806,4W,402,B,RN,2026-11-24 18:00,2026-11-24 09:00"))
        assert report.run.status == "rejected" and report.run.applied == 0
        assert [(e["row"], e["field"]) for e in report.run.errors] == [(3, "bed"), (4, "end")]
        assert "4W-402-A already has Kwame Asante, RN" in report.run.errors[0]["message"]
        assert who(session, "location:4W/402/A/nurse", clock.now()) == ["dwhitaker"]


def test_the_units_precedence_decides(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        service.configure_unit(session=session, clock=clock, actor=ADMIN, unit="4W", shift_changes=None,
                               flag_minutes_before=None, precedence=["file", "manual", "sync", "adt_rol"])
        feed = file_feed(session, clock)
        report = file_import.import_file(session=session, clock=clock, feed=feed, name="a.csv",
                                         content=csv_bytes("N804,4W,412,B,RN,,"), trigger="test")
        assert report.run.applied == 1 and report.run.conflicts == 1
        assert who(session, "location:4W/412/B/nurse", clock.now()) == ["kasante"]
        with pytest.raises(Conflict, match="file takes precedence over manual"):
            assign(session, clock, "4W", "nurse", "cnurse", "412", "B", replace=True)


def test_a_person_works_one_unit_at_a_time(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        change = assign(session, clock, "ICU", "nurse", "cnurse", "5", "A")
        assert change.outcome == "created" and {r.bed_id for r in change.ended} and len(change.ended) == 4
        assert who(session, "location:ICU/5/A/nurse", clock.now()) == ["cnurse"]
        assert who(session, "location:4W/412/B/nurse", clock.now()) == ["dwhitaker"]  # the charge nurse now
        moved = session.execute(select(Alert).where(Alert.kind == "staffing_moved")
                                .order_by(Alert.id.desc())).scalars().first()
        assert moved is not None and "Carol Nurse, RN moved to ICU-5-A" in moved.body
        assert moved.address == "location:4W/charge_nurse"
        # respiratory therapists cover several units at once
        assign(session, clock, "4W", "rt", "kasante")
        assign(session, clock, "ICU", "respiratory_therapist", "kasante")
        assert who(session, "location:4W/respiratory_therapist", clock.now()) == ["kasante"]
        assert who(session, "location:ICU/rt", clock.now()) == ["kasante"]


def test_adt_rol_lands_in_the_model_and_follows_the_patient(db: Database, clock: FakeClock) -> None:
    note = _adt(db, clock, "adt_a01_admit.hl7", MRN1001="MRN-ST1", **{"4W_412_B": "4W_405_A", "N777": "N804"})
    with db.unit_of_work() as session:
        assert who(session, "location:4W/405/A/nurse", clock.now()) == ["kasante"]
        [row] = [r for r in service.list_assignments(session=session, unit="4W", at=clock.now())
                 if r.source == "adt_rol"]
        assert row.origin.startswith("from ADT (ROL Primary Nurse") and row.ends_at == NIGHT_START
        assert who(session, "careteam:MRN-ST1/nurse", clock.now()) == ["kasante"]  # the care team still has her
    assert note == ""
    # the sample's own nurse agrees with the charge nurse's assignment: nothing changes
    _adt(db, clock, "adt_a01_admit.hl7", MRN1001="MRN-ST2", MSG00001="MSG-ST2")
    with db.unit_of_work() as session:
        assert not [r for r in service.list_assignments(session=session, unit="4W", at=clock.now())
                    if r.source == "adt_rol" and r.bed_id is not None and r.person_id == pid(session, "cnurse")]
    clock.advance(minutes=20)
    note = _adt(db, clock, "adt_a02_transfer.hl7", MRN1001="MRN-ST1", **{"4W_412_B": "4W_405_A"})
    assert "patient left the bed" in note
    with db.unit_of_work() as session:
        assert who(session, "location:4W/405/A/nurse", clock.now()) == ["dwhitaker"]


def test_copy_last_shift_into_the_next(db: Database, clock: FakeClock) -> None:
    clock.set(NIGHT_START - timedelta(minutes=30))
    with db.unit_of_work() as session:
        report = service.copy_shift(session=session, clock=clock, actor=ADMIN, unit="4W")
        assert report.target_start == NIGHT_START and report.source_start == DAY_START
        assert {a.person_id for a in report.copied} == {pid(session, "lhartmann"), pid(session, "msingh")}
        assert any("already has Luis Ferreira" in s["reason"] for s in report.skipped)
        for row in service.list_assignments(session=session, unit="4W", start=NIGHT_START, end=NIGHT_START
                                            + timedelta(hours=12)):
            if row.starts_at >= NIGHT_START:
                service.end_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=row.id)
        again = service.copy_shift(session=session, clock=clock, actor=ADMIN, unit="4W")
        assert not again.skipped and len(again.copied) == 15  # charge nurse, 12 beds, 2 techs
        later = NIGHT_START + timedelta(hours=1)
        assert who(session, "location:4W/412/B/nurse", later) == ["cnurse"]
        assert who(session, "location:4W/charge_nurse", later) == ["dwhitaker"]
        copied = service.views(session, [again.copied[0]])[0]
        assert "(copied from 07:00–19:00)" in copied.origin and copied.window == "19:00–07:00"


def test_ending_and_cancelling(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        [luis] = [r for r in service.list_assignments(session=session, unit="4W", at=NIGHT_START)
                  if r.bed_id is not None and r.person_id == pid(session, "lferreira")][:1]
        cancelled = service.end_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=luis.id)
        assert cancelled.ends_at == cancelled.starts_at  # never started: cancelled
        with pytest.raises(Invalid, match="already cancelled"):
            service.end_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=luis.id)
        with pytest.raises(Invalid, match="in the past"):
            service.end_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=luis.id,
                                   at=clock.now() - timedelta(hours=1))


def test_who_may_change_a_units_assignments(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        def nurse(username: str) -> Actor:
            person = session.execute(select(Person).where(Person.username == username)).scalar_one()
            return Actor(person_id=person.id, username=username, roles=person.role_names)

        with pytest.raises(Forbidden):
            assign(session, clock, "4W", "tech", "amercer", actor=nurse("hlee"))
        change = assign(session, clock, "4W", "tech", "amercer", actor=nurse("kasante"))
        assert change.assignment is not None and change.assignment.origin == "assigned by Kwame Asante, RN"
        lead = assign(session, clock, "4W", "nurse", "tquinn", "420", "A", actor=nurse("dwhitaker"))
        assert lead.assignment is not None and lead.assignment.origin == "assigned by charge nurse Dana Whitaker, RN"
        with pytest.raises(Forbidden):
            assign(session, clock, "4W", "tech", "amercer", actor=nurse("ghouse"))
