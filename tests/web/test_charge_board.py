"""The charge nurse's board: beds, census and assignments this shift and next; assign, end, copy last
shift, conflicts; who it is offered to and who hears that it changed.

The demo's 4W at 08:00 in Chicago: Dana Whitaker in charge by day (Greta Olsen by night), Carol Nurse
on 411–412 by day and Luis Ferreira by night; Kwame Asante is a 4W nurse with no assignment.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.realtime import service as realtime
from carerelay.routing.resolver import resolve
from carerelay.staffing import file_import
from carerelay.staffing.watch import BOARD_CHANGED
from tests.staffing_support import csv_bytes, file_feed
from tests.web.helpers import WebUser, act_as, admit, post, web_user

BED_ROW = re.compile(r'<tr id="bed-(?P<bed>[^"]+)"[^>]*class="(?P<cls>[^"]*)">(?P<body>.*?)</tr>', re.S)


def _row(page: str, bed: str) -> tuple[str, str]:
    """(class, HTML) of a bed's row on the board."""
    for m in BED_ROW.finditer(page):
        if m["bed"] == bed:
            return m["cls"], m["body"]
    raise AssertionError(f"no row for bed {bed}")


def _cells(page: str, bed: str) -> tuple[str, str]:
    """The bed's this-shift and next-shift cells."""
    body = _row(page, bed)[1]
    now = body.split('data-label="This shift"', 1)[1].split('data-label="Next shift"', 1)
    return now[0], now[1]


def _bed_nurse(db: Database, clock: FakeClock) -> list[str]:
    with db.unit_of_work() as session:
        ids = resolve(session, "location:4W/412/B/nurse", clock.now()).person_ids
        return [session.get_one(Person, i).username for i in ids]


def _board_events(db: Database, user: WebUser, after: int) -> list[dict[str, object]]:
    with db.unit_of_work() as session:
        return [e.payload for e in realtime.events_after(session=session, person_id=user.id, after_seq=after)
                if e.kind == BOARD_CHANGED]


def _last_seq(db: Database, user: WebUser) -> int:
    with db.unit_of_work() as session:
        return realtime.last_seq(session=session, person_id=user.id)


def test_the_board_is_in_the_navigation_of_charge_nurses_and_admins(client: TestClient) -> None:
    web_user(client, "dwhitaker")
    assert '<a href="/staffing/4W">Unit board</a>' in client.get("/home").text
    page = client.get("/staffing/4W")
    assert '<a href="/staffing/4W" aria-current="page">Unit board</a>' in page.text
    web_user(client, "golsen")  # in charge of the next shift: her board already
    assert '<a href="/staffing/4W">Unit board</a>' in client.get("/home").text
    web_user(client, "cnurse")
    assert "Unit board" not in client.get("/home").text
    for admin in ("admin", "iadmin"):
        web_user(client, admin)
        assert '<a href="/staffing">Unit board</a>' in client.get("/home").text
        units = client.get("/staffing").text
        assert all(f'href="/staffing/{u}"' in units for u in ("4W", "ICU", "ED"))
    for outsider in ("ghouse", "ooperator", "ccompliance"):
        web_user(client, outsider)
        assert "Unit board" not in client.get("/home").text
        assert client.get("/staffing/4W").status_code == 403


