"""Scenario 6: the schedule is the source of truth for the connectors.

A scheduler swaps tonight's cardiology call and publishes. The next runs put the new person, in call
order, into the Epic On Call Finder file on the SFTP server (a real sshd); Outlook events move from
one calendar to the other through Microsoft Graph (a local stand-in); the next Kronos and New
Innovations files carry only the change. A target whose SFTP server is down and a partner mapping
with a mistyped team id each fail, show it in run history, and e-mail the administrators.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.exports import runner
from carerelay.jobs import service as jobs
from carerelay.notifications.channels.email import SmtpChannel
from carerelay.notifications.service import deliver_due
from carerelay.routing.resolver import resolve
from tests.api.messaging.helpers import User, user
from tests.exports_helpers import CARD
from tests.exports_peers import FakeGraph, FakePartner, Mailbox, Sshd, running_sshd, smtp_server
from tests.servers import free_port

DOMAIN = "demo-health.example"
TONIGHT = "2026-11-25T01:00:00"  # 19:00 in Chicago on 24 November, in Graph's UTC form
TONIGHT_8PM = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 20:00 in Chicago on 24 November


@pytest.fixture
def peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sshd, FakeGraph, FakePartner, Mailbox,
                                                                                int]]:
    monkeypatch.setenv("TEST_GRAPH_SECRET", FakeGraph.SECRET)
    monkeypatch.setenv("TEST_PARTNER_SECRET", FakePartner.PASSWORD)
    graph = FakeGraph({f"{u}@{DOMAIN}" for u in ("aokafor", "dreyes", "pnatarajan", "tlindqvist", "jwilson",
                                                  "ecole")})
    partner = FakePartner({("MAIN", "CARD-ONCALL")})
    try:
        with running_sshd(tmp_path) as sshd, smtp_server() as (box, port):
            yield sshd, graph, partner, box, port
    finally:
        graph.close()
        partner.close()


def _create(client: TestClient, admin: User, body: dict[str, Any], mappings: dict[str, Any] | None = None) -> int:
    created = client.post("/api/exports/connectors", headers=admin.headers,
                          json={"departments": ["CARD"], "notify": ["interfaces@demo-health.example"], **body})
    assert created.status_code == 201, created.text
    cid: int = created.json()["id"]
    assignments = {a["code"]: a["id"] for a in client.get("/api/scheduling/assignments", headers=admin.headers).json()}
    for code, fields in (mappings or {}).items():
        mapped = client.put(f"/api/exports/connectors/{cid}/assignments/{assignments[code]}", headers=admin.headers,
                            json={"fields": fields})
        assert mapped.status_code == 204, mapped.text
    return cid


def _work(db: Database, clock: FakeClock) -> None:
    """What the node's workers do: fire timers, queue and send connector runs."""
    jobs.fire_due(db=db, clock=clock)
    runner.process_due(db=db, clock=clock)


def _runs(client: TestClient, admin: User, cid: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = client.get(f"/api/exports/connectors/{cid}/runs", headers=admin.headers).json()
    return runs


def _csv(data: bytes | str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data if isinstance(data, str) else data.decode())))


