"""The connector admin API: who may use it, dry run and download, run now (202), history, audit."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.exports import runner
from tests.api.messaging.helpers import user


def _body(tmp_path: Path, **extra: object) -> dict[str, object]:
    return {"name": "Epic OCF", "target": "epic_on_call_finder", "departments": ["CARD"],
            "transport": {"kind": "folder", "path": str(tmp_path / "epic")},
            "options": {"past_days": 0, "future_days": 0}, "notify": ["interfaces@demo-health.example"], **extra}


def test_integration_admin_configures_maps_dry_runs_runs_and_downloads(
    client: TestClient, db: Database, clock: FakeClock, tmp_path: Path
) -> None:
    admin, clinician = user(client, "iadmin"), user(client, "jwilson")
    assert client.get("/api/exports/connectors", headers=clinician.headers).status_code == 403
    assert client.post("/api/exports/connectors", headers=clinician.headers,
                       json=_body(tmp_path)).status_code == 403
    targets = client.get("/api/exports/targets", headers=admin.headers).json()
    assert len(targets) == 10 and {t["direction"] for t in targets} == {"file", "api", "inbound"}

    bad = client.post("/api/exports/connectors", headers=admin.headers, json=_body(tmp_path, person_key="kronos_idd"))
    assert bad.status_code == 422 and bad.json()["field"] == "person_key"
    created = client.post("/api/exports/connectors", headers=admin.headers, json=_body(tmp_path))
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert created.json()["trigger"] == {"kind": "interval", "minutes": 5}
    assert client.post("/api/exports/connectors", headers=admin.headers, json=_body(tmp_path)).status_code == 409

    assignments = {a["code"]: a["id"] for a in client.get("/api/scheduling/assignments",
                                                          headers=admin.headers).json()}
    wrong = client.put(f"/api/exports/connectors/{cid}/assignments/{assignments['CARD-CALL1-NIGHT']}",
                       headers=admin.headers, json={"fields": {"team_name": "no id"}})
    assert wrong.status_code == 422 and "team_id" in wrong.json()["detail"]
    mapped = client.put(f"/api/exports/connectors/{cid}/assignments/{assignments['CARD-CALL1-NIGHT']}",
                        headers=admin.headers, json={"fields": {"team_id": "CARD-NIGHT"}})
    assert mapped.status_code == 204

    dry = client.post(f"/api/exports/connectors/{cid}/run", headers=admin.headers, json={"dry_run": True})
    assert dry.status_code == 200 and dry.json()["status"] == "dry_run" and dry.json()["row_count"] == 1
    assert not (tmp_path / "epic").exists()  # a dry run sends nothing
    payload = client.get(f"/api/exports/runs/{dry.json()['id']}/payload", headers=admin.headers)
    assert payload.status_code == 200 and payload.headers["content-type"].startswith("text/csv")
    assert "CARD-NIGHT" in payload.text and "attachment" in payload.headers["content-disposition"]

    queued = client.post(f"/api/exports/connectors/{cid}/run", headers=admin.headers, json={})
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    runner.send_due(db=db, clock=clock)  # what the worker does within seconds
    run = client.get(f"/api/exports/runs/{queued.json()['id']}", headers=admin.headers).json()
    assert run["status"] == "succeeded" and (tmp_path / "epic" / run["file_name"]).exists()
    history = client.get(f"/api/exports/connectors/{cid}/runs", headers=admin.headers).json()
    assert [r["status"] for r in history] == ["succeeded", "dry_run"]

    disabled = client.patch(f"/api/exports/connectors/{cid}", headers=admin.headers, json={"enabled": False})
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    refused = client.post(f"/api/exports/connectors/{cid}/run", headers=admin.headers, json={})
    assert refused.status_code == 409 and refused.json()["field"] == "enabled"

    audit = client.get("/api/audit", headers=user(client, "admin").headers,
                       params={"object_type": "connector", "limit": 50}).json()
    actions = {e["action"] for e in (audit["items"] if isinstance(audit, dict) else audit)}
    assert {"exports.create_connector", "exports.update_connector", "exports.dry_run", "exports.request_run",
            "exports.run"} <= actions


def test_payload_download_is_audited(client: TestClient, tmp_path: Path) -> None:
    admin = user(client, "admin")
    cid = client.post("/api/exports/connectors", headers=admin.headers,
                      json=_body(tmp_path, target="schedule_backup", name="backup", options={})).json()["id"]
    run = client.post(f"/api/exports/connectors/{cid}/run", headers=admin.headers, json={"dry_run": True}).json()
    assert client.get(f"/api/exports/runs/{run['id']}/payload", headers=admin.headers).status_code == 200
    audit = client.get("/api/audit", headers=admin.headers, params={"action": "exports.download_payload"}).json()
    entries = audit["items"] if isinstance(audit, dict) else audit
    assert [e["object_id"] for e in entries][:1] == [str(run["id"])]


def test_a_scheduler_withdraws_a_published_schedule(client: TestClient) -> None:
    scheduler = user(client, "sscheduler")
    card = next(s for s in client.get("/api/scheduling/schedules", headers=scheduler.headers).json()
                if s["name"].startswith("Cardiology"))
    withdrawn = client.post(f"/api/scheduling/schedules/{card['id']}/unpublish", headers=scheduler.headers)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "draft"
    again = client.post(f"/api/scheduling/schedules/{card['id']}/unpublish", headers=scheduler.headers)
    assert again.status_code == 409
    changes = client.get(f"/api/scheduling/schedules/{card['id']}/changes", headers=scheduler.headers).json()
    assert changes[-1]["action"] == "schedule.unpublish"
    hospitalist_scheduler = user(client, "jpatel")
    assert client.post(f"/api/scheduling/schedules/{card['id']}/publish",
                       headers=hospitalist_scheduler.headers).status_code == 403
