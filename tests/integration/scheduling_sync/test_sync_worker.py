"""The worker in every node pulls due scheduler syncs itself (no cron), vendor calls outside transactions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

import httpx2
import pytest
from sqlalchemy import func, select

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.jobs import worker
from carerelay.scheduling import service
from carerelay.scheduling.models import Slot, SyncRun
from carerelay.scheduling.sync import engine
from tests.integration.conftest import FreshDatabase
from tests.integration.scheduling_sync.vendors import vendor_server
from tests.scheduling_factories import ADMIN, make_assignment, make_department, make_person, make_schedule

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


def _qgenda_source(db: Database, clock: FakeClock, base_url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("CARERELAY_TEST_WORKER_SECRET", "s3cret")
    with db.unit_of_work() as session:
        dept = make_department(session, clock, code="WED", timezone="America/New_York")
        day = make_assignment(session, clock, department_id=dept.id, code="WED-DAY", start=clock_time(7),
                              end=clock_time(19), kind="shift")
        schedule = make_schedule(session, clock, department_id=dept.id, starts_on=date(2026, 11, 1),
                                 ends_on=date(2026, 11, 30))
        service.publish_schedule(session=session, clock=clock, actor=ADMIN, schedule_id=schedule.id)
        doctor = make_person(session, clock, username="wdoc", department_id=dept.id)
        source = engine.create_source(session=session, clock=clock, actor=ADMIN, vendor="qgenda", name="WED",
                                      department_id=dept.id, base_url=f"{base_url}/v2", account="CK-1",
                                      username="sync@example.org", secret_env="CARERELAY_TEST_WORKER_SECRET")
        engine.map_person(session=session, clock=clock, actor=ADMIN, source_id=source.id, external_id="S1",
                          person_id=doctor.id)
        engine.map_assignment(session=session, clock=clock, actor=ADMIN, source_id=source.id, external_id="T-DAY",
                              assignment_id=day.id)
        return source.id


def _entry(key: str, day: int) -> dict[str, object]:
    start = datetime(2026, 11, day, 12, tzinfo=UTC)  # 07:00 in New York
    return {"ScheduleKey": key, "StaffKey": "S1", "StaffFName": "W", "StaffLName": "Doc", "TaskKey": "T-DAY",
            "TaskName": "Day", "StartDateUTC": f"{start:%Y-%m-%dT%H:%M:%SZ}",
            "EndDateUTC": f"{start + timedelta(hours=12):%Y-%m-%dT%H:%M:%SZ}", "IsPublished": True, "IsStruck": False}


@contextmanager
def running_worker(db: Database, clock: FakeClock) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    task: list[asyncio.Task[None]] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        task.append(loop.create_task(worker.run_forever(db, clock, {}, schedule_sync=True)))
        loop.run_forever()
        loop.run_until_complete(worker.stop(task[0]))
        loop.close()

    thread = threading.Thread(target=run, name="worker-test", daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def _runs(db: Database, source_id: int) -> int:
    with db.unit_of_work() as session:
        return session.execute(select(func.count()).select_from(SyncRun).where(SyncRun.source_id == source_id)
                               ).scalar_one()


def test_the_worker_pulls_each_source_every_15_minutes(fresh_database: FreshDatabase,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db, clock = fresh_database.db, FakeClock(NOW)
    monkeypatch.setattr(worker, "SYNC_CHECK_SECONDS", 0.05)
    with vendor_server() as (base_url, state):
        source_id = _qgenda_source(db, clock, base_url, monkeypatch)
        state.qgenda_entries = [_entry("K1", 24), _entry("K2", 25)]
        with running_worker(db, clock):
            _until(lambda: _runs(db, source_id) == 1, "the worker's first pull")
            with db.unit_of_work() as session:
                keys = list(session.execute(select(Slot.external_key).order_by(Slot.starts_at)).scalars())
            assert keys == [f"{source_id}:K1", f"{source_id}:K2"]
            pulls = len([r for r in state.requests if r.startswith("GET /v2/schedule")])
            assert worker.sync_schedules_once(db, clock) == 0  # pulled under 15 minutes ago: not due
            state.qgenda_entries = [_entry("K1", 24)]  # the vendor dropped the 25th
            clock.advance(minutes=15)
            _until(lambda: _runs(db, source_id) == 2, "the pull 15 minutes later")
        assert len([r for r in state.requests if r.startswith("GET /v2/schedule")]) == pulls + 1
    with db.unit_of_work() as session:
        assert list(session.execute(select(Slot.external_key)).scalars()) == [f"{source_id}:K1"]
        runs = [(r.status, r.created, r.removed) for r in session.execute(
            select(SyncRun).where(SyncRun.source_id == source_id).order_by(SyncRun.id)).scalars()]
    assert runs == [("ok", 2, 0), ("ok", 0, 1)]


def test_a_due_source_is_claimed_once_and_a_dead_vendor_fails_the_run(fresh_database: FreshDatabase,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db, clock = fresh_database.db, FakeClock(NOW)
    with vendor_server() as (base_url, state):
        source_id = _qgenda_source(db, clock, base_url, monkeypatch)
        with db.unit_of_work() as session:
            [(claimed, zone)] = engine.claim_due(session=session, now=clock.now())
            assert claimed.id == source_id and zone == "America/New_York"
            assert engine.claim_due(session=session, now=clock.now()) == []  # taken: nobody else pulls it
        clock.advance(minutes=15)
        state.fail_with = 503
        with httpx2.Client(timeout=5) as http:
            [run] = engine.sync_due(db=db, clock=clock, http=http)
    assert run.status == "failed" and "503" in (run.error or "")
    assert _runs(db, source_id) == 1
