"""The escalation auditor: stalled alerts, contact points before a shift, timer lag, paging rules that name
what does not exist; deduplicated alerts.

The shared test database also holds what real-server tests committed, so these tests look for
findings about their own alerts, slots and timers rather than counting every finding.
"""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.alerts import service as alerts
from carerelay.alerts.models import Alert, AlertRecipient
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory import service as directory
from carerelay.escalation import auditor
from carerelay.escalation.auditor import AuditorConfig, run_checks
from carerelay.integrations.paging import demo as paging_demo
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.rule_check import unresolvable_addresses
from carerelay.jobs import service as jobs
from carerelay.jobs.models import Timer
from carerelay.ops.metrics import REGISTRY
from carerelay.scheduling import service as scheduling
from tests.scheduling_factories import ADMIN, make_assignment, make_department, make_person, make_schedule, make_slot
from tests.scheduling_factories import person as find_person

CONFIG = AuditorConfig(interval_seconds=60, max_lag_seconds=30, shift_horizon_hours=12)


def _findings(session: Session, clock: FakeClock, config: AuditorConfig = CONFIG) -> dict[str, list[int]]:
    """Finding refs → the auditor alerts raised for them this run."""
    result = run_checks(session=session, clock=clock, config=config)
    raised = {a.source_ref: a.id for a in session.execute(select(Alert).where(Alert.id.in_(result.raised))).scalars()}
    return {f"{f.check}:{f.ref}": [raised[f"{f.check}:{f.ref}"]] if f"{f.check}:{f.ref}" in raised else []
            for f in result.findings}


def _recipients(session: Session, alert_id: int) -> set[int]:
    return set(session.execute(select(AlertRecipient.person_id).where(AlertRecipient.alert_id == alert_id)).scalars())


def _raise(session: Session, clock: FakeClock, username: str) -> Alert:
    return alerts.raise_alert(session=session, clock=clock, actor=cli_actor(), kind="audited", priority="urgent",
                              title="check me", body="", address=f"person:{find_person(session, username).id}",
                              source="test")