def test_a_swap_reaches_every_connector_and_failures_reach_the_admins(
    client: TestClient, db: Database, clock: FakeClock, peers: tuple[Sshd, FakeGraph, FakePartner, Mailbox, int],
    tmp_path: Path,
) -> None:
    sshd, graph, partner, box, smtp_port = peers
    clock.set(datetime(2026, 11, 24, 14, 0, tzinfo=UTC))  # 08:00 in Chicago
    admin = user(client, "iadmin")
    window = {"past_days": 0, "future_days": 1}
    epic = _create(client, admin, {"name": "Epic On Call Finder", "target": "epic_on_call_finder",
                                   "transport": sshd.transport("epic"), "file_name": "oncall.csv",
                                   "trigger": {"kind": "interval", "minutes": 5}, "options": window},
                   {c: {"team_id": "CARD-ONCALL", "role": "Cardiologist"} for c in CARD})
    kronos = _create(client, admin, {"name": "Kronos WFD", "target": "kronos_wfd",
                                     "transport": sshd.transport("kronos"),
                                     "trigger": {"kind": "pay_period", "anchor": "2026-11-23", "length_days": 14,
                                                 "at": "01:00"},
                                     "options": {"include": {"exempt": ["call"], "non_exempt": ["call"]}}},
                     {c: {"segment_type": "Required", "comment": "cardiology call"} for c in CARD})
    ni = _create(client, admin, {"name": "New Innovations", "target": "new_innovations",
                                 "transport": {"kind": "folder", "path": str(tmp_path / "ni")},
                                 "trigger": {"kind": "daily", "at": "01:00"},
                                 "options": {"past_days": 1, "future_days": 1}},
                 {c: {"duty_hour_name": "Call", "assignment_name": "Cardiology"} for c in CARD})
    outlook = _create(client, admin, {"name": "Outlook", "target": "outlook", "transport": graph.transport(),
                                      "options": window}, {c: {"include_schedule_notes": True} for c in CARD})
    broken = _create(client, admin, {"name": "Epic OpTime (server down)", "target": "epic_optime",
                                     "transport": {**sshd.transport("optime"), "port": free_port()},
                                     "trigger": {"kind": "on_change"}, "max_attempts": 2},
                     {c: {"import_group": "CARD", "role": "Cardiologist"} for c in CARD})
    typo = _create(client, admin, {"name": "Vocera", "target": "ccc_partner", "transport": partner.transport(),
                                   "options": {"vendor": "vocera", "future_days": 0}},
                   {"CARD-CALL1-NIGHT": {"teams": [{"site": "MAIN", "team": "CARD-ONCAL"}]}})

    # First runs: change-driven connectors sync at once; the Epic file is due at 08:05; the first Kronos
    # and New Innovations files (everything) are sent by hand, as an administrator does at go-live.
    for cid in (kronos, ni):
        assert client.post(f"/api/exports/connectors/{cid}/run", headers=admin.headers, json={}).status_code == 202
    _work(db, clock)
    assert [r["content"] for r in (_runs(client, admin, kronos)[0], _runs(client, admin, ni)[0])] == ["full"] * 2
    clock.set(datetime(2026, 11, 24, 14, 5, tzinfo=UTC))
    _work(db, clock)
    epic_before = _csv((sshd.root / "epic" / "oncall.csv").read_text())
    tonight = [r for r in epic_before if (r["Start Date"], r["Start Time"]) == ("11/24/2026", "19:00")]
    assert [(r["Provider Name"], r["Call Order"]) for r in tonight] == [("Dr. Daniel Reyes", "1"),
                                                                         ("Dr. Priya Natarajan", "2")]
    assert _at(graph, "dreyes", TONIGHT) and not _at(graph, "tlindqvist", TONIGHT)

    # The scheduler swaps tonight's call to Dr. Lindqvist and publishes.
    scheduler = user(client, "sscheduler")
    card_schedule = next(s for s in client.get("/api/scheduling/schedules", headers=scheduler.headers).json()
                         if s["starts_on"] == "2026-10-31" and s["department_id"] == _dept(client, admin, "CARD"))
    slots = [s for s in client.get(f"/api/scheduling/schedules/{card_schedule['id']}/slots",
                                   headers=scheduler.headers).json() if s["on_date"] == "2026-11-24"]
    codes = {a["id"]: a["code"] for a in client.get("/api/scheduling/assignments", headers=admin.headers).json()}
    night = next(s for s in slots if codes[s["assignment_id"]] == "CARD-CALL1-NIGHT")
    lindqvist = _person(client, admin, "tlindqvist")
    swap = client.post("/api/scheduling/swaps", headers=scheduler.headers,
                       json={"slot_id": night["id"], "to_person_id": lindqvist, "reason": "family event"})
    assert swap.status_code == 201, swap.text
    decided = client.post(f"/api/scheduling/swaps/{swap.json()['id']}/decision", headers=scheduler.headers,
                          json={"approve": True})
    assert decided.status_code == 200, decided.text
    assert client.post(f"/api/scheduling/schedules/{card_schedule['id']}/publish",
                       headers=scheduler.headers).status_code == 200

    with db.unit_of_work() as session:
        assert resolve(session, "role:CARD-CALL1-NIGHT", TONIGHT_8PM).person_ids == [lindqvist]  # routing follows

    # Within minutes: the change-driven connectors at the next pass, the Epic file at 08:10.
    clock.set(datetime(2026, 11, 24, 14, 10, tzinfo=UTC))
    _work(db, clock)
    epic_after = _csv((sshd.root / "epic" / "oncall.csv").read_text())
    tonight = [r for r in epic_after if (r["Start Date"], r["Start Time"]) == ("11/24/2026", "19:00")]
    assert [(r["Provider Name"], r["Provider ID"], r["Call Order"]) for r in tonight] == [
        ("Dr. Tomas Lindqvist", "SER707", "1"), ("Dr. Priya Natarajan", "SER706", "2")]

    assert not _at(graph, "dreyes", TONIGHT)
    moved = _at(graph, "tlindqvist", TONIGHT)
    assert len(moved) == 1 and moved[0]["subject"] == "Cardiology On Call"
    outlook_run = _runs(client, admin, outlook)[0]
    assert outlook_run["status"] == "succeeded" and outlook_run["reason"] in ("schedule change", "publish")
    sent = client.get(f"/api/exports/runs/{outlook_run['id']}/payload", headers=admin.headers).json()["calls"]
    assert [(c["method"], c["url"].split("/users/")[-1].split("/")[0]) for c in sent[1:]] == [
        ("POST", f"tlindqvist@{DOMAIN}"), ("DELETE", f"dreyes@{DOMAIN}")]

    # The next Kronos and New Innovations files (01:00 tomorrow) carry only the change.
    clock.set(datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    _work(db, clock)
    admin = user(client, "iadmin")  # a new day, a new sign-in
    kronos_run = _runs(client, admin, kronos)[0]
    assert kronos_run["status"] == "succeeded" and kronos_run["content"] == "delta"
    kronos_rows = _csv((sshd.root / "kronos" / kronos_run["file_name"]).read_text())
    assert [(r["Action"], r["Start Date Time"]) for r in kronos_rows] == [("CHANGE", "2026-11-24T19:00")]
    ni_run = _runs(client, admin, ni)[0]
    ni_rows = _csv((tmp_path / "ni" / ni_run["file_name"]).read_text())
    assert ni_run["content"] == "delta"
    assert [(r["Action"], r["Name"]) for r in ni_rows if r["Start Date"] == "11/24/2026"] == [
        ("CHANGE", "Dr. Tomas Lindqvist")]

    # The broken SFTP target and the mistyped team id: failed runs in history, e-mails to the admins.
    while (pending := _runs(client, admin, broken)[0])["status"] == "retrying":
        clock.set(datetime.fromisoformat(pending["next_attempt_at"]))
        _work(db, clock)
    failed = _runs(client, admin, broken)[0]
    assert failed["status"] == "failed" and "connection refused" in failed["error"]
    partner_run = _runs(client, admin, typo)[0]
    assert partner_run["status"] == "failed" and "unknown team 'CARD-ONCAL'" in partner_run["error"]
    deliver_due(db=db, clock=clock, channels={"email": SmtpChannel("127.0.0.1", smtp_port, "carerelay@demo.test")})
    mails = box.texts()
    assert any("Epic OpTime (server down)" in m and "connection refused" in m for m in mails)
    assert any("Vocera" in m and "CARD-ONCAL" in m for m in mails)
    assert all("interfaces@demo-health.example" in m for m in mails)
    assert json.loads(json.dumps(_runs(client, admin, epic)))[0]["status"] == "succeeded"


def _at(graph: FakeGraph, username: str, start: str) -> list[dict[str, Any]]:
    return [e for e in graph.calendar(f"{username}@{DOMAIN}") if e["start"]["dateTime"] == start]


def _dept(client: TestClient, admin: User, code: str) -> int:
    return next(int(d["id"]) for d in client.get("/api/departments", headers=admin.headers).json()
                if d["code"] == code)


def _person(client: TestClient, admin: User, username: str) -> int:
    found = client.get("/api/people", headers=admin.headers,
                       params={"id_field": "username", "id_value": username}).json()
    items = found["items"] if isinstance(found, dict) else found
    return next(int(p["id"]) for p in items if p["username"] == username)
