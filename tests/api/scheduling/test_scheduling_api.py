"""Scheduling over HTTP: a scheduler builds and publishes; others read published data only."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy import func, select

from carerelay.audit.models import AuditEntry
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.scheduling.models import Assignment, Schedule, Slot
from tests.conftest import sign_in


def _ids(client: TestClient, headers: dict[str, str]) -> dict[str, int]:
    depts = {d["code"]: d["id"] for d in client.get("/api/departments", headers=headers).json()}
    people = client.get("/api/people", headers=headers, params={"department_id": depts["CARD"], "limit": 200})
    return {**depts, **{p["username"]: p["id"] for p in people.json()["items"]}}


def _counts(db: Database) -> tuple[int, ...]:
    with db.unit_of_work() as session:
        return tuple(session.execute(select(func.count()).select_from(m)).scalar_one()
                     for m in (Assignment, Schedule, Slot, AuditEntry))


def _build_card_january(client: TestClient, sam: dict[str, str], ids: dict[str, int]) -> dict[str, Any]:
    assignment = client.post("/api/scheduling/assignments", headers=sam, json={
        "department_id": ids["CARD"], "code": "CARD-ECHO", "name": "Cardiology Echo Reader", "kind": "shift",
        "start_time": "08:00", "end_time": "16:00", "mapping": {"epic_on_call_finder": "ECHO"}})
    assert assignment.status_code == 201, assignment.text
    schedule = client.post("/api/scheduling/schedules", headers=sam, json={
        "department_id": ids["CARD"], "starts_on": "2027-01-01", "ends_on": "2027-01-31"})
    assert schedule.status_code == 201, schedule.text
    return {"assignment": assignment.json(), "schedule": schedule.json()}


def test_scheduler_builds_publishes_and_changes_a_month(client: TestClient, clock: FakeClock) -> None:
    sam = sign_in(client, "sscheduler")
    ids = _ids(client, sam)
    built = _build_card_january(client, sam, ids)
    sid, aid = built["schedule"]["id"], built["assignment"]["id"]
    for day, who in (("2027-01-04", "aokafor"), ("2027-01-05", "dreyes")):
        slot = client.post(f"/api/scheduling/schedules/{sid}/slots", headers=sam,
                           json={"assignment_id": aid, "on_date": day, "person_id": ids[who]})
        assert slot.status_code == 201, slot.text
    assert slot.json()["starts_at"] == "2027-01-05T14:00:00Z"
    nurse = sign_in(client, "cnurse")
    at: dict[str, str | int] = {"department_id": ids["CARD"], "at": "2027-01-05T15:00:00Z"}
    assert client.get(f"/api/scheduling/schedules/{sid}", headers=nurse).status_code == 404
    assert client.get("/api/scheduling/on-call", headers=nurse, params=at).json() == []
    published = client.post(f"/api/scheduling/schedules/{sid}/publish", headers=sam)
    assert published.status_code == 200 and published.json()["version"] == 1
    on_call = client.get("/api/scheduling/on-call", headers=nurse, params=at).json()
    assert [(o["person_id"], o["reason"]) for o in on_call] == [
        (ids["dreyes"], "Cardiology Echo Reader — slot 2027-01-05 08:00–16:00 America/Chicago, call order 1")]
    clock.advance(minutes=3)
    changed = client.patch(f"/api/scheduling/slots/{slot.json()['id']}", headers=sam,
                           json={"person_id": ids["pnatarajan"], "notes": "swap by phone"})
    assert changed.status_code == 200, changed.text
    assert client.get("/api/scheduling/on-call", headers=nurse, params=at).json()[0]["person_id"] == ids["pnatarajan"]
    changes = client.get(f"/api/scheduling/schedules/{sid}/changes", headers=nurse).json()
    assert [(c["action"], c["actor_name"], c["at"]) for c in changes] == [
        ("slot.update", "sscheduler", "2026-11-24T14:03:00Z")]
    assert changes[0]["before"]["username"] == "dreyes" and changes[0]["after"]["username"] == "pnatarajan"


def test_only_schedulers_edit_and_only_their_department(client: TestClient) -> None:
    nurse = sign_in(client, "cnurse")
    ids = _ids(client, nurse)
    body = {"department_id": ids["CARD"], "starts_on": "2027-01-01", "ends_on": "2027-01-31"}
    assert client.post("/api/scheduling/schedules", headers=nurse, json=body).status_code == 403
    assert client.post("/api/scheduling/schedules", json=body).status_code == 401
    jaya = sign_in(client, "jpatel")  # HOSP scheduler
    assert client.post("/api/scheduling/schedules", headers=jaya, json=body).status_code == 403
    admin = sign_in(client, "admin")
    assert client.post("/api/scheduling/schedules", headers=admin, json=body).status_code == 201


def test_skipped_hour_slot_is_422_naming_the_field_and_writes_nothing(client: TestClient, db: Database) -> None:
    ravi = sign_in(client, "rnguyen")  # NEURO, East Campus, America/New_York
    ids = _ids(client, ravi)
    neuro_people = client.get("/api/people", headers=ravi, params={"department_id": ids["NEURO"]}).json()["items"]
    assignment = client.post("/api/scheduling/assignments", headers=ravi, json={
        "department_id": ids["NEURO"], "code": "NEURO-LATE", "name": "Neuro late", "kind": "call",
        "start_time": "02:30", "end_time": "10:00"}).json()
    schedule = client.post("/api/scheduling/schedules", headers=ravi, json={
        "department_id": ids["NEURO"], "starts_on": "2027-03-01", "ends_on": "2027-03-31"}).json()
    before = _counts(db)
    refused = client.post(f"/api/scheduling/schedules/{schedule['id']}/slots", headers=ravi, json={
        "assignment_id": assignment["id"], "on_date": "2027-03-14", "person_id": neuro_people[0]["id"]})
    assert refused.status_code == 422
    assert refused.json()["field"] == "start_time"
    assert "2027-03-14 02:30 does not exist in America/New_York" in refused.json()["detail"]
    assert _counts(db) == before


def test_strict_input_names_the_field(client: TestClient) -> None:
    sam = sign_in(client, "sscheduler")
    ids = _ids(client, sam)
    base = {"department_id": ids["CARD"], "code": "X1", "name": "X", "kind": "call", "start_time": "07:00",
            "end_time": "19:00"}
    for change, field in (({"kind": "nap"}, "kind"), ({"start_time": "25:00"}, "start_time"),
                          ({"start_time": "07:00:30"}, "start_time"), ({"colour": "red"}, "colour"),
                          ({"department_id": "CARD"}, "department_id")):
        response = client.post("/api/scheduling/assignments", headers=sam, json={**base, **change})
        assert response.status_code == 422, change
        assert response.json()["field"] == field
    inverted = client.post("/api/scheduling/schedules", headers=sam, json={
        "department_id": ids["CARD"], "starts_on": "2027-02-10", "ends_on": "2027-02-01"})
    assert inverted.status_code == 422 and inverted.json()["field"] == "ends_on"


CSV_GOOD = """date,assignment,person,notes
2027-01-04,CARD-ECHO,aokafor,
2027-01-05,CARD-ECHO,dreyes,first day
"""


def test_csv_import_is_all_or_nothing_unless_partial(client: TestClient, db: Database) -> None:
    sam = sign_in(client, "sscheduler")
    ids = _ids(client, sam)
    sid = _build_card_january(client, sam, ids)["schedule"]["id"]
    url = f"/api/scheduling/schedules/{sid}/import"
    bad = CSV_GOOD + "2027-01-06,CARD-NOPE,aokafor,\n2027-01-07,CARD-ECHO,nobody,\n"
    before = _counts(db)
    refused = client.post(url, headers={**sam, "Content-Type": "text/csv"}, content=bad)
    assert refused.status_code == 422
    assert refused.json() == {"imported": 0, "rows": 4, "errors": [
        {"row": 4, "field": "assignment", "message": "unknown assignment 'CARD-NOPE'"},
        {"row": 5, "field": "person", "message": "unknown person 'nobody'"}]}
    assert _counts(db) == before
    partial = client.post(url, headers={**sam, "Content-Type": "text/csv"}, content=bad, params={"partial": True})
    assert partial.status_code == 200 and partial.json()["imported"] == 2
    slots = client.get(f"/api/scheduling/schedules/{sid}/slots", headers=sam).json()
    assert [(s["on_date"], s["person_id"], s["source"]) for s in slots] == [
        ("2027-01-04", ids["aokafor"], "csv"), ("2027-01-05", ids["dreyes"], "csv")]


def test_ical_feeds_per_person_and_per_assignment(client: TestClient) -> None:
    nurse = sign_in(client, "cnurse")
    ids = _ids(client, nurse)
    assignments = client.get("/api/scheduling/assignments", headers=nurse,
                             params={"department_id": ids["CARD"]}).json()
    call1_day = next(a for a in assignments if a["code"] == "CARD-CALL1-DAY")
    feed = client.get(f"/api/scheduling/assignments/{call1_day['id']}/calendar.ics", headers=nurse)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(feed.content)
    events = cal.walk("VEVENT")
    assert len(events) == 30  # the demo month, November 2026 (the evening before holds only night shifts)
    first = events[0]
    assert first.decoded("dtstart").isoformat() == "2026-11-01T13:00:00+00:00"  # 07:00 CST, after fall-back
    assert first.decoded("dtend").isoformat() == "2026-11-02T01:00:00+00:00"
    assert str(first["summary"]).startswith("Cardiology On Call: Dr. ")
    assert len({str(e["uid"]) for e in events}) == 30
    person_feed = client.get(f"/api/scheduling/people/{ids['aokafor']}/calendar.ics", headers=nurse)
    person_events = Calendar.from_ical(person_feed.content).walk("VEVENT")
    assert person_events and all(str(e["summary"]) == "Cardiology On Call" for e in person_events)
    starts = [e.decoded("dtstart") for e in person_events]
    assert starts == sorted(starts)
    assert client.get("/api/scheduling/people/99999999/calendar.ics", headers=nurse).status_code == 404


def test_swap_and_time_off_requests_through_the_api(client: TestClient) -> None:
    sam = sign_in(client, "sscheduler")
    ids = _ids(client, sam)
    built = _build_card_january(client, sam, ids)
    sid, aid = built["schedule"]["id"], built["assignment"]["id"]
    slot = client.post(f"/api/scheduling/schedules/{sid}/slots", headers=sam,
                       json={"assignment_id": aid, "on_date": "2027-01-04", "person_id": ids["aokafor"]}).json()
    client.post(f"/api/scheduling/schedules/{sid}/publish", headers=sam)
    amara = sign_in(client, "aokafor")
    swap = client.post("/api/scheduling/swaps", headers=amara,
                       json={"slot_id": slot["id"], "to_person_id": ids["dreyes"], "reason": "family event"})
    assert swap.status_code == 201, swap.text
    assert client.post(f"/api/scheduling/swaps/{swap.json()['id']}/decision", headers=amara,
                       json={"approve": True}).status_code == 403
    decided = client.post(f"/api/scheduling/swaps/{swap.json()['id']}/decision", headers=sam, json={"approve": True})
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    slots = client.get(f"/api/scheduling/schedules/{sid}/slots", headers=amara).json()
    assert slots[0]["person_id"] == ids["dreyes"]
    off = client.post("/api/scheduling/time-off", headers=amara,
                      json={"person_id": ids["aokafor"], "starts_on": "2027-01-10", "ends_on": "2027-01-12"})
    assert off.status_code == 201
    someone_else = client.post("/api/scheduling/time-off", headers=amara,
                               json={"person_id": ids["dreyes"], "starts_on": "2027-01-10", "ends_on": "2027-01-12"})
    assert someone_else.status_code == 403
    approved = client.post(f"/api/scheduling/time-off/{off.json()['id']}/decision", headers=sam,
                           json={"approve": True})
    assert approved.json()["status"] == "approved"
    blocked = client.post(f"/api/scheduling/schedules/{sid}/slots", headers=sam,
                          json={"assignment_id": aid, "on_date": "2027-01-11", "person_id": ids["aokafor"]})
    assert blocked.status_code == 409 and blocked.json()["field"] == "person_id"


def test_on_call_now_for_the_operator(client: TestClient) -> None:
    operator = sign_in(client, "ooperator")
    coverage = client.get("/api/scheduling/on-call/now", headers=operator).json()
    assert [c["department_code"] for c in coverage] == ["CARD", "HOSP", "NEURO"]
    assert [o["call_order"] for o in coverage[0]["now"]] == [1, 2]
    assert coverage[0]["next"][0]["starts_at"] == "2026-11-25T01:00:00Z"
    naive = client.get("/api/scheduling/on-call", headers=operator,
                       params={"department_id": 1, "at": "2026-11-24T08:00:00"})
    assert naive.status_code == 422 and naive.json()["field"] == "at"
