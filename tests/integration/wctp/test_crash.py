"""Scenario 8 for WCTP: SIGKILL `carerelay serve` while nurse-call senders post SubmitRequests.

Every submission answered with WCTP success before the kill is in the store; after the restart the
senders send again what was never answered (as a nurse-call server does), and then every submission
has exactly one accepted row and one alert, whose first escalation step fires exactly once — whether
that step was due before the kill, being fired at the kill, or due after the restart.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import Engine, func, select

from carerelay.alerts.models import Alert, AlertEvent
from carerelay.core.actor import cli_actor
from carerelay.core.clock import SystemClock
from carerelay.core.db import Database
from carerelay.integrations.paging import service as paging
from carerelay.integrations.paging.models import MessageStatus, PagingMessage
from carerelay.jobs.models import Timer
from tests.conftest import Backend
from tests.servers import people_signed_in, running_server

pytestmark = pytest.mark.slow

SENDERS = 4
KILL_AFTER = 150  # successful answers before the kill: a few hundred requests in all, counting the restart
CODE = "crash-secret"


@dataclass(frozen=True)
class Feed:
    sender_id: str
    recipient_id: str
    first_id: int
    second_id: int


def _feed(engine: Engine, tag: str) -> Feed:
    """A sender, a recipient mapped to a person, and a rule escalating to a second person after 0.6 s."""
    clock = SystemClock()
    first, second = people_signed_in(engine, f"wctpkill{tag}", ["nurse", "nurse"], clock)
    feed = Feed(f"crash-{tag}", f"CRASH-{tag}", first.person_id, second.person_id)
    actor = cli_actor("test-setup")
    with Database(engine).unit_of_work() as session:
        paging.create_sender(session=session, clock=clock, actor=actor, sender_id=feed.sender_id, security_code=CODE,
                             channels=["wctp"])
        paging.create_recipient(session=session, clock=clock, actor=actor, recipient_id=feed.recipient_id,
                                address=f"person:{feed.first_id}")
        paging.create_rule(session=session, clock=clock, actor=actor, name=f"crash {tag}", alert_kind="wctp_crash",
                           position=0, sender_id=feed.sender_id, recipient_pattern=f"^{feed.recipient_id}$",
                           escalation={"steps": [{"address": "target:", "wait_minutes": 0.01},
                                                 {"address": f"person:{feed.second_id}", "wait_minutes": 60}]})
    return feed


def _submit(feed: Feed, message_id: str) -> bytes:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return (f'<?xml version="1.0" encoding="UTF-8"?><wctp-Operation wctpVersion="wctp-dtd-v1r3">'
            f'<wctp-SubmitRequest><wctp-SubmitHeader submitTimestamp="{stamp}">'
            f'<wctp-Originator senderID="{feed.sender_id}" securityCode="{CODE}"/>'
            f'<wctp-MessageControl messageID="{message_id}"/><wctp-Recipient recipientID="{feed.recipient_id}"/>'
            f'</wctp-SubmitHeader><wctp-Payload><wctp-Alphanumeric>BED ALARM {message_id}</wctp-Alphanumeric>'
            f'</wctp-Payload></wctp-SubmitRequest></wctp-Operation>').encode()


def _accepted(response: httpx.Response) -> bool:
    return response.status_code == 200 and b'<wctp-Success successCode="200"' in response.content


@dataclass
class Load:
    """Senders posting one submission after another on keep-alive connections until the server goes."""

    url: str
    feed: Feed
    answered: set[str] = field(default_factory=set)
    unanswered: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def sender(self, index: int) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not self.stop.is_set():
                message_id = f"{self.feed.sender_id}-{index}-{n}"
                n += 1
                try:
                    response = http.post(self.url, content=_submit(self.feed, message_id),
                                         headers={"Content-Type": "text/xml"})
                    ok = _accepted(response)
                except httpx.TransportError:
                    ok = False
                with self.lock:
                    (self.answered if ok else self.unanswered).add(message_id)
                if not ok:
                    return  # the server is gone: this sender waits for it to come back

    def total_answered(self) -> int:
        with self.lock:
            return len(self.answered)


def _rows(engine: Engine, sender_id: str) -> list[tuple[str, str, int | None]]:
    with Database(engine).read_only() as session:
        return [(str(m), s, a) for m, s, a in session.execute(
            select(PagingMessage.message_id, PagingMessage.status, PagingMessage.alert_id)
            .where(PagingMessage.sender_id == sender_id)).all()]


def _notified(engine: Engine, alert_ids: list[int]) -> Counter[tuple[int, int]]:
    """(alert id, step) → how many times that step notified someone."""
    with Database(engine).read_only() as session:
        rows = session.execute(select(AlertEvent.alert_id, AlertEvent.detail)
                               .where(AlertEvent.alert_id.in_(alert_ids), AlertEvent.kind == "notified")).all()
    return Counter((alert_id, int(detail["step"])) for alert_id, detail in rows)


def test_sigkill_during_wctp_load_loses_nothing_answered_and_routes_once(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    feed = _feed(engine, secrets.token_hex(3))
    with running_server(backend.cli_url(), tmp_path) as server:
        load = Load(f"{server.base_url}/wctp", feed)
        senders = [threading.Thread(target=load.sender, args=(i,), daemon=True) for i in range(SENDERS)]
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 60  # waits on a real server under load, not on time passing
        while load.total_answered() < KILL_AFTER:
            assert time.monotonic() < deadline, f"only {load.total_answered()} answered"
            time.sleep(0.01)
        server.process.kill()  # mid-load: requests in flight, escalation steps firing
        server.process.wait(timeout=10)
        load.stop.set()
        for thread in senders:
            thread.join(timeout=60)
    answered, unanswered = set(load.answered), set(load.unanswered)
    assert len(answered) >= KILL_AFTER and unanswered, "the kill should have caught requests in flight"

    stored = _rows(engine, feed.sender_id)
    stored_ids = Counter(m for m, status, _ in stored if status == MessageStatus.ACCEPTED)
    assert answered <= set(stored_ids), f"answered but not stored: {sorted(answered - set(stored_ids))[:5]}"
    assert set(stored_ids.values()) == {1}

    with running_server(backend.cli_url(), tmp_path) as again, httpx.Client(timeout=30) as http:
        for message_id in sorted(unanswered):  # the sender's retry of everything never answered
            assert _accepted(http.post(f"{again.base_url}/wctp", content=_submit(feed, message_id),
                                       headers={"Content-Type": "text/xml"})), message_id
        submitted = answered | unanswered
        stored = _rows(engine, feed.sender_id)
        alert_ids = [a for m, status, a in stored if status == MessageStatus.ACCEPTED and a is not None]
        deadline = time.monotonic() + 60  # the restarted worker fires what was due and what falls due
        while not all(_notified(engine, alert_ids)[(a, 1)] for a in alert_ids):
            assert time.monotonic() < deadline, "escalation steps not fired"
            time.sleep(0.1)

    accepted = Counter(m for m, status, _ in stored if status == MessageStatus.ACCEPTED)
    assert accepted == Counter(submitted)  # every submission routed once: no loss, no double
    assert {m for m, status, _ in stored if status == MessageStatus.DUPLICATE} <= unanswered
    assert len(set(alert_ids)) == len(submitted)
    with Database(engine).read_only() as session:
        raised = session.execute(select(func.count()).select_from(Alert)
                                 .where(Alert.id.in_(alert_ids), Alert.kind == "wctp_crash")).scalar_one()
        step_timers = session.execute(select(Timer.fired_at.is_not(None), Timer.attempts, func.count())
                                      .where(Timer.key.in_([f"alert:{a}:step" for a in alert_ids]))
                                      .group_by(Timer.fired_at.is_not(None), Timer.attempts)).all()
    assert raised == len(submitted)
    notified = _notified(engine, alert_ids)
    assert notified == Counter({(a, step): 1 for a in alert_ids for step in (0, 1)})
    # per alert: the first step's timer fired once, the second's (60 minutes) still pending
    assert sorted((bool(f), n, c) for f, n, c in step_timers) == [(False, 0, len(submitted)),
                                                                  (True, 1, len(submitted))]
