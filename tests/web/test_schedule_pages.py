"""The scheduler's grid: create a draft, assign, publish, change, swap; another department's scheduler
may look but not edit."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from carerelay.core.db import Database
from carerelay.directory.models import Department, Person
from carerelay.scheduling.models import Assignment
from tests.web.helpers import act_as, post, web_user


def _ids(db: Database) -> tuple[int, dict[str, int], dict[str, int]]:
    with db.unit_of_work() as session:
        card = session.execute(select(Department.id).where(Department.code == "CARD")).scalar_one()
        assignments = dict(session.execute(select(Assignment.code, Assignment.id)).all())
        people = dict(session.execute(select(Person.username, Person.id)).all())
    return card, assignments, people


def test_build_publish_change_and_swap(client: TestClient, db: Database) -> None:
    card, assignments, people = _ids(db)
    scheduler = web_user(client, "sscheduler")
    created = post(client, scheduler, "/schedules", {"department_id": str(card), "starts_on": "2027-01-01",
                                                     "ends_on": "2027-01-31", "name": "Cardiology January"})
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    schedule_id = int(url.rsplit("/", 1)[1])
    act_as(client, scheduler)
    grid = client.get(url).text
    assert 'id="schedule-status">draft' in grid and "Cardiology On Call" in grid
    assert f'/schedules/{schedule_id}/new?assignment={assignments["CARD-CALL1-DAY"]}&amp;on=2027-01-04' in grid
    form = client.get(f"/schedules/{schedule_id}/new?assignment={assignments['CARD-CALL1-DAY']}&on=2027-01-04")
    assert form.status_code == 200 and "Dr. James Wilson" in form.text
    for code, who in (("CARD-CALL1-DAY", "jwilson"), ("CARD-CALL2-DAY", "aokafor")):
        added = post(client, scheduler, f"/schedules/{schedule_id}/slots", {
            "assignment_id": str(assignments[code]), "on_date": "2027-01-04", "person_id": str(people[who])})
        assert added.status_code == 303, added.text
    clash = post(client, scheduler, f"/schedules/{schedule_id}/slots", {
        "assignment_id": str(assignments["CARD-CALL2-DAY"]), "on_date": "2027-01-04",
        "person_id": str(people["jwilson"])})
    assert clash.status_code == 422 and "already booked" in clash.text
    published = post(client, scheduler, f"/schedules/{schedule_id}/publish")
    assert published.status_code == 303
    act_as(client, scheduler)
    grid = client.get(published.headers["location"]).text
    assert "Published version 1" in grid and 'id="schedule-status">published v1' in grid
    assert "No changes since version 1" in grid
    wilson_slot = int(re.search(r'data-slot="(\d+)">Wilson<', grid)[1])  # type: ignore[index]
    swap = post(client, scheduler, f"/schedules/slots/{wilson_slot}/swap", {
        "other_slot_id": re.search(r'data-slot="(\d+)">Okafor<', grid)[1]})  # type: ignore[index]
    assert swap.status_code == 303, swap.text
    act_as(client, scheduler)
    grid = client.get(f"/schedules/{schedule_id}?view=week&start=2027-01-04").text
    assert f'data-slot="{wilson_slot}">Okafor<' in grid
    assert grid.count("<strong>slot.swap</strong>") == 2 and "Dr. James Wilson → Dr. Amara Okafor" in grid
    other = web_user(client, "jpatel")
    assert post(client, other, f"/schedules/{schedule_id}/publish").status_code == 403
    assert post(client, other, f"/schedules/slots/{wilson_slot}/remove").status_code == 403
    act_as(client, other)
    assert client.get("/schedules").status_code == 200
    assert "Cardiology January" not in client.get("/schedules").text


def test_a_clinician_asks_for_a_swap_and_the_scheduler_approves(client: TestClient, db: Database) -> None:
    _, _, people = _ids(db)
    doc = web_user(client, "jwilson")
    mine = client.get("/me/schedule").text
    slot = re.search(r'name="slot_id" value="(\d+)"', mine)
    assert slot is not None, "the demo schedule gives Dr. Wilson shifts this month"
    asked = post(client, doc, "/me/schedule/swap", {"slot_id": slot[1], "to_person_id": str(people["ecole"])})
    assert asked.status_code == 303
    act_as(client, doc)
    assert "Dr. Ethan Cole" in client.get("/me/schedule").text and ">pending<" in client.get("/me/schedule").text
