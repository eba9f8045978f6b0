"""location: addresses resolve from staff assignments at the instant asked, with reasons, never to nobody."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert, AlertEvent
from carerelay.core.actor import SYSTEM
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Invalid
from carerelay.routing.resolver import resolve
from carerelay.staffing import lookup, service
from tests.staffing_support import ADMIN, NIGHT_START, assign, pid, who
from tests.unit.staffing.test_service import _adt


def test_a_bed_reaches_its_nurse_with_the_reason(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        day = resolve(session, "location:4W/412/B/nurse", clock.now())
        assert [r.reason for r in day.recipients] == [
            "4W-412-B primary nurse, assigned by charge nurse Dana Whitaker, RN for 07:00–19:00"]
        night = resolve(session, "location:4W/412/B/primary_nurse", NIGHT_START + timedelta(hours=2))
        assert night.person_ids == [pid(session, "lferreira")]
        assert "for 19:00–07:00" in night.recipients[0].reason
        assert who(session, "location:ICU/2/A/RN", clock.now()) == ["hlee"]


def test_an_unassigned_bed_goes_to_the_charge_nurse(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        empty = resolve(session, "location:4W/401/A/nurse", clock.now())
        assert empty.person_ids == [pid(session, "dwhitaker")]
        assert empty.recipients[0].reason.startswith("no primary nurse assigned to 4W-401-A; charge nurse of 4W")
        unknown = resolve(session, "location:4W/499/Z/nurse", clock.now())
        assert unknown.person_ids == [pid(session, "dwhitaker")] and "no bed 499-Z on unit 4W" in unknown.explain()
        assert who(session, "location:4W/412/B/secondary_nurse", clock.now()) == ["dwhitaker"]
        assert who(session, "location:4W/charge_nurse", clock.now()) == ["dwhitaker"]
        nowhere = resolve(session, "location:9Z/1/A/nurse", clock.now())
        assert nowhere.empty and "no unit '9Z'" in nowhere.explain()


def test_no_charge_nurse_either_goes_to_the_fallback(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        [charge] = lookup.charge_nurses(session, unit_id=service.get_unit(session, "4W").id, at=clock.now())
        service.end_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=charge.id)
        nobody = resolve(session, "location:4W/401/A/nurse", clock.now())
        assert nobody.empty and "no charge nurse on 4W" in nobody.explain()
        alert = alerts.raise_alert(session=session, clock=clock, actor=SYSTEM, kind="nurse_call", priority="urgent",
                                   title="4W-401-A call", body="", address="location:4W/401/A/nurse", source="test")
        events = session.execute(select(AlertEvent).where(AlertEvent.alert_id == alert.id)).scalars().all()
        assert next(e.kind for e in events if e.kind in ("no_one", "notified")) == "no_one"
        reached = {e.person_id for e in events if e.kind == "notified"}
        assert reached and reached <= set(resolve(session, "group:OPERATORS", clock.now()).person_ids)
        assert session.execute(select(Alert).where(Alert.kind == "no_one_to_reach",
                                                   Alert.source_ref == f"alert:{alert.id}")).scalar_one()


def test_most_specific_first_bed_room_unit(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        assert who(session, "location:4W/412/B/tech", clock.now()) == ["lhartmann", "msingh"]
        change = assign(session, clock, "4W", "tech", "amercer", "412")
        assert who(session, "location:4W/412/B/tech", clock.now()) == ["amercer"]
        reason = resolve(session, "location:4W/412/A/pct", clock.now()).recipients[0].reason
        assert reason.startswith("4W-412-A tech (assigned to 4W room 412), assigned by test")
        assert who(session, "location:4W/413/A/tech", clock.now()) == ["lhartmann", "msingh"]
        assert who(session, "location:4W/tech", clock.now()) == ["lhartmann", "msingh"]
        assert change.assignment is not None
        service.end_assignment(session=session, clock=clock, actor=ADMIN, assignment_id=change.assignment.id)
        assert who(session, "location:4W/412/B/tech", clock.now()) == ["lhartmann", "msingh"]


def test_other_roles_still_come_from_the_adt_care_team(db: Database, clock: FakeClock) -> None:
    # a bed of its own: real-server tests commit admissions to 4W-412-B in the shared database
    _adt(db, clock, "adt_a01_admit.hl7", MRN1001="MRN-LOC1", **{"4W_412_B": "4W_419_B"})
    with db.unit_of_work() as session:
        assert who(session, "location:4W/419/B/attending", clock.now()) == ["ghouse"]
        assert "attending of DOE, JANE (MRN MRN-LOC1)" in resolve(session, "location:4W/419/B/attending",
                                                                   clock.now()).recipients[0].reason
        for bad in ("location:4W/412/nurse", "location:4W/attending", "location:4W//B/nurse"):
            with pytest.raises(Invalid):
                resolve(session, bad, clock.now())


def test_inactive_people_are_skipped_for_the_charge_nurse(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        from carerelay.directory.models import Person

        session.get_one(Person, pid(session, "cnurse")).active = False
        gone = resolve(session, "location:4W/412/B/nurse", clock.now())
        assert gone.person_ids == [pid(session, "dwhitaker")] and "skipped Carol Nurse, RN: inactive" in gone.explain()


def test_the_demo_staffs_every_unit_day_and_night(db: Database, clock: FakeClock) -> None:
    night = NIGHT_START + timedelta(hours=3)
    with db.unit_of_work() as session:
        for unit, day_charge, night_charge in (("4W", "dwhitaker", "golsen"), ("ICU", "pnovak", "cmurphy"),
                                               ("ED", "jgreene", "prenner")):
            assert who(session, f"location:{unit}/charge_nurse", clock.now()) == [day_charge]
            assert who(session, f"location:{unit}/charge_nurse", night) == [night_charge]
            assert who(session, f"location:{unit}/tech", clock.now())
        assert who(session, "location:4W/412/B/nurse", night) == ["lferreira"]
        assert who(session, "location:ICU/2/A/nurse", clock.now()) == ["hlee"]
