"""The staffing API the charge nurse's board will sit on: board, assignments, copy, conflicts, feeds, push."""

from __future__ import annotations

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from tests.api.messaging.helpers import user
from tests.staffing_support import NIGHT_START, csv_bytes
from tests.unit.core.test_route_policies import all_routes


def test_the_board_and_a_day_of_changes(client: TestClient, clock: FakeClock) -> None:
    charge, carol, hannah = user(client, "dwhitaker"), user(client, "cnurse"), user(client, "hlee")
    board = client.get("/api/staffing/units/4W/board", headers=carol.headers).json()
    assert board["shift"]["label"] == "07:00–19:00" and board["timezone"] == "America/Chicago"
    assert [c["person_name"] for c in board["charge_nurses"]] == ["Dana Whitaker, RN"]
    [bed] = [b for b in board["beds"] if b["target"] == "4W-412-B"]
    assert [(a["role"], a["person_name"], a["window"]) for a in bed["assignments"]] == [
        ("primary_nurse", "Carol Nurse, RN", "07:00–19:00")]
    night = client.get("/api/staffing/units/4W/board", params={"at": NIGHT_START.isoformat()},
                       headers=carol.headers).json()
    assert [c["person_name"] for c in night["charge_nurses"]] == ["Greta Olsen, RN"]

    kwame = client.get("/api/people", params={"q": "asante"}, headers=charge.headers).json()["items"][0]["id"]
    made = client.post("/api/staffing/assignments", headers=charge.headers,
                       json={"unit": "4W", "room": "401", "bed": "A", "role": "nurse", "person_id": kwame})
    assert made.status_code == 201, made.text
    assert made.json()["assignment"]["origin"] == "assigned by charge nurse Dana Whitaker, RN"
    taken = client.post("/api/staffing/assignments", headers=charge.headers,
                        json={"unit": "4W", "room": "412", "bed": "B", "role": "nurse", "person_id": kwame})
    assert taken.status_code == 409 and taken.json()["field"] == "bed" and "Carol Nurse" in taken.json()["detail"]
    backwards = client.post("/api/staffing/assignments", headers=charge.headers,
                            json={"unit": "4W", "role": "tech", "person_id": kwame,
                                  "starts_at": "2026-11-24T18:00:00Z", "ends_at": "2026-11-24T15:00:00Z"})
    assert backwards.status_code == 422 and backwards.json()["field"] == "ends_at"
    batch = client.post("/api/staffing/assignments/batch", headers=charge.headers, json={"assignments": [
        {"unit": "4W", "room": "402", "bed": "A", "role": "nurse", "person_id": kwame},
        {"unit": "4W", "room": "402", "bed": "B", "role": "nurse", "person_id": 987654}]})
    assert batch.status_code == 422 and batch.json()["field"] == "assignments[1].person_id"
    assert client.get("/api/routing/resolve", params={"address": "location:4W/402/A/nurse"},
                      headers=carol.headers).json()["recipients"][0]["name"] == "Dana Whitaker, RN"
    assert client.post("/api/staffing/assignments", headers=hannah.headers,
                       json={"unit": "4W", "role": "tech", "person_id": kwame}).status_code == 403
    ended = client.post(f"/api/staffing/assignments/{made.json()['assignment']['id']}/end", headers=charge.headers,
                        json={"reason": "went home sick"})
    assert ended.status_code == 200 and ended.json()["end_reason"] == "went home sick"
    mine = client.get("/api/staffing/me", headers=carol.headers).json()
    assert {a["target"] for a in mine} == {"4W-411-A", "4W-411-B", "4W-412-A", "4W-412-B"}

    clock.set(NIGHT_START.replace(hour=0, minute=45))
    copied = client.post("/api/staffing/units/4W/copy-shift", headers=charge.headers, json={})
    assert copied.status_code == 200 and copied.json()["target_shift"]["label"] == "19:00–07:00"
    assert any("Luis Ferreira" in s["reason"] for s in copied.json()["skipped"])


