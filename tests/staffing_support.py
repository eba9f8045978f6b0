"""Helpers for staffing tests: demo people by user name, assignments and feeds with little typing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.core.actor import cli_actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.routing.resolver import resolve
from carerelay.staffing import feeds, handover, service
from carerelay.staffing.models import StaffingFeed

ADMIN = cli_actor("test")
DAY_START = datetime(2026, 11, 24, 13, tzinfo=UTC)  # 07:00 in Chicago (the FakeClock starts at 08:00)
NIGHT_START = datetime(2026, 11, 25, 1, tzinfo=UTC)  # 19:00 in Chicago
NEXT_DAY_START = datetime(2026, 11, 25, 13, tzinfo=UTC)


def pid(session: Session, username: str) -> int:
    return session.execute(select(Person.id).where(Person.username == username)).scalar_one()


def assign(session: Session, clock: Clock, unit: str, role: str, username: str, room: str = "", bed: str = "",
           **extra: Any) -> service.Change:
    replace = extra.pop("replace", False)
    actor = extra.pop("actor", ADMIN)
    return service.assign(session=session, clock=clock, actor=actor, replace=replace,
                          item=service.AssignmentIn(unit=unit, role=role, person_id=pid(session, username), room=room,
                                                    bed=bed, **extra))


def who(session: Session, address: str, at: datetime) -> list[str]:
    """User names an address reaches at ``at``."""
    ids = resolve(session, address, at).person_ids
    names = dict(session.execute(select(Person.id, Person.username).where(Person.id.in_(ids))).all())
    return [names[i] for i in ids]


def file_feed(session: Session, clock: Clock, name: str = "staffing files", **extra: Any) -> StaffingFeed:
    config = {"host": "127.0.0.1", "port": 22, "username": "carerelay", "remote_dir": "/outbox",
              "known_host_key": "ssh-ed25519 AAAA", "client_key_file": "/dev/null", **extra.pop("config", {})}
    return feeds.create_feed(session=session, clock=clock, actor=ADMIN, name=name, kind="sftp_csv", config=config,
                             **extra)


def csv_bytes(*rows: str, header: str = "person,unit,room,bed,role,start,end") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def arm(db: Database, clock: Clock, *units: str) -> None:
    """Hand-over timers from the test's clock: real-server tests (on the system clock) share the demo
    database and may already have fired the demo's and re-armed them for their own today."""
    with db.unit_of_work() as session:
        for code in units:
            handover.reschedule(session=session, clock=clock, unit=service.get_unit(session, code))
