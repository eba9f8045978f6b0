"""Shift hand-over on durable timers: the pre-shift check flags unassigned occupied beds to the charge
nurse, the shift change ends what was not renewed and records the hand-over, each re-arms itself."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from carerelay.alerts.models import Alert, AlertRecipient
from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.hl7.parser import parse
from carerelay.integrations.hl7.processor import process_message
from carerelay.jobs import service as jobs
from carerelay.patients.service import ResultPolicy
from carerelay.staffing import handover, service
from carerelay.staffing.models import StaffingHandover
from tests.hl7support import SAMPLES
from tests.scenarios.test_critical_potassium import FEED, _apply
from tests.staffing_support import ADMIN, NEXT_DAY_START, NIGHT_START, arm, assign, pid, who


def _timers(db: Database, unit: str) -> dict[str, str]:
    with db.unit_of_work() as session:
        unit_id = service.get_unit(session, unit).id
        return {kind: jobs.pending(session=session, key=handover.timer_key(unit_id, kind))[0].due_at.isoformat()
                for kind in ("check", "change")}


def test_a_unit_has_its_next_check_and_change(db: Database, clock: FakeClock) -> None:
    arm(db, clock, "4W")
    assert _timers(db, "4W") == {"check": (NIGHT_START - timedelta(minutes=30)).isoformat(),
                                 "change": NIGHT_START.isoformat()}


def test_unassigned_occupied_beds_are_flagged_before_the_shift(db: Database, clock: FakeClock) -> None:
    arm(db, clock, "4W")
    _apply(db, clock, "adt_a01_admit.hl7", "MRN-HO1")  # 4W-412-B, which has nurses day and night
    raw = (SAMPLES / "adt_a01_admit.hl7").read_bytes().replace(b"MRN1001", b"MRN-HO2").replace(b"4W^412^B",
                                                                                               b"4W^420^A")
    with db.unit_of_work() as session:
        process_message(session=session, clock=clock, actor=Actor(person_id=None, username="hl7"), parsed=parse(raw),
                        feed=FEED, policy=ResultPolicy(), stat_priorities=(), message_id=None)
    clock.set(NIGHT_START - timedelta(minutes=30))
    jobs.fire_due(db=db, clock=clock)
    with db.unit_of_work() as session:
        flag = session.execute(select(Alert).where(Alert.kind == "staffing_unassigned",
                                                   Alert.source_ref == f"preshift:4W:{NIGHT_START.isoformat()}")
                               ).scalar_one()
        assert "4W-420-A" in flag.data["beds"] and "4W-412-B" not in flag.data["beds"]
        assert not flag.data["no_charge_nurse"] and "copy last shift" in flag.body
        reached = session.execute(select(AlertRecipient.person_id).where(AlertRecipient.alert_id == flag.id)).all()
        assert [r[0] for r in reached] == [pid(session, "dwhitaker")]  # today's charge nurse plans tonight
    assert _timers(db, "4W")["check"] == (NEXT_DAY_START - timedelta(minutes=30)).isoformat()


def test_the_shift_change_ends_what_was_not_renewed(db: Database, clock: FakeClock) -> None:
    arm(db, clock, "4W")
    with db.unit_of_work() as session:
        assign(session, clock, "4W", "tech", "lhartmann", starts_at=NIGHT_START)  # renewed for the night
        assign(session, clock, "4W", "unit_clerk", "kasante", ends_at=NIGHT_START + timedelta(hours=4))
    clock.set(NIGHT_START)
    jobs.fire_due(db=db, clock=clock)
    with db.unit_of_work() as session:
        unit = service.get_unit(session, "4W")
        [done] = session.execute(select(StaffingHandover).where(StaffingHandover.unit_id == unit.id,
                                                                StaffingHandover.change_at == NIGHT_START,
                                                                StaffingHandover.fired_at == NIGHT_START)
                                 ).scalars().all()
        assert (done.ended, done.renewed, done.continuing) == (14, 1, 1)
        assert who(session, "location:4W/412/B/nurse", clock.now()) == ["lferreira"]
        assert who(session, "location:4W/tech", clock.now()) == ["amercer", "lhartmann"]
        assert who(session, "location:4W/unit_clerk", clock.now()) == ["kasante"]
    assert _timers(db, "4W")["change"] == NEXT_DAY_START.isoformat()


def test_new_shift_times_move_the_timers(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        service.configure_unit(session=session, clock=clock, actor=ADMIN, unit="ICU", shift_changes=["06:00", "18:00"],
                               flag_minutes_before=60, precedence=None)
    timers = _timers(db, "ICU")
    assert timers == {"change": (NIGHT_START - timedelta(hours=1)).isoformat(),
                      "check": (NIGHT_START - timedelta(hours=2)).isoformat()}