def test_units_are_configured_by_administrators(client: TestClient) -> None:
    admin, charge = user(client, "admin"), user(client, "dwhitaker")
    body = {"shift_changes": ["07:00", "15:00", "23:00"], "precedence": ["sync", "manual", "file", "adt_rol"]}
    assert client.put("/api/staffing/units/ICU", headers=charge.headers, json=body).status_code == 403
    done = client.put("/api/staffing/units/ICU", headers=admin.headers, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["current_shift"]["label"] == "07:00–15:00" and done.json()["precedence"][0] == "sync"
    bad = client.put("/api/staffing/units/ICU", headers=admin.headers, json={"precedence": ["manual"]})
    assert bad.status_code == 422 and bad.json()["field"] == "precedence"
    assert client.get("/api/staffing/roles", headers=charge.headers).json()["charge_nurse"] == "charge nurse"


def test_a_file_through_the_api_and_its_conflict(client: TestClient) -> None:
    admin, charge = user(client, "iadmin"), user(client, "dwhitaker")
    feed = client.post("/api/staffing/feeds", headers=admin.headers, json={
        "name": "kronos staffing", "kind": "sftp_csv", "id_field": "unique_id",
        "column_map": {"person": "Employee ID", "unit": "Unit", "room": "Room", "bed": "Bed", "role": "Job"},
        "role_map": {"RN1": "primary_nurse"},
        "config": {"host": "sftp.example.org", "username": "carerelay", "remote_dir": "/out",
                   "known_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA", "client_key_file": "/etc/key"}})
    assert feed.status_code == 201, feed.text
    feed_id = feed.json()["id"]
    wrong = client.post(f"/api/staffing/feeds/{feed_id}/files", headers=admin.headers, params={"name": "x.csv"},
                        content=csv_bytes("N804,4W,412,B,RN1"))
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0] == {"row": 1, "where": "header", "field": "Employee ID",
                                         "message": "missing column 'Employee ID' (the person)"}
    good = client.post(f"/api/staffing/feeds/{feed_id}/files", headers=admin.headers, params={"name": "y.csv"},
                       content=csv_bytes("N804,4W,412,B,RN1", "N804,4W,499,A,RN1",
                                         header="Employee ID,Unit,Room,Bed,Job"))
    assert good.status_code == 422 and good.json()["status"] == "rejected"
    assert good.json()["errors"] == [{"row": 3, "where": "row 3", "field": "Room",
                                      "message": "no room '499' on unit 4W"}]
    fixed = client.post(f"/api/staffing/feeds/{feed_id}/files", headers=admin.headers, params={"name": "z.csv"},
                        content=csv_bytes("N804,4W,412,B,RN1", header="Employee ID,Unit,Room,Bed,Job"))
    assert fixed.status_code == 200 and fixed.json()["conflicts"] == 1
    [conflict] = client.get("/api/staffing/conflicts", params={"unit": "4W"}, headers=charge.headers).json()
    assert conflict["outcome"] == "existing_kept" and conflict["incoming"]["person"] == "Kwame Asante, RN"
    resolved = client.post(f"/api/staffing/conflicts/{conflict['id']}/resolve", headers=charge.headers,
                           json={"note": "Carol keeps 412-B; told the staffing office"})
    assert resolved.status_code == 200 and resolved.json()["resolved_by"] == "dwhitaker"
    assert client.get("/api/staffing/conflicts", params={"unit": "4W"}, headers=charge.headers).json() == []
    runs = client.get(f"/api/staffing/feeds/{feed_id}/runs", headers=admin.headers).json()
    assert [r["status"] for r in runs] == ["ok", "rejected", "rejected"]
    queued = client.post(f"/api/staffing/feeds/{feed_id}/run", headers=admin.headers)
    assert queued.status_code == 202 and queued.json()["next_run_at"] is not None


def test_an_assignment_system_pushes_with_its_own_token(client: TestClient) -> None:
    admin = user(client, "iadmin")
    feed = client.post("/api/staffing/feeds", headers=admin.headers,
                       json={"name": "rauland push", "kind": "push", "id_field": "unique_id"}).json()
    token = client.post(f"/api/staffing/feeds/{feed['id']}/token", headers=admin.headers).json()["token"]
    change = {"assignmentId": "R-1", "staff": {"employeeId": "N804"}, "role": "PRIMARY_RN",
              "location": {"unit": "4W", "room": "403", "bed": "A"}}
    assert client.post("/api/staffing/push", json={"changes": [change]}).status_code == 401
    assert client.post("/api/staffing/push", json={"changes": [change]}, headers=admin.headers).status_code == 401
    pushed = client.post("/api/staffing/push", json={"changes": [change]},
                         headers={"Authorization": f"Bearer {token}"})
    assert pushed.status_code == 200 and pushed.json()["applied"] == 1, pushed.text
    who = client.get("/api/routing/resolve", params={"address": "location:4W/403/A/nurse"}, headers=admin.headers)
    reason = who.json()["recipients"][0]["reason"]
    assert reason.startswith("4W-403-A primary nurse, from rauland push (assignment R-1)")
    bad = client.post("/api/staffing/push", headers={"Authorization": f"Bearer {token}"},
                      json={"changes": [{**change, "assignmentId": "R-2", "location": {"unit": "4W", "room": "403",
                                                                                      "bed": "Q"}}]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "location.bed"
    ended = client.post("/api/staffing/push", headers={"Authorization": f"Bearer {token}"},
                        json={"changes": [{"assignmentId": "R-1", "action": "end"}]})
    assert ended.status_code == 200 and ended.json()["ended"] == 1
    assert client.get("/api/routing/resolve", params={"address": "location:4W/403/A/nurse"},
                      headers=admin.headers).json()["recipients"][0]["name"] == "Dana Whitaker, RN"


def test_only_the_push_route_takes_a_feed_token() -> None:
    staffing = [(path, pol[0]) for _, path, pol in all_routes() if path.startswith("/api/staffing")]
    assert len(staffing) > 15
    for path, policy in staffing:
        assert (policy.token_kind == "staffing feed") == (path == "/api/staffing/push"), path
        assert policy.signed_in and not policy.scim_token
