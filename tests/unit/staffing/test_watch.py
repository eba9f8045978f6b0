"""Who hears that a unit's board changed: once per transaction, whatever changed it, and only the
people who may change that unit's assignments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Conflict
from carerelay.jobs import service as jobs
from carerelay.realtime import service as realtime
from carerelay.staffing import service, watch
from tests.staffing_support import ADMIN, NIGHT_START, arm, pid


def _heard(session: Session, username: str, after: int) -> list[dict[str, object]]:
    return [e.payload for e in realtime.events_after(session=session, person_id=pid(session, username),
                                                     after_seq=after) if e.kind == watch.BOARD_CHANGED]


def _marks(db: Database, *usernames: str) -> dict[str, int]:
    with db.unit_of_work() as session:
        return {u: realtime.last_seq(session=session, person_id=pid(session, u)) for u in usernames}


def test_a_copied_shift_is_one_event_for_the_units_board_people(db: Database, clock: FakeClock) -> None:
    with db.unit_of_work() as session:
        audience = set(watch.board_audience(session, service.get_unit(session, "4W"), clock.now()))
        assert {pid(session, u) for u in ("dwhitaker", "golsen", "kasante", "admin", "iadmin")} <= audience
        assert pid(session, "hlee") not in audience and pid(session, "ghouse") not in audience
    marks = _marks(db, "golsen", "admin", "hlee")
    with db.unit_of_work() as session:  # each copied row in a savepoint of its own; some are refused
        report = service.copy_shift(session=session, clock=clock, actor=ADMIN, unit="4W", into="next")
        assert report.copied and report.skipped
    with db.unit_of_work() as session:
        assert _heard(session, "golsen", marks["golsen"]) == [{"unit": "4W"}]
        assert _heard(session, "admin", marks["admin"]) == [{"unit": "4W"}]
        assert _heard(session, "hlee", marks["hlee"]) == []


def test_the_shift_change_tells_the_board_and_a_refused_change_tells_nobody(db: Database, clock: FakeClock) -> None:
    arm(db, clock, "4W")
    marks = _marks(db, "golsen")
    with db.unit_of_work() as session, pytest.raises(Conflict, match="already has Carol Nurse"), \
            session.begin_nested():
        service.assign(session=session, clock=clock, actor=ADMIN, item=service.AssignmentIn(
            unit="4W", role="nurse", person_id=pid(session, "kasante"), room="412", bed="B"))
    with db.unit_of_work() as session:
        assert _heard(session, "golsen", marks["golsen"]) == []
    clock.set(NIGHT_START + timedelta(seconds=1))
    jobs.fire_due(db=db, clock=clock)
    with db.unit_of_work() as session:
        assert _heard(session, "golsen", marks["golsen"]) == [{"unit": "4W"}]
