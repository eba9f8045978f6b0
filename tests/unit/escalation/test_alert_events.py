"""An alert's events stay small however many people a step reaches: each gets a copy, so a copy holding
everyone's reason made a step to a group of N people cost N² in events — enough, for a large group, to
make the step itself fail and the escalation stall."""

from __future__ import annotations

import json

from sqlalchemy import select

from carerelay.alerts import service as alerts
from carerelay.alerts.models import AlertEvent
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.realtime import service as realtime
from carerelay.realtime.models import Event
from tests.crowd import crowd


def _raised(db: Database, clock: FakeClock, address: str) -> tuple[int, list[tuple[int, dict[str, object]]]]:
    with db.unit_of_work() as session:
        alert = alerts.raise_alert(session=session, clock=clock, actor=cli_actor("test"), kind="manual",
                                   priority="urgent", title="Mass casualty drill", body="", source="test",
                                   address=address)
    with db.unit_of_work() as session:
        rows = session.execute(select(Event.person_id, Event.payload).where(Event.kind == "alert.new")).all()
    return alert.id, [(p, d) for p, d in rows if d["id"] == alert.id]


def test_a_step_to_a_large_group_announces_the_alert_without_everyones_reason(db: Database,
                                                                              clock: FakeClock) -> None:
    ids = crowd(db, clock, 300, group="DRILL")
    alert_id, announced = _raised(db, clock, "group:DRILL")
    assert sorted(p for p, _ in announced) == ids
    payload = announced[0][1]
    assert payload["partial"] is True and payload["reasons"] is None
    assert len(json.dumps(payload)) < 2000
    with db.unit_of_work() as session:  # each reason is in the alert's trail (GET /api/alerts/{id})
        notified = session.execute(select(AlertEvent.person_id, AlertEvent.detail)
                                   .where(AlertEvent.alert_id == alert_id, AlertEvent.kind == "notified")).all()
    assert sorted(p for p, _ in notified) == ids and all(d["reason"] for _, d in notified)


def test_a_step_to_a_few_people_announces_each_ones_reason(db: Database, clock: FakeClock) -> None:
    ids = crowd(db, clock, realtime.PEOPLE_LISTED_MAX, group="FEW")
    _, announced = _raised(db, clock, "group:FEW")
    assert len(announced) == realtime.PEOPLE_LISTED_MAX
    payload = announced[0][1]
    assert payload["partial"] is False
    reasons = payload["reasons"]
    assert isinstance(reasons, dict) and sorted(int(p) for p in reasons) == ids
