"""Presenting-patient rules: the analyst's TOML file, each condition, alerts to a role, digests."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from carerelay.alerts.intake import take_handoffs
from carerelay.alerts.models import Alert, AlertRecipient, DigestItem
from carerelay.config import ConfigError, load_settings
from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.parser import parse
from carerelay.integrations.hl7.presenting import Facts, PresentingRules, load_rules, rules_from
from carerelay.integrations.hl7.processor import Outcome, process_message
from carerelay.jobs import service as jobs
from carerelay.patients.service import ResultPolicy
from tests.hl7support import personalise, sample, uniq

ACTOR = Actor(person_id=None, username="hl7:adt")
EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "presenting-rules.toml"
AT = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def rules(tmp_path: Path, text: str) -> PresentingRules:
    return load_rules(write(tmp_path, text))


def adt(mrn: str, *, event: str = "A01", klass: str = "I", unit: str = "4W^412^B", dob: str = "19580214",
        pv1_16: str = "", extra: str = "") -> str:
    pv1 = ["PV1", "1", klass, f"{unit}^MAINHOSP", "", "", "", "1234567890^HOUSE^GREGORY^^^DR^^^NPI"]
    pv1 += [""] * (16 - len(pv1)) + [pv1_16]
    return "\r".join(s for s in [
        f"MSH|^~\\&|EPIC|MAINHOSP|CARERELAY|MAINHOSP|20261124083000||ADT^{event}|{uniq('C')}|P|2.5.1",
        f"EVN|{event}|20261124082955", f"PID|1||{mrn}^^^MAINHOSP^MR||DOE^JANE||{dob}|F", "|".join(pv1), extra] if s)


def apply(db: Database, clock: FakeClock, text: str | bytes, presenting: PresentingRules, *,
          feed: str = "adt", message_id: int | None = None) -> Outcome:
    raw = text.encode() if isinstance(text, str) else text
    with db.unit_of_work() as session:
        return process_message(session=session, clock=clock, actor=ACTOR, parsed=parse(raw),
                               feed=Feed(name=feed, port=0), policy=ResultPolicy(), stat_priorities=("S",),
                               message_id=message_id, presenting=presenting)


def alerts_for(db: Database, text: str) -> list[tuple[Alert, list[str]]]:
    with db.unit_of_work() as session:
        found = []
        for alert in session.execute(select(Alert).where(Alert.title.contains(text)).order_by(Alert.id)).scalars():
            reached = list(session.execute(
                select(Person.username).join(AlertRecipient, AlertRecipient.person_id == Person.id)
                .where(AlertRecipient.alert_id == alert.id)).scalars())
            session.expunge(alert)
            found.append((alert, reached))
    return found


ONE = """
[[rule]]
name = "{name}"
events = ["A01", "A04"]
notify = "group:HOSP-PHYS"
{extra}
"""


def rule_matches(tmp_path: Path, extra: str, facts: Facts, message: str = "") -> bool:
    loaded = rules(tmp_path, ONE.format(name="r", extra=extra))
    return loaded.rules[0].reasons(facts, parse((message or adt("M1")).encode())) is not None


FACTS = Facts(event="A01", feed="adt", patient_class="I", unit="4W", location="4W^412^B", age=68)


@pytest.mark.parametrize(("extra", "facts", "expected"), [
    ("", FACTS, True),
    ("", Facts(**{**FACTS.__dict__, "event": "A08"}), False),
    ('patient_class = ["i", "E"]', FACTS, True),
    ('patient_class = ["O"]', FACTS, False),
    ('units = ["4*"]', FACTS, True),
    ('units = ["ICU"]', FACTS, False),
    ('feeds = ["ADT"]', FACTS, True),
    ('feeds = ["lab"]', FACTS, False),
    ("min_age = 65", FACTS, True),
    ("min_age = 69", FACTS, False),
    ("max_age = 68", FACTS, True),
    ("max_age = 17", FACTS, False),
    ("min_age = 18", Facts(**{**FACTS.__dict__, "age": None}), False),  # no birth date: no age rule matches
])
def test_each_condition(tmp_path: Path, extra: str, facts: Facts, expected: bool) -> None:
    assert rule_matches(tmp_path, extra, facts) is expected


@pytest.mark.parametrize(("fields", "message", "expected"), [
    ('"ZPV-1" = "VIP"', adt("M1", extra="ZPV|vip|x"), True),
    ('"ZPV-1" = "VIP"', adt("M1", extra="ZPV|STAFF"), False),
    ('"ZPV-1" = "VIP"', adt("M1"), False),  # no Z-segment at all
    ('"ZPV-2.2" = "PACE*"', adt("M1", extra="ZPV||A^PACE-EAST"), True),
    ('"PV1-16" = ["V", "VIP"]', adt("M1", pv1_16="V"), True),
    ('"PV1-16" = ["V", "VIP"]', adt("M1", pv1_16="N"), False),
    ('"PV1-16" = "*"', adt("M1", pv1_16="ANY"), True),
    ('"PV1-16" = "*"', adt("M1"), False),
    ('"PID-8" = "F"\n"ZPV-1" = "VIP"', adt("M1", extra="ZPV|VIP"), True),  # every field must hold
    ('"PID-8" = "M"\n"ZPV-1" = "VIP"', adt("M1", extra="ZPV|VIP"), False),
    ('"PV1-16" = "VIP"', adt("M1", pv1_16="N~VIP"), True),  # any repetition
])
def test_field_and_z_segment_flags(tmp_path: Path, fields: str, message: str, expected: bool) -> None:
    assert rule_matches(tmp_path, f"[rule.fields]\n{fields}", FACTS, message) is expected


def test_the_sample_admit_notifies_the_attending_and_a_vip_flag_the_hospitalists(
        db: Database, clock: FakeClock, tmp_path: Path) -> None:
    loaded = rules(tmp_path, """
        # inpatients admitted to 4 West: their attending hears of it
        [[rule]]
        name = "Admitted to 4W"
        events = ["A01"]
        patient_class = ["I"]
        units = ["4W"]
        notify = "careteam:attending"

        [[rule]]
        name = "VIP"
        events = ["A01"]
        notify = "group:HOSP-PHYS"
        priority = "stat"
        [rule.fields]
        "ZPV-1" = "VIP"
        """)
    mrn = uniq("MRN")
    admit = personalise(sample("adt_a01_admit.hl7"), mrn=mrn, control=uniq("A"))
    out = apply(db, clock, admit, loaded, message_id=None)
    assert out.status == "processed" and "presenting rule 'Admitted to 4W' matched" in out.note
    assert "VIP" not in out.note
    vip = uniq("MRN")
    apply(db, clock, adt(vip, unit="ICU^2^A", extra="ZPV|VIP"), loaded)
    take_handoffs(db=db, clock=clock, limit=100_000)
    [(alert, reached)] = alerts_for(db, mrn)
    assert alert.kind == "presenting_patient" and reached == ["ghouse"]
    assert "Admitted to 4W: ADT^A01 at 4W^412^B" in alert.title and "unit 4W" in alert.title
    [(vip_alert, vip_reached)] = alerts_for(db, vip)
    assert vip_alert.priority == "stat" and "ZPV-1 = VIP" in vip_alert.title and "ghouse" in vip_reached


def test_a_reprocessed_message_notifies_nobody_twice(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    loaded = rules(tmp_path, ONE.format(name="again", extra=""))
    mrn = uniq("MRN")
    text = adt(mrn)
    assert "matched" in apply(db, clock, text, loaded, message_id=987_654_321).note
    assert "already notified" in apply(db, clock, text, loaded, message_id=987_654_321).note
    take_handoffs(db=db, clock=clock, limit=100_000)
    assert len(alerts_for(db, mrn)) == 1


def test_a_digest_of_three_within_ten_minutes_is_one_alert(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    name = uniq("Digest ")
    loaded = rules(tmp_path, f"""
        [[rule]]
        name = "{name}"
        events = ["A01"]
        min_age = 80
        notify = "group:4W-NURSES"
        priority = "routine"
        digest_minutes = 10
        """)
    clock.set(AT)
    mrns = [uniq("MRN") for _ in range(4)]
    for i, mrn in enumerate(mrns[:3]):
        apply(db, clock, adt(mrn, dob="19400101"), loaded)
        take_handoffs(db=db, clock=clock, limit=100_000)
        clock.advance(minutes=3 if i < 2 else 1)
    apply(db, clock, adt(uniq("MRN"), dob="19900101"), loaded)  # 36 years old: no match
    assert alerts_for(db, name) == []  # nothing yet: the digest waits its 10 minutes
    clock.set(AT + timedelta(minutes=10))
    jobs.fire_due(db=db, clock=clock)
    [(alert, reached)] = alerts_for(db, name)
    assert alert.title.startswith(f"{name}: 3 patients since 14:30 UTC") and alert.priority == "routine"
    assert all(m in alert.body for m in mrns[:3]) and "86 y" in alert.body and "cnurse" in reached
    apply(db, clock, adt(mrns[3], dob="19400101"), loaded)  # after the digest: a new window
    take_handoffs(db=db, clock=clock, limit=100_000)
    clock.advance(minutes=10)
    jobs.fire_due(db=db, clock=clock)
    digests = alerts_for(db, name)
    assert len(digests) == 2 and "1 patient since" in digests[1][0].title and mrns[3] in digests[1][0].body
    with db.unit_of_work() as session:
        waiting = session.execute(select(func.count()).select_from(DigestItem)
                                  .where(DigestItem.digest_key == name, DigestItem.sent_at.is_(None))).scalar_one()
    assert waiting == 0


def test_the_example_file_loads_and_settings_point_at_it() -> None:
    loaded = rules_from(load_settings(database_url="sqlite:///:memory:", hl7_presenting_rules_file=str(EXAMPLE)))
    assert [r.name for r in loaded.rules] == ["VIP admitted", "PACE member in the ED", "Elderly admissions to 4 West"]
    assert loaded.rules[2].digest_minutes == 30 and loaded.rules[0].notify == "careteam:attending,group:OPERATORS"
    assert rules_from(load_settings(database_url="sqlite:///:memory:")).rules == ()


@pytest.mark.parametrize(("text", "message"), [
    ("[[rule]\nname = 'x'", "is not valid TOML: "),
    ("[[rule]]\nname = 'x'\nevents = ['A01']\nnotify = 'group:OPS'\ncolour = 'red'",
     "rule 1 ('x'): colour: Extra inputs are not permitted"),
    ("[[rule]]\nname = 'x'\nnotify = 'group:OPS'", "rule 1 ('x'): events: Field required"),
    ("[[rule]]\nname = 'x'\nevents = ['A99']\nnotify = 'group:OPS'",
     "rule 1 ('x'): events: 'A99' is not an ADT event carerelay acts on"),
    ("[[rule]]\nname = 'x'\nevents = ['A01']\nnotify = 'group:OPS'\nmin_age = 'old'",
     "rule 1 ('x'): min_age: Input should be a valid integer"),
    ("[[rule]]\nname = 'x'\nevents = ['A01']\nnotify = 'group:OPS'\nmin_age = 70\nmax_age = 20",
     "rule 1 ('x'): min_age is above max_age"),
    ("[[rule]]\nname = 'x'\nevents = ['A01']\nnotify = 'careteam:attending'\ndigest_minutes = 5",
     "rule 1 ('x'): a digest covers many patients"),
    ("[[rule]]\nname = 'x'\nevents = ['A01']\nnotify = 'group:OPS'\n[rule.fields]\n'PV1 16' = 'V'",
     "rule 1 ('x'): fields: 'PV1 16' is not a field path"),
    ("[[rule]]\nname = 'x'\nevents = ['A01']\nnotify = 'bleep:1'", "rule 1 ('x'): notify: 'bleep:1': unknown address"),
    ("[[rule]]\nname = 'x'\nevents = ['A01']\nnotify = 'ordering'", "an ADT has no ordering provider"),
    ("[[rule]]\nname = 'x'\nevents = ['A01']\nnotify = 'group:A'\n[[rule]]\nname = 'X'\nevents = ['A01']\n"
     "notify = 'group:A'", "rule 2: name 'X' is used twice"),
    ("rules = 1", "top level: rules: Extra inputs are not permitted"),
])
def test_a_bad_file_is_one_line_naming_file_rule_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    line = str(caught.value)
    assert line.startswith(f"invalid setting CARERELAY_HL7_PRESENTING_RULES_FILE: {path}"), line
    assert message in line and "\n" not in line, line


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.toml"):
        load_rules(tmp_path / "nope.toml")


def test_serve_refuses_to_start_on_a_bad_file_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[[rule]]\nname = 'late'\nevents = ['A01']\nnotify = 'group:OPS'\ndigest_minutes = -5\n")
    env = {**os.environ, "CARERELAY_HL7_PRESENTING_RULES_FILE": str(path),
           "CARERELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}", "CARERELAY_ENV_FILE": "/nonexistent"}
    result = subprocess.run([sys.executable, "-m", "carerelay", "serve"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"carerelay: invalid setting CARERELAY_HL7_PRESENTING_RULES_FILE: {path}: "
                                     "rule 1 ('late'): digest_minutes: Input should be greater than or equal to 0")
