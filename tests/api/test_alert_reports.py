"""Alert reports: time to deliver, read and acknowledge, escalation counts; critical results per unit and test."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from carerelay.alerts.intake import take_handoffs
from carerelay.core.actor import Actor
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.parser import parse
from carerelay.integrations.hl7.processor import process_message
from carerelay.jobs import service as jobs
from carerelay.patients.service import ResultPolicy
from tests.api.messaging.helpers import User, user
from tests.hl7support import SAMPLES

T0 = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
WINDOW = {"since": (T0 - timedelta(minutes=1)).isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}


def _raise(client: TestClient, to: User) -> int:
    response = client.post("/api/alerts", headers=user(client, "ooperator").headers,
                           json={"kind": "report_test", "title": "Report me", "address": f"person:{to.id}"})
    assert response.status_code == 201, response.text
    alert_id: int = response.json()["id"]
    return alert_id


def _report(client: TestClient, viewer: User, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/reports/alerts", headers=viewer.headers, params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


def test_times_and_escalations_by_kind_and_person_as_json_and_csv(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    clock.set(T0)
    house, compliance = user(client, "ghouse"), user(client, "ccompliance")
    answered, ignored = _raise(client, house), _raise(client, house)
    clock.advance(seconds=10)
    assert client.post("/api/alerts/receipts", headers=house.headers,
                       json={"alert_ids": [answered], "state": "delivered"}).json() == {"changed": 1}
    clock.advance(seconds=20)
    assert client.get(f"/api/alerts/{answered}", headers=house.headers).status_code == 200  # opening it reads it
    clock.advance(seconds=30)
    assert client.post(f"/api/alerts/{answered}/acknowledge", headers=house.headers).status_code == 200
    clock.advance(minutes=5)
    jobs.fire_due(db=db, clock=clock)  # the ignored one runs out: the operators, then "exhausted"
    assert client.post("/api/alerts/receipts", headers=house.headers,
                       json={"alert_ids": [ignored, 999_999], "state": "read"}).status_code == 404

    [by_kind] = _report(client, compliance, group_by="kind", kind="report_test")
    assert by_kind["key"] == "report_test" and by_kind["alerts"] == 2 and by_kind["acknowledged"] == 1
    assert (by_kind["escalated"], by_kind["escalation_steps"], by_kind["fallbacks"], by_kind["exhausted"]) == (
        1, 1, 1, 1)
    assert (by_kind["deliver_p50_seconds"], by_kind["read_p50_seconds"], by_kind["acknowledge_p50_seconds"]) == (
        10.0, 30.0, 60.0)
    assert by_kind["deliver_count"] == 1 and by_kind["result_to_ack_count"] == 0

    by_person = {r["key"]: r for r in _report(client, compliance, group_by="person", kind="report_test")}
    mine = by_person[str(house.id)]
    assert mine["label"] == "Dr. Gregory House" and mine["alerts"] == 2 and mine["acknowledged"] == 1
    assert mine["escalated_past"] == 1 and mine["acknowledge_p50_seconds"] == 60.0
    operators = [r for k, r in by_person.items() if k != str(house.id)]
    assert len(operators) == 3 and all(r["alerts"] == 1 and r["acknowledged"] == 0 for r in operators)

    [by_department] = _report(client, compliance, group_by="department", kind="report_test")
    assert by_department["label"] == "(none)" and by_department["alerts"] == 2

    download = client.get("/api/reports/alerts.csv", headers=compliance.headers,
                          params={**WINDOW, "group_by": "person", "kind": "report_test"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert {r["label"] for r in rows} >= {"Dr. Gregory House"}
    house_row = next(r for r in rows if r["key"] == str(house.id))
    assert house_row["group_by"] == "person" and house_row["acknowledge_p50_seconds"] == "60.0"
    assert house_row["result_to_ack_p50_seconds"] == ""

    audit = client.get("/api/audit", headers=compliance.headers, params={"action": "report.alerts"}).json()
    assert [e["object_id"] for e in audit][-1] == "person"


def test_who_may_read_reports_and_bad_requests(client: TestClient) -> None:
    nurse, admin = user(client, "cnurse"), user(client, "admin")
    assert client.get("/api/reports/alerts", headers=nurse.headers).status_code == 403
    assert client.get("/api/reports/alerts.csv", headers=nurse.headers).status_code == 403
    assert client.get("/api/reports/alerts", headers=admin.headers, params={"group_by": "mood"}).status_code == 422
    backwards = client.get("/api/reports/alerts", headers=admin.headers,
                           params={"since": WINDOW["until"], "until": WINDOW["since"]})
    assert backwards.status_code == 422 and backwards.json()["field"] == "since"
    too_long = client.get("/api/reports/alerts", headers=admin.headers,
                          params={"since": "2020-01-01T00:00:00Z", "until": WINDOW["until"]})
    assert too_long.status_code == 422


FEED = Feed(name="lab", port=0, timezone="America/Chicago")


def _apply(db: Database, clock: FakeClock, text: bytes) -> None:
    with db.unit_of_work() as session:
        process_message(session=session, clock=clock, actor=Actor(person_id=None, username="hl7:lab"),
                        parsed=parse(text), feed=FEED, policy=ResultPolicy(), stat_priorities=("S", "STAT"),
                        message_id=None)


def test_result_to_acknowledgement_per_unit_and_test_code(client: TestClient, db: Database,
                                                           clock: FakeClock) -> None:
    """Issue 6: two critical results on 4 West (potassium, sodium), acknowledged 2 and 7 minutes after
    the lab's result arrived."""
    clock.set(T0)
    mrn = b"MRN-REPORT"
    _apply(db, clock, (SAMPLES / "adt_a01_admit.hl7").read_bytes().replace(b"MRN1001", mrn))
    oru = (SAMPLES / "oru_r01_critical_potassium.hl7").read_bytes().replace(b"MRN1001", mrn)
    _apply(db, clock, oru.replace(b"139|mmol/L|136-145|N", b"118|mmol/L|136-145|LL"))
    take_handoffs(db=db, clock=clock)
    house = user(client, "ghouse")
    mine = {("Potassium" if "Potassium" in a["title"] else "Sodium"): a["id"]
            for a in client.get("/api/alerts", headers=house.headers).json() if "MRN-REPORT" in a["title"]}
    assert set(mine) == {"Potassium", "Sodium"}
    clock.advance(minutes=2)
    client.post(f"/api/alerts/{mine['Potassium']}/respond", headers=house.headers, json={"choice": "Call back"})
    clock.advance(minutes=5)
    jobs.fire_due(db=db, clock=clock)
    client.post(f"/api/alerts/{mine['Sodium']}/respond", headers=house.headers, json={"choice": "Call back"})

    compliance = user(client, "ccompliance")
    by_test = {r["key"]: r for r in _report(client, compliance, group_by="test", kind="critical_result")}
    assert {k: (r["label"], r["result_to_ack_p50_seconds"]) for k, r in by_test.items()} == {
        "2823-3": ("Potassium", 120.0), "2951-2": ("Sodium", 420.0)}
    assert by_test["2951-2"]["escalated"] == 1 and by_test["2823-3"]["escalated"] == 0
    [unit] = _report(client, compliance, group_by="unit", kind="critical_result")
    assert unit["key"] == "4W" and unit["alerts"] == 2 and unit["acknowledged"] == 2
    assert (unit["result_to_ack_p50_seconds"], unit["result_to_ack_p90_seconds"],
            unit["result_to_ack_max_seconds"]) == (120.0, 420.0, 420.0)
