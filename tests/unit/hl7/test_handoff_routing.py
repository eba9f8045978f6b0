"""Who hears of a critical result, a STAT order or a consult order: configurable targets, per test code
and per feed, with the ordering provider as the default (both databases)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from carerelay.alerts.intake import take_handoffs
from carerelay.alerts.models import Alert, AlertRecipient
from carerelay.config import ConfigError, load_settings
from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.integrations.hl7.feeds import Feed, feeds_from, result_policy
from carerelay.integrations.hl7.parser import parse
from carerelay.integrations.hl7.processor import process_message
from carerelay.jobs import service as jobs
from carerelay.patients.models import ClinicalHandoff
from carerelay.patients.service import HandoffRouting, ResultPolicy
from tests.hl7support import uniq

ACTOR = Actor(person_id=None, username="hl7:test")
HOUSE, WILSON, CUDDY = "1234567890", "2345678901", "3456789012"


def adt(mrn: str, attending: str | None = HOUSE) -> str:
    doctor = f"{attending}^DOC^A^^^DR^^^NPI" if attending else ""
    return "\r".join([
        f"MSH|^~\\&|EPIC|MAINHOSP|CARERELAY|MAINHOSP|20261124083000||ADT^A01|{uniq('A')}|P|2.5.1",
        "EVN|A01|20261124082955", f"PID|1||{mrn}^^^MAINHOSP^MR||DOE^JANE||19580214|F",
        f"PV1|1|I|4W^412^B^MAINHOSP||||{doctor}"])


def oru(mrn: str, ordering: str = WILSON, code: str = "2823-3") -> str:
    return "\r".join([
        f"MSH|^~\\&|LAB|MAINHOSP|CARERELAY|MAINHOSP|20261124093000||ORU^R01|{uniq('L')}|P|2.5.1",
        f"PID|1||{mrn}^^^MAINHOSP^MR||DOE^JANE", f"ORC|RE|P1||||||||||{ordering}^ORD^O^^^DR^^^NPI",
        "OBR|1|P1|F1|80048^BMP", f"OBX|1|NM|{code}^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F"])


def orm(mrn: str, code: str, priority: str = "R", ordering: str = WILSON) -> str:
    return "\r".join([
        f"MSH|^~\\&|EPIC|MAINHOSP|CARERELAY|MAINHOSP|20261124094500||ORM^O01|{uniq('O')}|P|2.3",
        f"PID|1||{mrn}^^^MAINHOSP^MR||DOE^JANE", "PV1|1|I|4W^412^B^MAINHOSP",
        f"ORC|NW|{uniq('P')}|||||^^^^^{priority}||20261124094500|||{ordering}^ORD^O^^^DR^^^NPI",
        f"OBR|1|X||{code}^Cardiology consult^LOCAL|{priority}"])


def apply(db: Database, clock: FakeClock, text: str, *, routing: HandoffRouting | None = None,
          feed: Feed | None = None) -> None:
    with db.unit_of_work() as session:
        process_message(session=session, clock=clock, actor=ACTOR, parsed=parse(text.encode()),
                        feed=feed or Feed(name="t", port=0), policy=ResultPolicy(routing=routing or HandoffRouting()),
                        stat_priorities=("S", "STAT"), message_id=None)


def alert_for(db: Database, mrn: str) -> tuple[Alert, list[str]]:
    """The one alert of this patient, and the usernames it reached."""
    with db.unit_of_work() as session:
        [alert] = session.execute(select(Alert).where(Alert.title.contains(mrn))).scalars()
        reached = list(session.execute(
            select(Person.username).join(AlertRecipient, AlertRecipient.person_id == Person.id)
            .where(AlertRecipient.alert_id == alert.id).order_by(AlertRecipient.notified_at)).scalars())
        session.expunge(alert)
    return alert, reached


def test_critical_result_goes_to_the_ordering_provider_by_default(db: Database, clock: FakeClock) -> None:
    mrn = uniq("MRN")
    apply(db, clock, adt(mrn))
    apply(db, clock, oru(mrn))
    take_handoffs(db=db, clock=clock, limit=100_000)
    alert, reached = alert_for(db, mrn)
    assert alert.kind == "critical_result" and reached == ["jwilson"]
    assert alert.data["target"] == "ordering"


def test_critical_result_to_the_attending_configured_globally(db: Database, clock: FakeClock) -> None:
    mrn = uniq("MRN")
    apply(db, clock, adt(mrn))
    apply(db, clock, oru(mrn), routing=HandoffRouting(critical_result="careteam:attending,ordering"))
    take_handoffs(db=db, clock=clock, limit=100_000)
    alert, reached = alert_for(db, mrn)
    with db.unit_of_work() as session:
        patient_id = session.execute(select(ClinicalHandoff.patient_id)
                                     .where(ClinicalHandoff.summary.contains(mrn))).scalar_one()
    assert alert.address == f"careteam:{patient_id}/attending" and reached == ["ghouse"]


def test_no_attending_falls_back_to_the_ordering_provider_and_says_why(db: Database, clock: FakeClock) -> None:
    mrn = uniq("MRN")
    apply(db, clock, adt(mrn, attending=None))
    apply(db, clock, oru(mrn), routing=HandoffRouting(critical_result="careteam:attending,ordering"))
    take_handoffs(db=db, clock=clock, limit=100_000)
    alert, reached = alert_for(db, mrn)
    assert reached == ["jwilson"] and "reaches no one now" in alert.body and "no attending" in alert.body


def test_per_test_code_target_and_unknown_provider_fallback(db: Database, clock: FakeClock) -> None:
    mrn, other = uniq("MRN"), uniq("MRN")
    routing = HandoffRouting(by_code={"2823-3": "careteam:attending"})
    for m in (mrn, other):
        apply(db, clock, adt(m))
    apply(db, clock, oru(mrn), routing=routing)
    apply(db, clock, oru(other, ordering="9999999999", code="2951-2"), routing=routing)
    take_handoffs(db=db, clock=clock, limit=100_000)
    assert alert_for(db, mrn)[1] == ["ghouse"]  # the potassium rule: the attending
    alert, reached = alert_for(db, other)  # another test: the ordering provider, unknown → operators
    assert alert.address == "group:OPERATORS" and "9999999999 is not in the directory" in alert.body
    assert reached


def test_stat_order_to_a_configured_care_team_role(db: Database, clock: FakeClock) -> None:
    mrn = uniq("MRN")
    apply(db, clock, adt(mrn))
    apply(db, clock, orm(mrn, "71045", priority="S"), routing=HandoffRouting(stat_order="careteam:attending"))
    take_handoffs(db=db, clock=clock, limit=100_000)
    alert, reached = alert_for(db, mrn)
    assert alert.kind == "order" and alert.priority == "stat" and reached == ["ghouse"]


def test_consult_order_by_code_notifies_its_role_and_escalates(db: Database, clock: FakeClock) -> None:
    mrn, routine = uniq("MRN"), uniq("MRN")
    routing = HandoffRouting(consult_orders={"CONS-CARD": "group:CARD-PHYS"})
    apply(db, clock, adt(mrn))
    apply(db, clock, orm(mrn, "CONS-CARD"), routing=routing)
    apply(db, clock, orm(routine, "71045"), routing=routing)  # a routine order that is no consult: nothing
    take_handoffs(db=db, clock=clock, limit=100_000)
    alert, reached = alert_for(db, mrn)
    assert alert.kind == "consult_order" and alert.priority == "urgent" and alert.address == "group:CARD-PHYS"
    assert "Consult Cardiology consult" in alert.title and "jwilson" in reached
    assert alert.choices == ["Accept", "Reject"]
    with db.unit_of_work() as session:
        assert not session.execute(select(Alert).where(Alert.title.contains(routine))).first()
    clock.advance(minutes=5)  # nobody accepted: the default policy goes on to the operators
    jobs.fire_due(db=db, clock=clock)
    _, reached = alert_for(db, mrn)
    assert "ooperator" in reached


def test_stat_consult_is_one_alert_marked_stat(db: Database, clock: FakeClock) -> None:
    mrn = uniq("MRN")
    apply(db, clock, adt(mrn))
    apply(db, clock, orm(mrn, "CONS-CARD", priority="STAT"),
          routing=HandoffRouting(consult_orders={"CONS-CARD": "group:CARD-PHYS"}))
    take_handoffs(db=db, clock=clock, limit=100_000)
    alert, _ = alert_for(db, mrn)
    assert alert.kind == "consult_order" and alert.priority == "stat" and alert.title.startswith("STAT consult")


def test_targets_per_feed_and_settings(db: Database, clock: FakeClock) -> None:
    settings = load_settings(
        database_url="sqlite:///:memory:", hl7_critical_target="careteam:attending, ordering",
        hl7_consult_orders=json.dumps({"CONS-NEURO": "group:NEURO-PHYS"}),
        hl7_feeds=json.dumps([{"name": "lab", "port": 0, "critical_target": "group:CARD-PHYS",
                               "targets_by_code": {"2823-3": "ordering"}}]))
    default, lab = feeds_from(settings)
    policy = result_policy(settings)
    assert default.routing is None and policy.routing.critical_result == "careteam:attending,ordering"
    assert lab.routing is not None and lab.routing.critical_result == "group:CARD-PHYS"
    assert lab.routing.consult_orders == {"CONS-NEURO": "group:NEURO-PHYS"}  # not set on the feed: global
    assert lab.routing.target_for("critical_result", "2823-3") == "ordering"
    mrn = uniq("MRN")
    apply(db, clock, adt(mrn))
    with db.unit_of_work() as session:
        process_message(session=session, clock=clock, actor=ACTOR, parsed=parse(oru(mrn, code="2951-2").encode()),
                        feed=lab, policy=policy, stat_priorities=("S",), message_id=None)
    take_handoffs(db=db, clock=clock, limit=100_000)
    alert, _ = alert_for(db, mrn)
    assert alert.address == "group:CARD-PHYS"


@pytest.mark.parametrize(("setting", "value", "text"), [
    ("hl7_critical_target", "nowhere:x", "CARERELAY_HL7_CRITICAL_TARGET: 'nowhere:x': unknown address"),
    ("hl7_stat_target", "ordering,,group:OPS", "CARERELAY_HL7_STAT_TARGET: empty target"),
    ("hl7_consult_orders", "{not json", "CARERELAY_HL7_CONSULT_ORDERS: not JSON"),
    ("hl7_consult_orders", "[1, 2]", "CARERELAY_HL7_CONSULT_ORDERS: must be a JSON object"),
    ("hl7_targets_by_code", '{"2823-3": "pager"}', "CARERELAY_HL7_TARGETS_BY_CODE (2823-3): 'pager'"),
])
def test_bad_targets_stop_start_up_naming_the_setting(setting: str, value: str, text: str) -> None:
    settings = load_settings(database_url="sqlite:///:memory:", **{setting: value})
    with pytest.raises(ConfigError) as caught:
        feeds_from(settings)
    assert str(caught.value).startswith(f"invalid setting {text}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_reprocessed_or_retaken_hand_off_alerts_once(db: Database, clock: FakeClock) -> None:
    mrn = uniq("MRN")
    apply(db, clock, adt(mrn))
    apply(db, clock, oru(mrn))
    take_handoffs(db=db, clock=clock, limit=100_000)
    clock.advance(timedelta(seconds=1))
    take_handoffs(db=db, clock=clock, limit=100_000)
    alert_for(db, mrn)  # exactly one
