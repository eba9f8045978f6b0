"""Alert pages (buttons from the alert's choices, read-back, the trail), the operators' board, and both
*Page a number* forms (the board's and /page's: one call to the paging intake)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from carerelay.alerts.intake import take_handoffs
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.integrations.paging.models import PagingMessage
from carerelay.jobs import service as jobs
from carerelay.routing.resolver import resolve
from tests.web.helpers import act_as, admit, post, web_user


def _page(client: TestClient, person_id: int, text: str) -> int:
    operator = web_user(client, "ooperator")
    response = post(client, operator, "/board/page", {"person_id": str(person_id), "text": text})
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def test_accepting_a_page_stops_its_escalation(client: TestClient, db: Database, clock: FakeClock) -> None:
    doc = web_user(client, "jwilson")
    alert_id = _page(client, doc.id, "Call the ED re: bed 4 <now>")
    act_as(client, doc)
    listing = client.get("/alerts").text
    assert f'id="alert-{alert_id}-accept"' in listing and f'id="alert-{alert_id}-call-back"' in listing
    assert "Call the ED re: bed 4 &lt;now&gt;" in listing
    detail = client.get(f"/alerts/{alert_id}").text
    assert 'data-state="active"' in detail and 'data-kind="notified"' in detail and "addressed directly" in detail
    assert post(client, doc, f"/alerts/{alert_id}/respond", {"choice": "Accept"}).status_code == 303
    act_as(client, doc)
    detail = client.get(f"/alerts/{alert_id}/fragment").text
    assert 'data-state="acknowledged"' in detail and 'data-kind="escalation_stopped"' in detail
    assert "Acknowledged by Dr. James Wilson" in detail and f'id="alert-{alert_id}-accept"' not in detail
    clock.advance(minutes=30)
    jobs.fire_due(db=db, clock=clock)
    after = client.get(f"/alerts/{alert_id}").text
    assert after.count('data-kind="notified"') == 1


def test_reject_moves_on_at_once(client: TestClient, db: Database, clock: FakeClock) -> None:
    admin = web_user(client, "iadmin")
    second = web_user(client, "aokafor")
    created = post(client, admin, "/admin/escalation", {
        "name": "web pages test", "alert_kind": "page", "steps": f"target: 5\nperson:{second.id} 5"})
    assert created.status_code == 303, created.text
    doc = web_user(client, "jwilson")
    alert_id = _page(client, doc.id, "please call back")
    assert post(client, doc, f"/alerts/{alert_id}/respond", {"choice": "Reject"}).status_code == 303
    act_as(client, second)
    assert f'id="alert-{alert_id}-accept"' in client.get("/alerts").text
    trail = client.get(f"/alerts/{alert_id}").text
    assert re.search(r'data-kind="rejected">.*?Rejected</strong> — Dr. James Wilson', trail, flags=re.S)
    assert "rejected by jwilson" in trail


def test_critical_result_closes_with_a_read_back(client: TestClient, db: Database, clock: FakeClock) -> None:
    admit(db, clock, "MRN-WEB-K")
    admit(db, clock, "MRN-WEB-K", "oru_r01_critical_potassium.hl7")
    take_handoffs(db=db, clock=clock)
    house = web_user(client, "ghouse")
    listing = client.get("/alerts").text
    alert_id = int(re.search(r'id="alert-(\d+)-title"><a href="/alerts/\d+">[^<]*MRN-WEB-K', listing)[1])  # type: ignore[index]
    assert f'id="alert-{alert_id}-call-back"' in listing and "badge priority-critical" in listing
    post(client, house, f"/alerts/{alert_id}/respond", {"choice": "Call back"})
    act_as(client, house)
    page = client.get(f"/alerts/{alert_id}").text
    assert "Record the read-back" in page
    assert post(client, house, f"/alerts/{alert_id}/readback",
                {"text": "K 6.8 read back to the lab"}).status_code == 303
    act_as(client, house)
    page = client.get(f"/alerts/{alert_id}").text
    assert "Read-back:</span> K 6.8 read back to the lab" in page and "badge state-closed" in page
    stranger = web_user(client, "hlee")
    assert client.get(f"/alerts/{alert_id}").status_code == 404
    assert post(client, stranger, f"/alerts/{alert_id}/respond", {"choice": "Accept"}).status_code == 404


def test_board_shows_every_department_and_pages_a_number(client: TestClient, db: Database,
                                                         clock: FakeClock) -> None:
    operator = web_user(client, "ooperator")
    board = client.get("/board").text
    for code in ("CARD", "HOSP", "NEURO"):
        assert f'data-department="{code}"' in board
    assert "Page a number" in board and "5552000" in board and "Page Dr." in board
    response = post(client, operator, "/board/page-number", {"number": "555-2000", "text": "call 4W"})
    assert response.status_code == 303
    act_as(client, operator)
    trail = client.get(response.headers["location"]).text
    alert_id = response.headers["location"].rsplit("/", 1)[1]
    with db.unit_of_work() as session:
        first = resolve(session, "role:Cardiology On Call", clock.now()).recipients[0]
        username = session.get_one(Person, first.person_id).username
    web_user(client, username)
    assert f'id="alert-{alert_id}-accept"' in client.get("/alerts").text
    assert "pager 5552000" in trail and 'data-kind="notified"' in trail
    nurse = web_user(client, "cnurse")
    assert client.get("/board").status_code == 403
    assert post(client, nurse, "/board/page", {"person_id": "1", "text": "x"}).status_code == 403
    oncall = client.get("/oncall").text
    assert "Page a number" not in oncall and 'data-department="CARD"' in oncall


def test_a_message_needing_acknowledgement_is_acknowledged_from_the_alerts_page(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    nurse = web_user(client, "cnurse")
    sent = post(client, nurse, "/compose", {"address": f"person:{doc.id}", "text": "please confirm transfer",
                                            "needs_ack": "true"})
    assert sent.status_code == 303
    act_as(client, doc)
    listing = client.get("/alerts").text
    alert_id = int(re.search(r'id="alert-(\d+)-acknowledge"', listing)[1])  # type: ignore[index]
    assert "please confirm transfer" in listing
    assert post(client, doc, f"/alerts/{alert_id}/respond", {"choice": "Acknowledge", "next": "/alerts"}) \
        .headers["location"] == "/alerts"
    act_as(client, nurse)
    assert 'data-state="acknowledged">Dr. James Wilson: acknowledged' in client.get(sent.headers["location"]).text


def test_both_page_a_number_forms_take_the_paging_intake(client: TestClient, db: Database) -> None:
    operator = web_user(client, "ooperator")
    board = client.get("/board").text
    form = client.get("/page").text
    for page, action in ((board, "/board/page-number"), (form, "/page")):
        assert f'id="page-number" method="post" action="{action}"' in page and 'name="csrf"' in page
    refused = post(client, operator, "/board/page-number", {"number": "000-0009", "text": "call 4W"})
    assert refused.status_code == 422 and "Not paged: recipient &#39;0000009&#39; is not a mapped recipient" \
        in refused.text and 'value="000-0009"' in refused.text
    sent = post(client, operator, "/page", {"number": "(555) 2000", "text": "call 4W", "priority": "stat"})
    assert sent.status_code == 200
    assert re.search(r'Paged 5552000: <a href="/alerts/\d+">alert \d+</a> raised', sent.text)
    with db.unit_of_work() as session:
        rows = session.execute(select(PagingMessage.recipient_id, PagingMessage.status, PagingMessage.channel)
                               .where(PagingMessage.sender_id == "ooperator")
                               .order_by(PagingMessage.id)).all()
    assert [tuple(r) for r in rows][-2:] == [("0000009", "refused", "web"), ("5552000", "accepted", "web")]
    act_as(client, operator)
    no_token = client.post("/page", data={"number": "5552000", "text": "x"}, follow_redirects=False)
    assert no_token.status_code == 403
