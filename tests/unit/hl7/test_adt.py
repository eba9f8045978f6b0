"""ADT semantics through the processor and the patients service (rolled back per test, both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.parser import parse
from carerelay.integrations.hl7.processor import Outcome, process_message
from carerelay.patients import service
from carerelay.patients.models import CareTeamMember, Encounter, Observation, Patient
from carerelay.patients.service import CriticalRule, ResultPolicy

FEED = Feed(name="t", port=0, timezone="America/Chicago")
ACTOR = Actor(person_id=None, username="test")


PV1 = "PV1|1|I|4W^412^B^MAINHOSP||||1234567890^HOUSE^GREGORY^^^DR^^^NPI"


def msg(event: str, *, mrn: str = "MRN77", pv1: str = PV1,
        extra: str = "", control: str = "X1", version: str = "2.5.1") -> str:
    return "\r".join(s for s in [
        f"MSH|^~\\&|EPIC|MAINHOSP|CARERELAY|MAINHOSP|20261124083000||ADT^{event}|{control}|P|{version}",
        f"EVN|{event}|20261124082955",
        f"PID|1||{mrn}^^^MAINHOSP^MR||DOE^JANE^Q||19580214|F",
        pv1, extra] if s)


def apply(session: Session, clock: FakeClock, text: str, policy: ResultPolicy | None = None) -> Outcome:
    return process_message(session=session, clock=clock, actor=ACTOR, parsed=parse(text.encode()), feed=FEED,
                           policy=policy or ResultPolicy(), stat_priorities=("S", "STAT"), message_id=None)


def encounter(session: Session, mrn: str = "MRN77") -> Encounter:
    pid = session.execute(select(Patient.id).where(Patient.mrn == mrn)).scalar_one()
    return session.execute(select(Encounter).where(Encounter.patient_id == pid)
                           .order_by(Encounter.id.desc())).scalars().first()  # type: ignore[return-value]


def census_mrns(session: Session, clock: FakeClock, unit: str) -> set[str]:
    return {r.mrn for r in service.census(session=session, clock=clock, actor=ACTOR, unit_code=unit)[1]}


def test_admit_transfer_cancel_transfer_discharge_cancel_discharge(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as s:
        assert apply(s, clock, msg("A01")).status == "processed"
        enc = encounter(s)
        assert enc.status == "active" and enc.admitted_at is not None
        assert enc.admitted_at.isoformat() == "2026-11-24T14:29:55+00:00"  # 08:29:55 Chicago, EVN-2
        assert "MRN77" in census_mrns(s, clock, "4W")
        apply(s, clock, msg("A02", pv1="PV1|1|I|ICU^2^A^MAINHOSP"))
        assert "MRN77" in census_mrns(s, clock, "ICU") and "MRN77" not in census_mrns(s, clock, "4W")
        apply(s, clock, msg("A12", pv1="PV1|1|I|ICU^2^A^MAINHOSP"))  # cancel transfer: really back on 4W-412-B
        assert "MRN77" in census_mrns(s, clock, "4W") and "MRN77" not in census_mrns(s, clock, "ICU")
        assert encounter(s).location == "4W^412^B"
        apply(s, clock, msg("A03"))
        assert encounter(s).status == "discharged" and "MRN77" not in census_mrns(s, clock, "4W")
        apply(s, clock, msg("A13"))  # cancel discharge
        enc = encounter(s)
        assert enc.status == "active" and enc.discharged_at is None and "MRN77" in census_mrns(s, clock, "4W")


def test_cancel_admit_removes_from_census_and_ends_care_team(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as s:
        apply(s, clock, msg("A01"))
        enc = encounter(s)
        assert s.execute(select(CareTeamMember).where(CareTeamMember.encounter_id == enc.id,
                                                      CareTeamMember.active.is_(True))).first() is not None
        apply(s, clock, msg("A11"))
        assert encounter(s).status == "cancelled" and "MRN77" not in census_mrns(s, clock, "4W")
        assert s.execute(select(CareTeamMember).where(CareTeamMember.encounter_id == enc.id,
                                                      CareTeamMember.active.is_(True))).first() is None


def test_a08_updates_demographics_and_replaces_attending_only_when_sent(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as s:
        apply(s, clock, msg("A01"))
        apply(s, clock, msg("A08", pv1="PV1|1|I|4W^412^B").replace("DOE^JANE^Q", "DOE^JANET"))
        patient = s.execute(select(Patient).where(Patient.mrn == "MRN77")).scalar_one()
        assert patient.given_name == "JANET"
        team = service.care_team(session=s, clock=clock, actor=ACTOR, patient_id=patient.id)
        assert [m.person_name for m in team if m.role == "attending"] == ["Dr. Gregory House"]  # PV1-7 not sent


def test_a08_attending_change_and_explicit_delete(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as s:
        apply(s, clock, msg("A01"))
        pid = s.execute(select(Patient.id).where(Patient.mrn == "MRN77")).scalar_one()
        apply(s, clock, msg("A08", pv1="PV1|1|I|4W^412^B||||2345678901^WILSON^JAMES"))
        team = service.care_team(session=s, clock=clock, actor=ACTOR, patient_id=pid)
        assert [m.person_name for m in team if m.role == "attending"] == ["Dr. James Wilson"]
        apply(s, clock, msg("A08", pv1="PV1|1|I|4W^412^B||||\"\""))
        team = service.care_team(session=s, clock=clock, actor=ACTOR, patient_id=pid)
        assert [m for m in team if m.role == "attending"] == []


def test_unknown_location_kept_as_text(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as s:
        out = apply(s, clock, msg("A01", pv1="PV1|1|I|5N^501^A^MAINHOSP"))
        assert out.status == "processed" and "unknown unit" in out.note
        enc = encounter(s)
        assert enc.unit_id is None and enc.location == "5N^501^A"
        out = apply(s, clock, msg("A02", pv1="PV1|1|I|4W^999^Z"))
        assert "unknown bed" in out.note and encounter(s).unit_id is not None and encounter(s).bed_id is None


def test_merge_moves_history_to_the_survivor(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as s:
        apply(s, clock, msg("A01", mrn="OLD1"))
        apply(s, clock, msg("A04", mrn="NEW1", pv1="PV1|1|O|ED^E1^A"))
        out = apply(s, clock, msg("A40", mrn="NEW1", pv1="", extra="MRG|OLD1^^^MAINHOSP^MR"))
        assert out.status == "processed"
        old = s.execute(select(Patient).where(Patient.mrn == "OLD1")).scalar_one()
        new = s.execute(select(Patient).where(Patient.mrn == "NEW1")).scalar_one()
        assert old.merged_into_id == new.id
        assert {e.patient_id for e in s.execute(select(Encounter).where(Encounter.patient_id.in_([old.id, new.id])))
                .scalars()} == {new.id}
        found, _ = service.access_patient(session=s, clock=clock, actor=ACTOR, mrn="OLD1")
        assert found.id == new.id  # the old MRN leads to the survivor


def test_unhandled_adt_event_is_filtered(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as s:
        assert apply(s, clock, msg("A31")).status == "filtered"


@pytest.mark.parametrize(("flags", "value", "critical"), [
    ("HH", "6.8", True), ("LL", "2.1", True), ("AA", "x", True), ("H", "5.9", False), ("", "7.5", True),
    ("", "2.0", True), ("", "4.0", False), ("H~HH", "6.8", True), ("N", "<2.5", True),
])
def test_critical_flags_and_rules(db: Database, clock: FakeClock, flags: str, value: str, critical: bool) -> None:
    policy = ResultPolicy(rules=(CriticalRule(code="2823-3", below=2.8, above=6.2),))
    text = "\r".join([
        "MSH|^~\\&|LAB|MAINHOSP|CARERELAY|MAINHOSP|20261124093000||ORU^R01^ORU_R01|L1|P|2.3",
        "PID|1||MRNC^^^MAINHOSP^MR||DOE^JANE", "OBR|1|P1|F1|80048^BMP",
        f"OBX|1|NM|2823-3^Potassium^LN||{value}|mmol/L|3.5-5.1|{flags}|||F"])
    with db.unit_of_work() as s:
        apply(s, clock, text, policy)
        obs = s.execute(select(Observation).join(Patient, Patient.id == Observation.patient_id)
                        .where(Patient.mrn == "MRNC")).scalar_one()
        assert obs.critical is critical
        assert bool(service.pending_handoffs(session=s, kind="critical_result", limit=1000)) or not critical


def test_claim_handoffs_takes_each_once(db: Database, clock: FakeClock) -> None:
    text = "\r".join([
        "MSH|^~\\&|LAB|MAINHOSP|CARERELAY|MAINHOSP|20261124093000||ORU^R01|L2|P|2.5.1",
        "PID|1||MRNH^^^MAINHOSP^MR||DOE^JANE", "ORC|RE|P9||||||||||1234567890^HOUSE^GREGORY", "OBR|1|P9|F9|80048^BMP",
        "OBX|1|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F"])
    with db.unit_of_work() as s:
        apply(s, clock, text)
        claimed = service.claim_handoffs(session=s, clock=clock, consumer="alerts", kinds=["critical_result"],
                                         limit=100_000)
        mine = [h for h in claimed if "MRNH" in h.summary]
        assert len(mine) == 1 and mine[0].recipient_person_id is not None  # ORC-12 when OBR-16 is empty
        again = service.claim_handoffs(session=s, clock=clock, consumer="alerts", limit=100_000)
        assert not [h for h in again if "MRNH" in h.summary]  # each is taken once


def test_orders_priority_sources(db: Database, clock: FakeClock) -> None:
    base = "MSH|^~\\&|EPIC|MAINHOSP|CARERELAY|MAINHOSP|20261124094500||ORM^O01|{c}|P|2.5.1\rPID|1||{m}^^^H^MR||DOE"
    cases = {
        "MRNO1": "ORC|NW|A1\rOBR|1|A1||71045^XR CHEST|||||||||||||||||||||||^^^^^STAT",  # OBR-27.6
        "MRNO2": "ORC|NW|A2\rOBR|1|A2||71045^XR CHEST\rTQ1|1||||||||S",  # TQ1-9
        "MRNO3": "ORC|NW|A3|||||^^^^^R\rOBR|1|A3||71045^XR CHEST|R",  # routine
    }
    with db.unit_of_work() as s:
        for i, (mrn, body) in enumerate(cases.items()):
            apply(s, clock, base.format(c=f"O{i}", m=mrn) + "\r" + body)
        from carerelay.patients.models import Order
        stat = {mrn: s.execute(select(Order.stat).join(Patient, Patient.id == Order.patient_id)
                               .where(Patient.mrn == mrn)).scalar_one() for mrn in cases}
    assert stat == {"MRNO1": True, "MRNO2": True, "MRNO3": False}


def test_preadmit_then_admit_then_class_changes(db: Database, clock: FakeClock) -> None:
    """A05 pre-admits (not on the census); A01 admits the same visit; A06 (outpatient → inpatient)
    and A07 (inpatient → outpatient) change the class and keep the patient on the census."""
    mrn = "MRN-A05"
    visit = "PV1|1|{klass}|4W^412^B^MAINHOSP||||1234567890^HOUSE^GREGORY^^^DR^^^NPI||||||||||||V5001"
    with db.unit_of_work() as s:
        out = apply(s, clock, msg("A05", mrn=mrn, pv1=visit.format(klass="P")))
        enc = encounter(s, mrn)
        assert out.status == "processed" and enc.status == "preadmit" and enc.patient_class == "P"
        assert enc.location == "4W^412^B" and mrn not in census_mrns(s, clock, "4W")  # expected, not present
        assert service.current_care_team(session=s, patient_id=enc.patient_id, role="attending") == []
        apply(s, clock, msg("A05", mrn=mrn, pv1=visit.format(klass="P")))  # resent: still one pre-admission
        apply(s, clock, msg("A01", mrn=mrn, pv1=visit.format(klass="I")))
        admitted = encounter(s, mrn)
        assert admitted.id == enc.id and admitted.status == "active" and admitted.patient_class == "I"
        assert mrn in census_mrns(s, clock, "4W")
        apply(s, clock, msg("A07", mrn=mrn, pv1=visit.format(klass="O")))
        changed = encounter(s, mrn)
        assert changed.id == enc.id and changed.patient_class == "O" and changed.status == "active"
        apply(s, clock, msg("A06", mrn=mrn, pv1=visit.format(klass="I").replace("4W^412^B", "ICU^2^A")))
        changed = encounter(s, mrn)
        assert changed.patient_class == "I" and changed.location == "ICU^2^A"
        assert mrn in census_mrns(s, clock, "ICU") and mrn not in census_mrns(s, clock, "4W")
        visits = s.execute(select(Encounter).join(Patient, Patient.id == Encounter.patient_id)
                           .where(Patient.mrn == mrn)).scalars().all()
        assert len(visits) == 1  # one visit number, one encounter, from pre-admission to class changes


def test_a05_does_not_take_an_active_patient_off_the_census(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as s:
        apply(s, clock, msg("A01", mrn="MRN-A05B"))
        apply(s, clock, msg("A05", mrn="MRN-A05B"))  # a late pre-admit for the same (current) visit
        assert encounter(s, "MRN-A05B").status == "active" and "MRN-A05B" in census_mrns(s, clock, "4W")
