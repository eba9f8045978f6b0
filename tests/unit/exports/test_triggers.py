"""What queues a run: the change log and publish versions (read on a timer), and time triggers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.exports import runner, service
from carerelay.integrations.exports.models import ExportRun
from carerelay.scheduling import service as scheduling
from tests.exports_helpers import ADMIN, folder, make_connector, map_codes
from tests.scheduling_factories import department, person


def _queued(db: Database, cid: int) -> list[str]:
    with db.unit_of_work() as session:
        return [r.reason for r in reversed(service.list_runs(session=session, connector_id=cid))]


def _drain(db: Database, clock: FakeClock) -> None:
    runner.queue_due(db=db, clock=clock)
    runner.send_due(db=db, clock=clock)


def _edit(db: Database, clock: FakeClock) -> int:
    with db.unit_of_work() as session:
        card = department(session, "CARD").id
        schedule = scheduling.find_schedule(session=session, department_id=card, on_date=date(2026, 11, 24))
        assert schedule is not None
        slot = next(s for s in scheduling.list_slots(session=session, schedule_id=schedule.id,
                                                     on_date=date(2026, 11, 24))
                    if s.assignment.code == "CARD-CALL1-NIGHT")
        scheduling.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=slot.id,
                               fields=scheduling.SlotFields(person_id=person(session, "tlindqvist").id))
        return schedule.id


def test_change_and_publish_triggers_follow_the_change_log(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    mapping = {"CARD-CALL1-NIGHT": {"team_id": "C"}}
    with db.unit_of_work() as session:
        on_change = make_connector(session, clock, target="epic_on_call_finder", name="change", departments=["CARD"],
                                   trigger={"kind": "on_change"}, transport=folder(tmp_path, "a"))
        on_publish = make_connector(session, clock, target="epic_on_call_finder", name="publish",
                                    departments=["CARD"], trigger={"kind": "on_publish"},
                                    transport=folder(tmp_path, "b"), mapping_key="epic_b")
        neuro = make_connector(session, clock, target="epic_on_call_finder", name="neuro", departments=["NEURO"],
                               trigger={"kind": "on_change"}, transport=folder(tmp_path, "c"))
        for connector in (on_change, on_publish):
            map_codes(session, clock, connector, mapping)
        ids = on_change.id, on_publish.id, neuro.id
    _drain(db, clock)
    assert [_queued(db, cid) for cid in ids] == [["initial sync"]] * 3
    _drain(db, clock)
    assert [len(_queued(db, cid)) for cid in ids] == [1, 1, 1]  # nothing new: nothing queued

    schedule_id = _edit(db, clock)
    _drain(db, clock)
    assert [_queued(db, cid)[1:] for cid in ids] == [["schedule change"], [], []]  # NEURO is out of scope

    with db.unit_of_work() as session:
        scheduling.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule_id)
    _drain(db, clock)
    with db.unit_of_work() as session:
        scheduling.unpublish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule_id)
    _drain(db, clock)
    assert _queued(db, ids[1])[1:] == ["publish", "publish"]
    with db.unit_of_work() as session:
        runs = service.list_runs(session=session, connector_id=ids[1])
        assert runs[0].row_count == 0 and runs[1].row_count > 0  # withdrawn: the full file is empty now


def test_a_trigger_while_a_run_waits_folds_into_it(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="schedule_backup",
                                   trigger={"kind": "interval", "minutes": 10},
                                   transport={"kind": "folder", "path": "/proc/no-such-place"})
        cid = connector.id
        assert connector.next_due_at == datetime(2026, 11, 24, 14, 10, tzinfo=UTC)
    clock.advance(timedelta(minutes=10))
    _drain(db, clock)
    with db.unit_of_work() as session:
        [run] = service.list_runs(session=session, connector_id=cid)
        assert run.status == "retrying"
    clock.advance(timedelta(seconds=30))  # the next interval comes before the retry: no second run
    clock.advance(timedelta(minutes=10))
    runner.queue_due(db=db, clock=clock)
    with db.unit_of_work() as session:
        assert [r.status for r in service.list_runs(session=session, connector_id=cid)] == ["retrying"]
        assert session.get(ExportRun, run.id) is not None