def test_the_board_shows_patients_who_is_assigned_and_unassigned_occupied_beds(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    admit(db, clock, "MRN-CB-1")
    admit(db, clock, "MRN-CB-2", place=b"4W^401^A")  # nobody is assigned to 401
    web_user(client, "dwhitaker")
    page = client.get("/staffing/4W").text
    cls, body = _row(page, "412-B")
    assert "unassigned" not in cls and "DOE, JANE" in body and "MRN-CB-1" in body
    now, later = _cells(page, "412-B")
    assert "Carol Nurse, RN" in now and "07:00–19:00" in now and "Luis Ferreira, RN" in later
    cls, body = _row(page, "401-A")
    assert "unassigned" in cls and "No primary nurse" in body and "MRN-CB-2" in body
    assert re.search(r'1 occupied bed has no primary nurse this shift:</strong>\s*<a href="#bed-401-A">401-A</a>', page)
    assert "empty" in _row(page, "420-B")[0] and "unassigned" not in _row(page, "420-B")[0]
    unit = page.split('id="unit-staff"', 1)[1].split("</section>", 1)[0]
    assert "Dana Whitaker, RN" in unit and "Greta Olsen, RN" in unit and "Leo Hartmann" in unit
    assert 'id="assign"' in page and 'id="copy"' in page
    assert 'data-refresh-on="staffing.changed" data-unit="4W"' in page
    fragment = client.get("/staffing/4W/fragment").text
    assert "<html" not in fragment and 'id="bed-401-A"' in fragment

    web_user(client, "iadmin")  # manages feeds and assignments, but does not read the census
    cls, body = _row(client.get("/staffing/4W").text, "412-B")
    assert "Occupied" in body and "DOE" not in body

    web_user(client, "hlee")  # an ICU nurse may read 4W's board, not change it
    page = client.get("/staffing/4W").text
    assert "You can read this board" in page and 'id="assign"' not in page and ">End</button>" not in page


def test_the_person_picker_offers_the_units_nurses_and_techs(client: TestClient) -> None:
    web_user(client, "dwhitaker")
    page = client.get("/staffing/4W?target=412%2FB&shift=next").text
    picker = page.split('id="assign-person"', 1)[1].split("</select>", 1)[0]
    assert 'optgroup label="Nurses of 4 West Medical-Surgical"' in picker and "Kwame Asante, RN" in picker
    assert 'data-profession="tech"' in picker and "Leo Hartmann" in picker
    assert "Hannah Lee" not in picker and "House" not in picker and "Operator" not in picker
    assert '<option value="412/B" selected>' in page and 'value="next" checked' in page
    assert 'id="assign-person" name="person_id" required autofocus' in page
    found = client.get("/staffing/4W?find=lee&target=412%2FB").text.split('id="assign-person"', 1)[1]
    assert "Found for “lee”" in found and "Hannah Lee, RN" in found.split("</select>", 1)[0]


def test_assigning_shows_the_services_refusal_inline_then_replaces(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    charge, night, carol, icu = (web_user(client, u) for u in ("dwhitaker", "golsen", "cnurse", "hlee"))
    kwame = web_user(client, "kasante")
    seqs = {u.username: _last_seq(db, u) for u in (night, carol, icu)}
    form = {"target": "412/B", "role": "primary_nurse", "person_id": str(kwame.id), "shift": "current"}

    refused = post(client, charge, "/staffing/4W/assign", form)
    assert refused.status_code == 409
    assert re.search(r'<p class="error" role="alert" id="assign-error">4W-412-B already has Carol Nurse, RN as '
                     r"primary nurse .*tick “Replace whoever holds it”</p>", refused.text)
    assert '<select id="assign-target" name="target" aria-invalid="true" aria-describedby="assign-error" autofocus>' \
        in refused.text
    assert '<option value="412/B" selected>' in refused.text and f'value="{kwame.id}" data-profession="nurse" ' \
        "selected" in refused.text
    assert _bed_nurse(db, clock) == ["cnurse"]

    done = post(client, charge, "/staffing/4W/assign", {**form, "replace": "true"})
    assert done.status_code == 303 and re.fullmatch(r"/staffing/4W\?done=assigned&id=\d+#bed-412-B",
                                                    done.headers["location"])
    assert _bed_nurse(db, clock) == ["kasante"]
    act_as(client, charge)
    page = client.get(done.headers["location"]).text
    # Carol held the bed since 07:00: the change takes effect from now, and her morning stays on record
    assert 'id="notice"><p>Assigned Kwame Asante, RN as primary nurse of 4W-412-B for 08:00–19:00.' in page
    now, _ = _cells(page, "412-B")
    assert "Kwame Asante, RN" in now and "Carol Nurse" not in now
    # one event per transaction, to those who may change 4W's board: its nurses and charge nurses
    assert _board_events(db, night, seqs["golsen"]) == [{"unit": "4W"}]
    assert _board_events(db, carol, seqs["cnurse"]) == [{"unit": "4W"}]
    assert _board_events(db, icu, seqs["hlee"]) == []


def test_bad_assignments_name_their_field(client: TestClient) -> None:
    charge, kwame = web_user(client, "dwhitaker"), web_user(client, "kasante")
    nobody = post(client, charge, "/staffing/4W/assign", {"target": "401/A", "role": "primary_nurse"})
    assert nobody.status_code == 422 and "choose who to assign" in nobody.text
    assert 'id="assign-person" name="person_id" required aria-invalid="true"' in nobody.text
    bed_charge = post(client, charge, "/staffing/4W/assign", {"target": "401/A", "role": "charge_nurse",
                                                              "person_id": str(kwame.id)})
    assert bed_charge.status_code == 422 and "a charge nurse is assigned to a whole unit" in bed_charge.text
    unknown = post(client, charge, "/staffing/4W/assign", {"target": "499/A", "role": "tech",
                                                           "person_id": str(kwame.id)})
    assert unknown.status_code == 422 and "no room &#39;499&#39; on unit 4W" in unknown.text
    icu = web_user(client, "hlee")
    assert post(client, icu, "/staffing/4W/assign", {"target": "401/A", "role": "primary_nurse",
                                                     "person_id": str(icu.id)}).status_code == 403


def test_ending_and_cancelling_assignments(client: TestClient, db: Database, clock: FakeClock) -> None:
    charge = web_user(client, "dwhitaker")
    page = client.get("/staffing/4W").text
    now, later = _cells(page, "412-B")
    carol_id = re.search(r'id="end-current-(\d+)" aria-label="End Carol Nurse, RN as primary nurse of 4W-412-B"',
                         now)[1]  # type: ignore[index]
    luis_id = re.search(r'id="end-next-(\d+)" aria-label="Cancel Luis Ferreira, RN as primary nurse of 4W-412-B"',
                        later)[1]  # type: ignore[index]
    ended = post(client, charge, "/staffing/4W/end", {"assignment_id": carol_id})
    assert ended.status_code == 303
    act_as(client, charge)
    assert "Ended Carol Nurse, RN as primary nurse of 4W-412-B." in client.get(ended.headers["location"]).text
    assert _bed_nurse(db, clock) == ["dwhitaker"]  # nobody at the bed: the charge nurse
    cancelled = post(client, charge, "/staffing/4W/end", {"assignment_id": luis_id})
    act_as(client, charge)
    page = client.get(cancelled.headers["location"]).text
    assert "Cancelled Luis Ferreira, RN as primary nurse of 4W-412-B." in page
    now, later = _cells(page, "412-B")
    assert "Carol Nurse" not in now and "Luis Ferreira" not in later
    again = post(client, charge, "/staffing/4W/end", {"assignment_id": carol_id})
    assert again.status_code == 422 and "already ends" in again.text


def test_copy_last_shift_lists_what_it_could_not_copy(client: TestClient) -> None:
    charge = web_user(client, "dwhitaker")
    page = post(client, charge, "/staffing/4W/copy-shift", {"into": "next", "source_shift": "previous"})
    assert page.status_code == 200
    notice = page.text.split('id="notice"', 1)[1].split("</div>", 1)[0]
    copied = int(re.search(r"Copied (\d+) assignment\(s\) from 07:00–19:00 into 19:00–07:00", notice)[1])  # type: ignore[index]
    assert copied >= 1 and "could not be copied" in notice
    assert "<li>4W-412-B: 4W-412-B already has Luis Ferreira, RN as primary nurse" in notice
    _, later = _cells(page.text, "412-B")
    assert "Luis Ferreira" in later  # never forced


def test_conflicts_between_sources_are_shown_and_reviewed(client: TestClient, db: Database,
                                                          clock: FakeClock) -> None:
    charge = web_user(client, "dwhitaker")
    before = _last_seq(db, charge)
    with db.unit_of_work() as session:
        feed = file_feed(session, clock, id_field="username")
        report = file_import.import_file(session=session, clock=clock, feed=feed, name="shift.csv", trigger="test",
                                         content=csv_bytes("kasante,4W,412,B,RN,,"))
        assert report.run.conflicts == 1
    assert _board_events(db, charge, before) == [{"unit": "4W"}]  # a file import reaches the board too
    page = client.get("/staffing/4W").text
    section = page.split('id="conflicts"', 1)[1].split("</section>", 1)[0]
    conflict_id = re.search(r'data-conflict="(\d+)"', section)[1]  # type: ignore[index]
    assert "from file shift.csv row 2 names Kwame Asante, RN" in section and "What was there was kept" in section
    assert 'href="#conflicts">Conflicts (1)</a>' in page
    empty = post(client, charge, f"/staffing/4W/conflicts/{conflict_id}/resolve", {"note": " "})
    assert empty.status_code == 422 and "say what you did about it" in empty.text
    done = post(client, charge, f"/staffing/4W/conflicts/{conflict_id}/resolve",
                {"note": "Kwame floats to 401 today; file fixed"})
    assert done.status_code == 303
    act_as(client, charge)
    page = client.get(done.headers["location"]).text
    assert f"Conflict {conflict_id} marked as reviewed." in page and 'id="conflicts"' not in page