def test_an_open_alert_without_a_next_step_is_found_once(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        healthy, stalled = _raise(session, clock, "ghouse"), _raise(session, clock, "jwilson")
        jobs.cancel(session=session, clock=clock, key=f"alert:{stalled.id}:step")
        first = _findings(session, clock)
        assert f"stalled_alert:alert:{healthy.id}" not in first
        [raised] = first[f"stalled_alert:alert:{stalled.id}"]
        admins = {find_person(session, u).id for u in ("iadmin", "admin")}
        assert _recipients(session, raised) == admins
        finding = session.get_one(Alert, raised)
        assert finding.kind == "auditor_finding" and "no next step" in finding.title
        assert _findings(session, clock)[f"stalled_alert:alert:{stalled.id}"] == []  # found again, not re-alerted
        assert (REGISTRY.get_sample_value("carerelay_auditor_findings", {"check": "stalled_alert"}) or 0) >= 1


def test_a_finished_escalation_is_not_a_finding(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        alert = _raise(session, clock, "ghouse")
        alert_id = alert.id
    clock.advance(minutes=5)
    jobs.fire_due(db=db, clock=clock)  # "Everything else": the operators, then exhausted
    with db.unit_of_work() as session:
        assert session.get_one(Alert, alert_id).status == "open"
        assert f"stalled_alert:alert:{alert_id}" not in _findings(session, clock)


def _shift_tonight(session: Session, clock: FakeClock, code: str, *, scheduler: bool) -> tuple[int, int, int]:
    """A department on Chicago time with an evening shift (17:00–23:00 local, 9 hours from 08:00) for
    a new person without contact points; returns (department, person, slot)."""
    dept = make_department(session, clock, code=code, timezone="America/Chicago")
    if scheduler:
        directory.create_person(session=session, clock=clock, actor=ADMIN, data={
            "username": f"{code.lower()}sched", "given_name": "Sched", "family_name": code, "profession": "scheduler",
            "department_id": dept.id, "roles": ["scheduler"]})
    worker = make_person(session, clock, username=f"{code.lower()}doc", department_id=dept.id)
    evening = make_assignment(session, clock, department_id=dept.id, code=f"{code}-EVE", start=time(17),
                              end=time(23), name=f"{code} Evening")
    schedule = make_schedule(session, clock, department_id=dept.id, starts_on=date(2026, 11, 24),
                             ends_on=date(2026, 11, 24))
    slot = make_slot(session, clock, schedule=schedule, assignment=evening, on_date=date(2026, 11, 24),
                     person_id=worker.id)
    scheduling.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
    return dept.id, worker.id, slot.id


def test_a_rostered_person_without_a_working_contact_warns_the_scheduler_before_the_shift(
    db: Database, clock: FakeClock
) -> None:
    with db.unit_of_work() as session:
        _, worker, slot = _shift_tonight(session, clock, "AUDA", scheduler=True)
        found = _findings(session, clock)
        [raised] = found[f"contact_point:slot:{slot}"]
        alert = session.get_one(Alert, raised)
        assert _recipients(session, raised) == {find_person(session, "audasched").id}
        assert "AUDA Evening" in alert.title and "no working contact point" in alert.title
        assert alert.department_id is None and alert.data["department_id"] is not None
        assert alert.created_at < clock.now() + timedelta(hours=9)  # warned before 17:00 Chicago

        directory.add_contact_point(session=session, clock=clock, actor=ADMIN, person_id=worker, kind="sms",
                                    value="+15550199")
        assert f"contact_point:slot:{slot}" in _findings(session, clock)  # no SMS gateway here: still unreachable
        sms_config = AuditorConfig(channels=("sms",))
        assert f"contact_point:slot:{slot}" not in _findings(session, clock, sms_config)

        _, _, lonely = _shift_tonight(session, clock, "AUDB", scheduler=False)
        [to_admins] = _findings(session, clock)[f"contact_point:slot:{lonely}"]
        assert _recipients(session, to_admins) == {find_person(session, u).id for u in ("iadmin", "admin")}


def test_late_and_failing_timers_are_findings(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        jobs.schedule(session=session, clock=clock, kind="test.late", due_at=clock.now() - timedelta(minutes=2),
                      params={})
        assert "timer_lag:timers" in _findings(session, clock)
        assert (REGISTRY.get_sample_value("carerelay_timers_overdue") or 0) >= 1
        assert _findings(session, clock)["timer_lag:timers"] == []  # still open: not raised again
        late = jobs.schedule(session=session, clock=clock, kind="test.fired_late", params={},
                             due_at=clock.now() - timedelta(seconds=90))
        late.fired_at = clock.now()
        session.flush()
        run_checks(session=session, clock=clock, config=CONFIG)
        assert REGISTRY.get_sample_value("carerelay_timer_max_lag_seconds") == pytest.approx(90, abs=0.5)
    with db.unit_of_work() as session:
        broken = jobs.schedule(session=session, clock=clock, kind="test.no_handler", due_at=clock.now(), params={})
        broken_id = broken.id
    jobs.fire_due(db=db, clock=clock)
    with db.unit_of_work() as session:
        assert session.get_one(Timer, broken_id).attempts == 1
        [raised] = _findings(session, clock)[f"timer_failing:timer:{broken_id}"]
        assert "no handler" in session.get_one(Alert, raised).body


def test_the_auditor_runs_itself_on_the_durable_timers(db: Database, clock: FakeClock) -> None:
    config = AuditorConfig(interval_seconds=60)
    with db.unit_of_work() as session:  # a real-server test may have committed its node's auditor run
        jobs.cancel(session=session, clock=clock, key=auditor.AUDITOR_KEY)
    auditor.ensure_scheduled(db=db, clock=clock, config=config)
    auditor.ensure_scheduled(db=db, clock=clock, config=AuditorConfig(interval_seconds=60, channels=("sms",)))
    with db.unit_of_work() as session:
        [pending] = jobs.pending(session=session, key=auditor.AUDITOR_KEY)
        assert pending.params["channels"] == ["sms"]
        stalled = _raise(session, clock, "ghouse")
        jobs.cancel(session=session, clock=clock, key=f"alert:{stalled.id}:step")
        jobs.schedule(session=session, clock=clock, kind=auditor.AUDITOR_TIMER, key=auditor.AUDITOR_KEY,
                      due_at=clock.now() + timedelta(seconds=60), params=config.params())  # a second node's
    runs = REGISTRY.get_sample_value("carerelay_auditor_runs_total") or 0
    clock.advance(seconds=60)
    jobs.fire_due(db=db, clock=clock)
    assert (REGISTRY.get_sample_value("carerelay_auditor_runs_total") or 0) == runs + 2
    with db.unit_of_work() as session:
        [following] = jobs.pending(session=session, key=auditor.AUDITOR_KEY)
        assert following.due_at == clock.now() + timedelta(seconds=60)
        assert alerts.find_by_source(session=session, source="auditor",
                                     source_ref=f"stalled_alert:alert:{stalled.id}") is not None


def test_a_paging_rule_sending_a_units_calls_to_a_missing_group_is_found_once(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        demo_rules = {r["name"] for r in paging_demo.RULES}
        assert not [p for p in unresolvable_addresses(session=session, at=clock.now()) if p.rule in demo_rules]
        rule = paging.create_rule(session=session, clock=clock, actor=cli_actor(), name="4W bed exit, test",
                                  alert_kind="bed_exit", recipient_pattern=r"^4W-", target="group:{unit}-BED-WATCH",
                                  escalation={"steps": [{"address": "target:", "wait_minutes": 2},
                                                        {"address": "location:{unit}/charge_nurse", "wait_minutes": 2}],
                                              "fallback": "group:NIGHT-DESK"})
        mine = f"paging_rule:{rule.id}:"
        found = {ref: ids for ref, ids in _findings(session, clock).items() if ref.startswith(mine)}
        assert set(found) == {f"paging_rule:{rule.id}:group:4W-BED-WATCH", f"paging_rule:{rule.id}:group:NIGHT-DESK"}
        [missing] = found[f"paging_rule:{rule.id}:group:4W-BED-WATCH"]
        alert = session.get_one(Alert, missing)
        assert "4W-BED-WATCH" in alert.title and "for unit 4W" in alert.body and alert.kind == auditor.FINDING_KIND
        assert _findings(session, clock)[f"paging_rule:{rule.id}:group:4W-BED-WATCH"] == []  # raised once
        paging.update_rule(session=session, clock=clock, actor=cli_actor(), rule_id=rule.id,
                           changes={"target": "location:{unit}/charge_nurse", "escalation": None})
        assert not [f for f in _findings(session, clock) if f.startswith(mine)]
