"""Compliance pages: audit search, the chain check, discovery with export and holds, and the
time-to-acknowledge report with its server-drawn charts."""

from __future__ import annotations

import io
import re
import zipfile

from fastapi.testclient import TestClient

from carerelay.alerts import service as alerts
from carerelay.core.actor import SYSTEM
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from tests.web.helpers import act_as, post, web_user


def test_audit_search_and_chain_check(client: TestClient) -> None:
    web_user(client, "cnurse")
    web_user(client, "ccompliance")
    found = client.get("/compliance/audit?username=cnurse&action=auth.sign_in").text
    assert "<td>auth.sign_in</td>" in found and "<td>cnurse" in found and '"method": "test"' in found
    unknown = client.get("/compliance/audit?username=nobody-here")
    assert unknown.status_code == 422 and "no person with user name" in unknown.text
    mine = client.get("/compliance/audit?username=ccompliance&action=audit.search").text
    assert "audit.search" in mine
    verified = client.get("/compliance/verify?run=1").text
    assert 'id="chain-result">Intact' in verified


def test_discovery_export_and_hold(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    nurse = web_user(client, "cnurse")
    post(client, nurse, "/compose", {"address": f"person:{doc.id}", "text": "discoverable zebra sighting"})
    officer = web_user(client, "ccompliance")
    page = client.get("/compliance/discovery?text=zebra").text
    assert "discoverable zebra sighting" in page
    conversation = re.search(r'name="conversation_ids" value="(\d+)"', page)[1]  # type: ignore[index]
    refused = post(client, officer, "/compliance/export", {"conversation_ids": conversation, "reason": ""})
    assert refused.status_code == 422 and "say why" in refused.text
    exported = post(client, officer, "/compliance/export", {"conversation_ids": conversation, "reason": "case 42"})
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    assert exported.headers["content-disposition"].startswith("attachment;")
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert any(n.endswith("messages.jsonl") for n in names), names
    held = post(client, officer, "/compliance/holds", {"conversation_id": conversation, "reason": "litigation",
                                                       "back": "/compliance/discovery?text=zebra"})
    assert held.status_code == 303 and held.headers["location"].endswith(f"held={conversation}")
    act_as(client, officer)
    assert "legal hold</span> litigation" in client.get(held.headers["location"]).text
    act_as(client, nurse)
    assert client.get("/compliance/discovery?text=zebra").status_code == 403
    assert post(client, nurse, "/compliance/export", {"conversation_ids": conversation, "reason": "x"}) \
        .status_code == 403


def test_time_to_acknowledge_report_draws_escaped_charts(client: TestClient, db: Database, clock: FakeClock) -> None:
    house = web_user(client, "ghouse")
    with db.unit_of_work() as session:
        alert = alerts.raise_alert(session=session, clock=clock, actor=SYSTEM, kind="critical_result",
                                   priority="critical", title="K+ 6.8", body="", address=f"person:{house.id}",
                                   source="test", location="<svg onload=alert(1)>^412^B")
        alert_id = alert.id
    clock.advance(minutes=3)
    assert post(client, house, f"/alerts/{alert_id}/respond", {"choice": "Accept"}).status_code == 303
    web_user(client, "ccompliance")
    page = client.get("/compliance/reports/tta?days=7").text
    assert page.count('role="img"') == 3 and "<svg onload" not in page
    assert "&lt;svg onload=alert(1)&gt;" in page
    assert "Median time to acknowledge, per day" in page and "<dt>Median</dt><dd>" in page
    match = re.search(r"<td>&lt;svg onload=alert\(1\)&gt;</td><td>(\d+)</td><td>(\d+)</td><td>([^<]+)</td>", page)
    assert match is not None and match[1] == "1" and match[2] == "0" and match[3] == "3.0 min"
