"""Timers survive SIGKILL, and with several nodes each one fires exactly once."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import Engine, select

from carerelay.alerts.models import AlertEvent
from carerelay.core.db import Database
from carerelay.demo import DEMO_PASSWORD
from carerelay.jobs.models import Timer
from tests.conftest import Backend
from tests.servers import running_server

pytestmark = pytest.mark.slow


def _headers(base: str, username: str) -> dict[str, str]:
    token = httpx.post(f"{base}/api/auth/sign-in",
                       json={"username": username, "password": DEMO_PASSWORD, "kind": "api"}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def _setup_alerts(base: str, count: int, tag: str) -> list[int]:
    admin, operator = _headers(base, "iadmin"), _headers(base, "ooperator")
    people = httpx.get(f"{base}/api/people", headers=admin, params={"q": "okafor"}).json()["items"]
    first = people[0]["id"]
    second = httpx.get(f"{base}/api/people", headers=admin, params={"q": "reyes"}).json()["items"][0]["id"]
    policy = httpx.post(f"{base}/api/escalation/policies", headers=admin, json={
        "name": f"crash {tag}", "alert_kind": f"crash_{tag}",
        "steps": [{"address": "target:", "wait_minutes": 0.01}, {"address": f"person:{second}", "wait_minutes": 60}]})
    assert policy.status_code == 201, policy.text
    ids = []
    for n in range(count):
        raised = httpx.post(f"{base}/api/alerts", headers=operator, json={
            "kind": f"crash_{tag}", "title": f"crash test {tag} {n}", "address": f"person:{first}"})
        assert raised.status_code == 201, raised.text
        ids.append(raised.json()["id"])
    return ids


def _second_steps(engine: Engine, alert_ids: list[int]) -> dict[int, int]:
    with Database(engine).read_only() as session:
        rows = session.execute(select(AlertEvent.alert_id, AlertEvent.detail)
                               .where(AlertEvent.alert_id.in_(alert_ids), AlertEvent.kind == "notified")).all()
    steps: dict[int, int] = {a: 0 for a in alert_ids}
    for alert_id, detail in rows:
        if detail.get("step") == 1:
            steps[alert_id] += 1
    return steps


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    """Polls a real process's effect in the database; nothing here is timed, only awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError("condition not met in time")


def test_pending_timers_fire_once_after_sigkill(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    with running_server(backend.cli_url(), tmp_path, CARERELAY_RUN_TIMERS="false") as doomed:
        alert_ids = _setup_alerts(doomed.base_url, 5, f"kill_{backend.name}")
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(timeout=10)
    assert all(n == 0 for n in _second_steps(engine, alert_ids).values())
    with running_server(backend.cli_url(), tmp_path):
        _wait_for(lambda: all(n >= 1 for n in _second_steps(engine, alert_ids).values()))
    assert set(_second_steps(engine, alert_ids).values()) == {1}
    with Database(engine).read_only() as session:
        fired = session.execute(select(Timer.attempts).where(Timer.key.in_([f"alert:{a}:step" for a in alert_ids]),
                                                             Timer.fired_at.is_not(None))).scalars().all()
    assert sorted(fired) == [1] * 5


def test_two_nodes_share_timers_and_each_fires_once(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    if backend.name != "postgresql":
        pytest.skip("several nodes need PostgreSQL; SQLite is one process by design")
    with running_server(backend.cli_url(), tmp_path, CARERELAY_RUN_TIMERS="false") as setup:
        alert_ids = _setup_alerts(setup.base_url, 40, "two_nodes")
    with running_server(backend.cli_url(), tmp_path), running_server(backend.cli_url(), tmp_path):
        _wait_for(lambda: all(n >= 1 for n in _second_steps(engine, alert_ids).values()))
    assert set(_second_steps(engine, alert_ids).values()) == {1}
