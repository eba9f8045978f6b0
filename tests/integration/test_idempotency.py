"""Two truly concurrent sends with one Idempotency-Key never store two messages.

These tests commit for real (concurrency needs separate connections, not the rolled-back test
transaction), so they use people no other test writes to.

What each database does with the duplicate:
- PostgreSQL: the first request holds an advisory lock on (person, key) until it commits; a duplicate
  arriving meanwhile gets 409 at once, one arriving after the commit gets the first result.
- SQLite: every write transaction starts with BEGIN IMMEDIATE, so the duplicate cannot even begin while
  the first holds the write lock; it waits (busy timeout) and then gets the first result. It never
  sees a 409.
"""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import Engine, func, select

from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.core.errors import Conflict
from carerelay.demo import DEMO_PASSWORD
from carerelay.directory.models import Person
from carerelay.messaging import service
from carerelay.messaging.models import ConversationKind, Message
from tests.conftest import Backend
from tests.servers import running_server

WAIT = 30.0


def _actor(db: Database, username: str) -> Actor:
    with db.unit_of_work() as session:
        person_id = session.execute(select(Person.id).where(Person.username == username)).scalar_one()
    return Actor(person_id=person_id, username=username)


def _stored(db: Database, conversation_id: int) -> int:
    with db.unit_of_work() as session:
        return int(session.execute(select(func.count()).select_from(Message)
                                   .where(Message.conversation_id == conversation_id)).scalar_one())


def _writer_can_begin(backend: Backend) -> bool:
    """Whether another connection could start a write transaction now, without waiting at all."""
    probe = sqlite3.connect(backend.url.split(":///", 1)[1], timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        probe.close()


def test_a_duplicate_while_the_first_is_uncommitted(backend: Backend, engine: Engine) -> None:
    db, clock = Database(engine), FakeClock()
    sender, other = _actor(db, "epetrova"), _actor(db, "ohaddad")
    with db.unit_of_work() as session:
        assert other.person_id is not None
        conversation = service.create_conversation(session=session, clock=clock, actor=sender,
                                                   kind=ConversationKind.DIRECT, member_ids=[other.person_id])
    request = service.SendRequest(conversation_id=conversation.id, text="K+ 6.8, repeat lab drawn")
    key = f"retry-{backend.name}"
    second_started, second_answered = threading.Event(), threading.Event()
    answer: dict[str, Any] = {}

    def duplicate() -> None:
        second_started.set()
        try:
            with db.unit_of_work() as session:
                answer["result"] = service.send_message(session=session, clock=clock, actor=sender, request=request,
                                                        idempotency_key=key)
        except Conflict as exc:
            answer["result"] = exc
        finally:
            second_answered.set()

    with ThreadPoolExecutor(1) as pool, db.unit_of_work() as session:
        first, replayed = service.send_message(session=session, clock=clock, actor=sender, request=request,
                                               idempotency_key=key)
        assert not replayed
        running = pool.submit(duplicate)
        assert second_started.wait(WAIT)
        if backend.name == "postgresql":
            assert second_answered.wait(WAIT), "the duplicate must not wait for the first to finish"
            refused = answer["result"]
            assert isinstance(refused, Conflict) and refused.field == "Idempotency-Key"
            assert "still being processed" in refused.message
        else:
            # No writer can begin while this transaction holds SQLite's write lock: the duplicate waits.
            assert not _writer_can_begin(backend)
            assert not second_answered.is_set()
    running.result(timeout=WAIT)
    if backend.name == "sqlite":
        again, was_replayed = answer["result"]
        assert was_replayed and again.id == first.id
    with db.unit_of_work() as session:
        retry, was_replayed = service.send_message(session=session, clock=clock, actor=sender, request=request,
                                                   idempotency_key=key)
    assert was_replayed and retry.id == first.id
    assert _stored(db, conversation.id) == 1


@pytest.mark.slow
def test_concurrent_http_duplicates_store_one_message(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    with running_server(backend.cli_url(), tmp_path) as server:
        signed = httpx.post(f"{server.base_url}/api/auth/sign-in",
                            json={"username": "mvogel", "password": DEMO_PASSWORD, "kind": "api"})
        assert signed.status_code == 200, signed.text
        bearer = {"Authorization": f"Bearer {signed.json()['token']}"}
        peer = Database(engine)
        other = _actor(peer, "iduarte")
        conv = httpx.post(f"{server.base_url}/api/conversations", headers=bearer,
                          json={"kind": "direct", "member_ids": [other.person_id]})
        assert conv.status_code == 201, conv.text
        url = f"{server.base_url}/api/conversations/{conv.json()['id']}/messages"
        rounds = 12
        barrier = threading.Barrier(2)

        def post(key: str) -> httpx.Response:
            with httpx.Client(timeout=WAIT) as http:
                barrier.wait(WAIT)
                return http.post(url, headers={**bearer, "Idempotency-Key": key},
                                 json={"text": f"concurrent {key}"})

        outcomes = []
        with ThreadPoolExecutor(2) as pool:
            for n in range(rounds):
                pair = [pool.submit(post, f"pair-{n}") for _ in range(2)]
                outcomes.append([f.result(timeout=WAIT) for f in pair])
        for responses in outcomes:
            created = [r for r in responses if r.status_code == 201]
            assert len(created) >= 1 and all(r.status_code in (201, 409) for r in responses), \
                [(r.status_code, r.text) for r in responses]
            assert len({r.json()["id"] for r in created}) == 1
            assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in created) == 1
            if backend.name == "sqlite":
                assert all(r.status_code == 201 for r in responses)  # writes are serial: a replay, never 409
        with peer.unit_of_work() as session:
            stored = session.execute(select(Message.body, func.count()).where(
                Message.conversation_id == conv.json()["id"]).group_by(Message.body)).all()
        assert sorted(stored) == sorted((f"concurrent pair-{n}", 1) for n in range(rounds))
