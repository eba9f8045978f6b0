"""The demo hospital loads once, and matches the shared HL7 and WCTP samples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from carerelay.audit.models import AuditEntry
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database, make_engine
from carerelay.core.migrate import upgrade
from carerelay.demo import DEMO_PEOPLE, load_demo
from carerelay.directory.models import Department, Person
from carerelay.escalation.service import list_policies
from carerelay.patients.models import Bed, Unit
from carerelay.scheduling import lookup


def test_loading_twice_changes_nothing(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        audit_before = session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
        report = load_demo(session=session, clock=clock, actor=cli_actor())
        assert report.created == {}
        assert session.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == audit_before


def test_demo_has_the_samples_people_and_beds(db: Database) -> None:
    with db.unit_of_work() as session:
        # Live-server tests add people of their own to the shared test database: count the demo's.
        demo = {p.username for p in DEMO_PEOPLE}
        people = [p for p in session.execute(select(Person)).scalars() if p.username in demo]
        assert len(people) == len(demo) and 55 <= len(people) <= 65
        assert {"physician", "nurse", "tech", "operator", "scheduler", "admin", "compliance"} <= {
            p.profession for p in people}
        house = session.execute(select(Person).where(Person.npi == "1234567890")).scalar_one()
        assert house.family_name == "House"
        assert session.execute(select(Person).where(Person.unique_id == "N777")).scalar_one().given_name == "Carol"
        for unit, room, bed in (("4W", "412", "B"), ("ICU", "2", "A")):
            found = session.execute(select(Bed).join(Unit).where(Unit.code == unit, Bed.room == room,
                                                                 Bed.bed == bed)).first()
            assert found is not None, f"{unit}-{room}-{bed} missing"


def test_demo_escalation_policies_walk_cardiology_call_orders(db: Database) -> None:
    with db.unit_of_work() as session:
        policies = {p.name: p for p in list_policies(session=session)}
        cardiology = policies["Cardiology on call"]
        card = session.execute(select(Department).where(Department.code == "CARD")).scalar_one()
        assert cardiology.department_id == card.id and cardiology.fallback_address == "group:OPERATORS"
        assert [s["address"] for s in cardiology.steps] == ["target:", "role:Cardiology On Call#2"]
        assert policies["Critical lab results"].alert_kind == "critical_result"
        assert policies["Hospitalist on call"].active
        catch_all = policies["Everything else: then the operators"]
        assert (catch_all.alert_kind, catch_all.department_id, catch_all.priority) == (None, None, None)


def test_the_small_hours_of_the_first_of_the_month_have_someone_on_call(tmp_path: Path) -> None:
    """Loaded at 03:00 New York on the 1st: last month's final night shift runs until 07:00."""
    engine = make_engine(f"sqlite:///{tmp_path / 'first.db'}")
    upgrade(engine)
    db, clock = Database(engine), FakeClock(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    with db.unit_of_work() as session:
        load_demo(session=session, clock=clock, actor=cli_actor())
    with db.read_only() as session:
        coverage = {c.department_code: c for c in lookup.on_call_now(session=session, at=clock.now())}
        assert {code: bool(c.now) for code, c in coverage.items()} == {"CARD": True, "HOSP": True, "NEURO": True}
        assert [o.assignment_code for o in coverage["CARD"].now] == ["CARD-CALL1-NIGHT", "CARD-CALL2-NIGHT"]
    engine.dispose()
