"""`carerelay db copy`: a SQLite installation moves to PostgreSQL, exactly, or not at all."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from carerelay.auth.models import AuthSession
from carerelay.auth.service import start_session
from carerelay.config import load_settings
from carerelay.core.actor import Actor, cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database, make_engine
from carerelay.core.errors import Conflict, Invalid
from carerelay.core.migrate import upgrade
from carerelay.demo import load_demo
from carerelay.directory.models import Person
from carerelay.jobs.models import Timer
from carerelay.messaging import service as messaging
from carerelay.messaging.models import ConversationKind, Message
from carerelay.ops.dbcopy import MIGRATION_SEEDED, copy_database
from carerelay.patients import service as patients
from carerelay.patients.models import Patient
from carerelay.schema import metadata
from tests.conftest import fresh_backend

CLI = [sys.executable, "-m", "carerelay"]


def _run(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARERELAY_DATABASE_URL": database_url}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty PostgreSQL schema, as a URL any process can use (skipped, saying why, without one)."""
    with fresh_backend("postgresql", tmp_path) as backend:
        yield backend.cli_url()


def _actor(db: Database, username: str) -> Actor:
    with db.unit_of_work() as session:
        person_id = session.execute(select(Person.id).where(Person.username == username)).scalar_one()
    return Actor(person_id=person_id, username=username)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[str]:
    """The demo hospital on SQLite, with a conversation, an escalating message and a merged patient."""
    url = f"sqlite:///{tmp_path / 'carerelay.db'}"
    engine = make_engine(url)
    upgrade(engine)
    db, clock = Database(engine), FakeClock()
    with db.unit_of_work() as session:
        load_demo(session=session, clock=clock, actor=cli_actor("test-setup"))
    nurse, doc = _actor(db, "cnurse"), _actor(db, "jwilson")
    with db.unit_of_work() as session:
        assert doc.person_id is not None
        conversation = messaging.create_conversation(session=session, clock=clock, actor=nurse,
                                                     kind=ConversationKind.DIRECT, member_ids=[doc.person_id])
        messaging.send_message(session=session, clock=clock, actor=nurse, request=messaging.SendRequest(
            conversation_id=conversation.id, text="copied: potassium 6.8 in 412-B", needs_ack=True))
        merged = patients.register_patient(session=session, clock=clock, actor=nurse,
                                           demographics=patients.Demographics(mrn="MRN-OLD", family="DOE"))
        survivor = patients.register_patient(session=session, clock=clock, actor=nurse,
                                             demographics=patients.Demographics(mrn="MRN-NEW", family="DOE"))
        merged.merged_into_id = survivor.id  # points at a row with a larger id: copied first, linked last
    engine.dispose()
    yield url


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in metadata.sorted_tables}


def test_copy_moves_everything_and_new_rows_continue_after_the_copied_ids(source: str, target: str) -> None:
    copied = _run("db", "copy", "--to", target, database_url=source)
    assert copied.returncode == 0, copied.stderr
    assert "audit chain intact on the target" in copied.stdout
    before, after = _counts(make_engine(source)), _counts(make_engine(target))
    assert after == {**before, "audit_entries": before["audit_entries"] + 1}  # + the copy's own entry
    assert before["messages"] == 1 and before["timers"] >= 1 and before["auth_sessions"] == 0
    bar = copied.stderr.replace("\n", " ")
    rows = sum(n for name, n in before.items() if name not in MIGRATION_SEEDED)
    assert "done" in bar and f"{rows}/{rows}" in bar  # the progress bar's end

    verified = _run("audit", "verify", database_url=target)
    assert verified.returncode == 0, verified.stderr
    assert f"{before['audit_entries'] + 1} entries verified" in verified.stdout

    engine = make_engine(target)
    db, clock = Database(engine), FakeClock()
    with db.unit_of_work() as session:
        largest = {name: session.execute(select(func.max(column))).scalar_one()
                   for name, column in (("messages", Message.id), ("timers", Timer.id), ("patients", Patient.id))}
        old = session.execute(select(Patient).where(Patient.mrn == "MRN-OLD")).scalar_one()
        new = session.execute(select(Patient).where(Patient.mrn == "MRN-NEW")).scalar_one()
        assert old.merged_into_id == new.id
    nurse, doc = _actor(db, "cnurse"), _actor(db, "jwilson")
    with db.unit_of_work() as session:
        person = session.get_one(Person, nurse.person_id)
        opened = start_session(session=session, clock=clock, settings=load_settings(database_url=target), person=person,
                               method="test")
        found = messaging.search_messages(session=session, clock=clock, actor=doc, query="potassium")
        assert [m.text for m in found] == ["copied: potassium 6.8 in 412-B"]  # PostgreSQL built the search data
        conversation_id = found[0].conversation_id
        sent, _ = messaging.send_message(session=session, clock=clock, actor=nurse, request=messaging.SendRequest(
            conversation_id=conversation_id, text="after the move", needs_ack=True))
        fresh = patients.register_patient(session=session, clock=clock, actor=nurse,
                                          demographics=patients.Demographics(mrn="MRN-AFTER"))
        assert opened.session.id == 1 and session.get(AuthSession, 1) is not None
        assert sent.id == largest["messages"] + 1 and fresh.id == largest["patients"] + 1
        assert max(t.id for t in session.execute(select(Timer)).scalars()) > largest["timers"]
    verified = _run("audit", "verify", database_url=target)
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout, verified.stderr
    engine.dispose()


def test_a_target_that_is_not_empty_is_refused_and_left_alone(source: str, target: str) -> None:
    assert _run("db", "copy", "--to", target, database_url=source).returncode == 0
    before = _counts(make_engine(target))
    again = _run("db", "copy", "--to", target, database_url=source)
    assert again.returncode == 2
    assert "target database is not empty" in again.stderr and "nothing was changed" in again.stderr
    assert _counts(make_engine(target)) == before
    with pytest.raises(Conflict):
        copy_database(source=make_engine(source), target=make_engine(target), clock=FakeClock(), actor=cli_actor())
    wrong_way = _run("db", "copy", "--to", source, database_url=target)
    assert wrong_way.returncode == 2 and "source must be the SQLite database" in wrong_way.stderr


def test_a_row_postgresql_refuses_leaves_the_target_empty(source: str, target: str) -> None:
    with sqlite3.connect(source.split(":///", 1)[1]) as raw:  # SQLite does not enforce lengths; PostgreSQL does
        raw.execute("INSERT INTO login_throttle (username, failures) VALUES (?, 1)", ("x" * 300,))
    stages: list[tuple[str, int, int]] = []
    with pytest.raises(Invalid, match="table login_throttle: a row could not be copied"):
        copy_database(source=make_engine(source), target=make_engine(target), clock=FakeClock(), actor=cli_actor(),
                      progress=lambda stage, done, total: stages.append((stage, done, total)))
    assert stages[0][0] == "starting" and any(stage == "audit_entries" for stage, _, _ in stages)
    assert all(done <= total for _, done, total in stages)
    assert not any(n for name, n in _counts(make_engine(target)).items() if name not in MIGRATION_SEEDED)
