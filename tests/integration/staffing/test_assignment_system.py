"""Polling an assignment system over REST (a local server in the documented shape): snapshot, precedence,
paging, failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from sqlalchemy.orm import Session

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.staffing import feeds, service
from carerelay.staffing.models import StaffingFeed
from carerelay.staffing.sync import engine
from tests.integration.staffing.assignment_system import SystemState, assignment_system
from tests.staffing_support import ADMIN, DAY_START, NIGHT_START, who


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, SystemState]]:
    monkeypatch.setenv("CARERELAY_TEST_RS_TOKEN", "rs-token")
    with assignment_system() as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=5) as client:
        yield client


def _assignment(key: str, staff: str, role: str, room: str | None = None, bed: str | None = None,
                **extra: Any) -> dict[str, Any]:
    return {"assignmentId": key, "staff": {"employeeId": staff, "displayName": staff}, "role": role,
            "location": {"unit": "ICU", "room": room, "bed": bed}, "start": DAY_START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": NIGHT_START.strftime("%Y-%m-%dT%H:%M:%SZ"), "status": "ACTIVE", **extra}


def _feed(session: Session, clock: FakeClock, base: str) -> StaffingFeed:
    return feeds.create_feed(session=session, clock=clock, actor=ADMIN, name="Rauland Sync ICU", kind="rest",
                             adapter="rauland_sync", id_field="unique_id",
                             config={"base_url": base, "facility": "MAINHOSP", "units": ["ICU"],
                                     "secret_env": "CARERELAY_TEST_RS_TOKEN"})


def test_a_poll_is_the_truth_for_its_units(db: Database, clock: FakeClock, system: tuple[str, SystemState],
                                          http: httpx2.Client) -> None:
    base, state = system
    with db.unit_of_work() as session:
        service.configure_unit(session=session, clock=clock, actor=ADMIN, unit="ICU", shift_changes=None,
                               flag_minutes_before=None, precedence=["sync", "manual", "file", "adt_rol"])
        feed = _feed(session, clock, base)
        state.units["ICU"] = [_assignment("A-1", "N814", "PRIMARY_RN", "2", "A"),  # Omar Haddad, not Hannah Lee
                              _assignment("A-2", "N814", "PRIMARY_RN", "5", "A"),
                              _assignment("A-3", "N809", "CHARGE_RN")]  # Hannah Lee in charge, not Peter Novak
        run = engine.poll(session=session, clock=clock, feed=feed, http=http, trigger="test").run
        assert (run.status, run.applied, run.conflicts) == ("ok", 3, 2), (run.errors, run.warnings)
        assert {c.outcome for c in service.list_conflicts(session=session, unit="ICU")} == {"incoming_applied"}
        assert len([r for r in state.requests if "/units/ICU/" in r]) == 2  # two pages
        assert who(session, "location:ICU/2/A/nurse", clock.now()) == ["ohaddad"]
        reason = engine_reason(session, clock, "location:ICU/5/A/nurse")
        assert reason.startswith("ICU-5-A primary nurse, from Rauland Sync ICU (assignment A-2) for 07:00–19:00")
        # the vendor drops A-2 and cancels A-1: those end; an unchanged A-3 changes nothing
        state.units["ICU"] = [_assignment("A-1", "N814", "PRIMARY_RN", "2", "A", status="CANCELLED"),
                              _assignment("A-3", "N809", "CHARGE_RN")]
        clock.advance(minutes=30)
        again = engine.poll(session=session, clock=clock, feed=feed, http=http, trigger="test").run
        assert (again.status, again.applied, again.unchanged, again.ended) == ("ok", 0, 1, 2), again.errors
        assert who(session, "location:ICU/5/A/nurse", clock.now()) == ["hlee"]  # the charge nurse now
        # what the sync replaced stays replaced: the bed's earlier manual nurse is not restored by itself
        assert who(session, "location:ICU/2/A/nurse", clock.now()) == ["hlee"]


def engine_reason(session: Session, clock: FakeClock, address: str) -> str:
    from carerelay.routing.resolver import resolve

    return resolve(session, address, clock.now()).recipients[0].reason


def test_a_vendor_failure_changes_nothing(db: Database, clock: FakeClock, system: tuple[str, SystemState],
                                          http: httpx2.Client) -> None:
    base, state = system
    with db.unit_of_work() as session:
        feed = _feed(session, clock, base)
        state.units["ICU"] = [_assignment("A-9", "N811", "PRIMARY_RN", "6", "A")]
        assert engine.poll(session=session, clock=clock, feed=feed, http=http, trigger="test").run.applied == 1
        state.fail_with = 503
        failed = engine.poll(session=session, clock=clock, feed=feed, http=http, trigger="test").run
        assert failed.status == "failed" and "503" in (failed.error or "")
        assert who(session, "location:ICU/6/A/nurse", clock.now()) == ["arahman"]  # nothing ended
        state.fail_with = None
        state.token = "rotated"
        refused = engine.poll(session=session, clock=clock, feed=feed, http=http, trigger="test").run
        assert refused.status == "failed" and "401" in (refused.error or "")


def test_unknown_codes_and_people_are_reported_per_assignment(db: Database, clock: FakeClock,
                                                              system: tuple[str, SystemState],
                                                              http: httpx2.Client) -> None:
    base, state = system
    with db.unit_of_work() as session:
        feed = _feed(session, clock, base)
        state.units["ICU"] = [_assignment("A-1", "N814", "PRIMARY_RN", "2", "A"),
                              _assignment("A-4", "N000", "PRIMARY_RN", "3", "A"),
                              _assignment("A-5", "N811", "CHAPLAIN", "4", "A"),
                              _assignment("A-6", "N811", "PRIMARY_RN", "4", "A", start="yesterday")]
        run = engine.poll(session=session, clock=clock, feed=feed, http=http, trigger="test").run
        assert run.status == "rejected" and run.applied == 0
        assert [(e["where"], e["field"]) for e in run.errors] == [
            ("assignment A-4", "staff.employeeId"), ("assignment A-5", "role"), ("assignment A-6", "start")]
        assert who(session, "location:ICU/2/A/nurse", clock.now()) == ["hlee"]  # nothing applied
