"""Two app processes on one PostgreSQL deliver to each other's clients (LISTEN/NOTIFY), and one takes
over the timers and the clients of the other when it is killed."""

from __future__ import annotations

import json
import secrets
import signal
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import Engine, select, text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from carerelay.alerts.models import AlertEvent
from carerelay.core.actor import cli_actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.demo import DEMO_PASSWORD
from carerelay.escalation import service as escalation
from carerelay.escalation.models import EscalationRun
from carerelay.jobs.models import Timer
from tests.conftest import Backend
from tests.servers import ClockFile, ServerProcess, SignedIn, people_signed_in, running_server, running_servers

pytestmark = pytest.mark.slow


def _token(base_url: str, username: str) -> str:
    response = httpx.post(f"{base_url}/api/auth/sign-in",
                          json={"username": username, "password": DEMO_PASSWORD, "kind": "api"})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def test_message_sent_on_one_node_reaches_a_client_on_the_other(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    if backend.name != "postgresql":
        pytest.skip("several nodes need PostgreSQL; SQLite is one process by design")
    with running_server(backend.cli_url(), tmp_path) as node_a, running_server(backend.cli_url(), tmp_path) as node_b:
        # People no other test writes to: this test commits for real.
        reader, writer = _token(node_a.base_url, "kasante"), _token(node_b.base_url, "rjimenez")
        reader_id = httpx.get(f"{node_a.base_url}/api/auth/me",
                              headers={"Authorization": f"Bearer {reader}"}).json()["person_id"]
        ws_url = node_a.base_url.replace("http://", "ws://") + "/api/ws"
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {reader}"}, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            writer_headers = {"Authorization": f"Bearer {writer}"}
            conv = httpx.post(f"{node_b.base_url}/api/conversations", headers=writer_headers,
                              json={"kind": "group", "member_ids": [reader_id], "title": "two-node check"}).json()
            sent = httpx.post(f"{node_b.base_url}/api/conversations/{conv['id']}/messages", headers=writer_headers,
                              json={"text": "sent through node B"})
            assert sent.status_code == 201, sent.text
            kinds = []
            for _ in range(5):
                frame = json.loads(ws.recv(timeout=10))
                kinds.append(frame.get("kind"))
                if frame.get("kind") == "message.new":
                    assert frame["data"]["text"] == "sent through node B"
                    break
            assert "message.new" in kinds


def _letters(n: int) -> str:
    """Alert kinds are lower-case letters and underscores."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


def _blocked_by(engine: Engine, pid: int) -> list[str]:
    """Which nodes (application_name) have a backend waiting on a lock this backend holds."""
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT application_name FROM pg_stat_activity "
                                      "WHERE :pid = ANY(pg_blocking_pids(pid))"), {"pid": pid}).scalars())


def _backends(engine: Engine, node: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :node"),
                                {"node": node}).scalar_one())


def _step_notified(engine: Engine, alert_ids: list[int], step: int) -> Counter[int]:
    with Database(engine).read_only() as session:
        rows = session.execute(select(AlertEvent.alert_id, AlertEvent.detail)
                               .where(AlertEvent.alert_id.in_(alert_ids), AlertEvent.kind == "notified")).all()
    return Counter(alert_id for alert_id, detail in rows if detail.get("step") == step)


def _fired_attempts(engine: Engine, alert_ids: list[int]) -> list[int]:
    with Database(engine).read_only() as session:
        return sorted(session.execute(select(Timer.attempts).where(
            Timer.key.in_([f"alert:{i}:step" for i in alert_ids]), Timer.fired_at.is_not(None))).scalars())


def _await(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Polls a real process's effect; nothing here is timed, only awaited."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _alert_frames(ws: ClientConnection, frames: list[dict[str, Any]], want: int, timeout: float = 30) -> None:
    """Read event frames until ``want`` alert.new frames have arrived in all."""
    deadline = time.monotonic() + timeout
    while sum(f["kind"] == "alert.new" for f in frames) < want:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame["type"] == "event":
            frames.append(frame)


@dataclass
class Pair:
    """Nodes A and B on one schema. Each reads its own clock file, so the test decides which node sees
    an escalation step due; ``application_name`` tells their PostgreSQL backends apart."""

    a: ServerProcess
    b: ServerProcess
    clock_a: ClockFile
    clock_b: ClockFile
    kind: str
    reader: SignedIn  # whom the second step of every alert reaches
    first: SignedIn
    operator: SignedIn

    def raise_alerts(self, node: ServerProcess, count: int) -> list[int]:
        """Alerts whose first step reaches ``first`` now and whose second reaches ``reader`` 5 minutes later."""
        ids = []
        for n in range(count):
            raised = httpx.post(f"{node.base_url}/api/alerts", headers=self.operator.headers, json={
                "kind": self.kind, "title": f"two nodes {n}", "address": f"person:{self.first.person_id}"})
            assert raised.status_code == 201, raised.text
            ids.append(raised.json()["id"])
        return ids


@contextmanager
def _pair(backend: Backend, engine: Engine, tmp_path: Path, **node_a_env: str) -> Iterator[Pair]:
    start = datetime.now(UTC).replace(microsecond=0)
    clock_a, clock_b = ClockFile(tmp_path / "now-a", start), ClockFile(tmp_path / "now-b", start)
    kind = f"two_nodes_{_letters(8)}"
    reader, first, operator = people_signed_in(engine, kind.replace("_", ""), ["nurse", "nurse", "operator"],
                                               FakeClock(start))
    with Database(engine).unit_of_work() as session:
        escalation.create_policy(session=session, clock=FakeClock(start), actor=cli_actor("test-setup"), data={
            "name": kind, "alert_kind": kind, "steps": [
                {"address": "target:", "wait_minutes": 5}, {"address": f"person:{reader.person_id}",
                                                             "wait_minutes": 60}]})
    # the auditor is not what these tests are about; one firing thread per node keeps each node's steps in
    # alert order, which the tests follow
    quiet = {"CARERELAY_AUDITOR_INTERVAL_SECONDS": "3600", "CARERELAY_TIMER_THREADS": "1"}
    node_a = {**clock_a.env, **quiet, **node_a_env,
              "CARERELAY_DATABASE_URL": f"{backend.cli_url()}&application_name=node-a"}
    node_b = {**clock_b.env, **quiet, "CARERELAY_DATABASE_URL": f"{backend.cli_url()}&application_name=node-b"}
    with running_servers(backend.cli_url(), tmp_path, node_a, node_b) as (a, b):
        yield Pair(a, b, clock_a, clock_b, kind, reader, first, operator)


@contextmanager
def _a_claims(engine: Engine, pair: Pair, held: int, before: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Node A claims the step of alert ``held`` and is held inside it: the test locks that alert's
    escalation run, moves A's clock past the step, and waits until A's backend waits on that lock
    (``before`` runs in between). Leaving the block releases the lock."""
    with engine.connect() as holder:
        transaction = holder.begin()
        holder.execute(select(EscalationRun.id).where(EscalationRun.alert_id == held).with_for_update())
        holder_pid = int(holder.execute(text("SELECT pg_backend_pid()")).scalar_one())
        pair.clock_a.advance(minutes=6)
        before()
        _await(lambda: _blocked_by(engine, holder_pid) == ["node-a"], "node A never claimed the held step")
        try:
            yield
        finally:
            transaction.rollback()


def test_node_b_takes_over_the_timers_and_the_client_of_a_killed_node(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    """A fires the first steps due, then claims the next one and is held inside it. SIGKILL A:
    PostgreSQL ends A's transactions, the claim goes with them, and B — once its clock says the steps
    are due — fires the one A held and the rest, each exactly once. The client A served reconnects to
    B and gets every alert, including those that reached it while it was away, once each and in order."""
    if backend.name != "postgresql":
        pytest.skip("several nodes need PostgreSQL; SQLite is one process by design")
    with _pair(backend, engine, tmp_path) as pair:
        frames: list[dict[str, Any]] = []
        with connect(pair.a.base_url.replace("http://", "ws://") + "/api/ws", additional_headers=pair.reader.headers,
                     open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            alert_ids = pair.raise_alerts(pair.a, 20)
            # A fires the nine steps due before the held one, live to its client, then claims the tenth
            with _a_claims(engine, pair, alert_ids[9], before=lambda: _alert_frames(ws, frames, 9)):
                assert _step_notified(engine, alert_ids, 1) == Counter(alert_ids[:9])
                pair.a.process.kill()
                pair.a.process.wait(timeout=10)
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=10)
        _await(lambda: _backends(engine, "node-a") == 0, "node A's transactions outlived it")
        pair.clock_b.advance(minutes=6)
        last_seq = frames[-1]["seq"]
        with connect(pair.b.base_url.replace("http://", "ws://") + f"/api/ws?after={last_seq}",
                     additional_headers=pair.reader.headers, open_timeout=10) as again:
            assert json.loads(again.recv(timeout=10)) == {"type": "hello", "last_seq": last_seq}
            _alert_frames(again, frames, 20)
        _await(lambda: set(_step_notified(engine, alert_ids, 1)) == set(alert_ids), "steps not fired")
    assert [f["seq"] for f in frames] == list(range(hello["last_seq"] + 1, hello["last_seq"] + 21))
    assert [f["data"]["id"] for f in frames] == alert_ids
    assert _step_notified(engine, alert_ids, 1) == Counter(alert_ids)
    assert _fired_attempts(engine, alert_ids) == [1] * 20


def test_a_frozen_node_loses_its_claim_and_cannot_fire_it_when_it_wakes(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    """A node that stops answering without dying (SIGSTOP: a hung process, a host cut off) keeps its
    PostgreSQL connection, and with it the transaction that claimed a step. PostgreSQL ends that
    transaction once it has sat idle for CARERELAY_DB_IDLE_TRANSACTION_SECONDS; B then fires the
    step. When A wakes inside that step, its transaction is gone: it cannot fire it a second time."""
    if backend.name != "postgresql":
        pytest.skip("several nodes need PostgreSQL; SQLite is one process by design")
    with _pair(backend, engine, tmp_path, CARERELAY_DB_IDLE_TRANSACTION_SECONDS="2") as pair:
        [held] = pair.raise_alerts(pair.b, 1)
        with _a_claims(engine, pair, held):
            pair.a.process.send_signal(signal.SIGSTOP)
        # released: A's backend takes the lock, answers the frozen node and waits, idle in its transaction
        pair.clock_b.advance(minutes=6)
        _await(lambda: _step_notified(engine, [held], 1) == Counter([held]), "B never got the frozen node's step")
        pair.a.process.send_signal(signal.SIGCONT)
        [probe] = pair.raise_alerts(pair.b, 1)  # due on A's clock only, once it moves on: A's worker is back
        pair.clock_a.advance(minutes=6)
        _await(lambda: _step_notified(engine, [probe], 1) == Counter([probe]), "A's worker did not come back")
    assert _step_notified(engine, [held, probe], 1) == Counter([held, probe])
    assert _fired_attempts(engine, [held, probe]) == [1, 1]
