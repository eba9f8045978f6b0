"""Sync administration over HTTP: integration admins only; a run reports what it did."""

from __future__ import annotations

from datetime import date, time

import pytest
from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from tests.conftest import sign_in
from tests.integration.scheduling_sync.vendors import vendor_server
from tests.scheduling_factories import department, make_assignment, make_schedule


def test_integration_admin_sets_up_maps_and_runs_a_qgenda_source(
    client: TestClient, db: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.unit_of_work() as session:
        ed = department(session, "ED")
        day = make_assignment(session, clock, department_id=ed.id, code="ED-DAY", start=time(7), end=time(19))
        make_schedule(session, clock, department_id=ed.id, starts_on=date(2026, 11, 1), ends_on=date(2026, 11, 30))
        ed_id, day_id = ed.id, day.id
    monkeypatch.setenv("CARERELAY_QGENDA_PASSWORD", "s3cret")
    admin = sign_in(client, "iadmin")
    nurse = sign_in(client, "cnurse")
    people = client.get("/api/people", headers=admin, params={"q": "whitfield"}).json()["items"]
    with vendor_server() as (base_url, state):
        body = {"vendor": "qgenda", "name": "ED QGenda", "department_id": ed_id, "base_url": f"{base_url}/v2",
                "account": "CK-1", "username": "sync@example.org", "secret_env": "CARERELAY_QGENDA_PASSWORD"}
        assert client.post("/api/scheduling/sync/sources", headers=nurse, json=body).status_code == 403
        bad = client.post("/api/scheduling/sync/sources", headers=admin, json={**body, "secret_env": "s3cret!"})
        assert bad.status_code == 422 and bad.json()["field"] == "secret_env"
        created = client.post("/api/scheduling/sync/sources", headers=admin, json=body)
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        assert client.put(f"/api/scheduling/sync/sources/{sid}/people/S1", headers=admin,
                          json={"person_id": people[0]["id"]}).status_code == 204
        assert client.put(f"/api/scheduling/sync/sources/{sid}/assignments/T-DAY", headers=admin,
                          json={"assignment_id": day_id}).status_code == 204
        state.qgenda_entries = [{"ScheduleKey": "K1", "StaffKey": "S1", "StaffFName": "Grace", "StaffLName": "W",
                                 "TaskKey": "T-DAY", "TaskName": "Day", "StartDateUTC": "2026-11-24T12:00:00Z",
                                 "EndDateUTC": "2026-11-25T00:00:00Z", "IsPublished": True, "IsStruck": False}]
        run = client.post(f"/api/scheduling/sync/sources/{sid}/run", headers=admin)
    assert run.status_code == 200, run.text
    assert (run.json()["status"], run.json()["created"]) == ("ok", 1)
    runs = client.get(f"/api/scheduling/sync/sources/{sid}/runs", headers=admin).json()
    assert [r["id"] for r in runs] == [run.json()["id"]]
