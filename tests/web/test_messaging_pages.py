"""Inbox, thread, compose and forward pages over the messaging services."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from tests.api.messaging.helpers import png
from tests.web.helpers import act_as, admit, messages_of, post, web_user


def _start(client: TestClient, sender: str, to_id: int, text: str, **extra: str) -> int:
    user = web_user(client, sender)
    response = post(client, user, "/compose", {"address": f"person:{to_id}", "text": text, **extra})
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/c/(\d+)", response.headers["location"])
    assert match, response.headers["location"]
    return int(match[1])


def test_html_in_a_message_is_shown_as_text_everywhere(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'
    conversation = _start(client, "cnurse", doc.id, evil)
    act_as(client, doc)
    for url in (f"/c/{conversation}", f"/c/{conversation}/messages", "/inbox", "/inbox/fragment",
                "/inbox?q=quotes"):
        page = client.get(url).text
        assert "<script>alert" not in page and "<img src=x" not in page, url
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page, url
    assert messages_of(client.get(f"/c/{conversation}").text) == [evil]


def test_message_receipts_and_acknowledgement(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    conversation = _start(client, "cnurse", doc.id, "BP 82/50 in 412-B", priority="stat", needs_ack="true")
    nurse = web_user(client, "cnurse")
    thread = client.get(f"/c/{conversation}").text
    assert 'data-state="sent">Dr. James Wilson: sent' in thread
    act_as(client, doc)
    inbox = client.get("/inbox").text
    assert "BP 82/50 in 412-B" in inbox and 'class="unread-count">1' in inbox
    thread = client.get(f"/c/{conversation}").text
    message_id = int(re.search(r'data-unread="(\d+)"', thread)[1])  # type: ignore[index]
    assert 'class="badge priority priority-stat">stat' in thread and "needs acknowledgement" in thread
    response = post(client, doc, f"/c/{conversation}/ack/{message_id}")
    assert response.status_code == 303
    act_as(client, doc)
    assert "You acknowledged" in client.get(f"/c/{conversation}").text
    act_as(client, nurse)
    assert 'data-state="acknowledged">Dr. James Wilson: acknowledged' in client.get(f"/c/{conversation}/messages").text


def test_an_order_in_text_asks_first_and_keeps_the_draft(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    nurse = web_user(client, "cnurse")
    first = post(client, nurse, "/compose", {"address": f"person:{doc.id}", "text": "give 40 mEq KCl now",
                                             "key": "k-order"})
    assert first.status_code == 422
    assert "Orders belong in the EMR" in first.text and 'name="confirm" value="orders" required' in first.text
    assert "give 40 mEq KCl now</textarea>" in first.text
    sent = post(client, nurse, "/compose", {"address": f"person:{doc.id}", "text": "give 40 mEq KCl now",
                                            "confirm": "orders", "key": "k-order"})
    assert sent.status_code == 303
    again = post(client, nurse, "/compose", {"address": f"person:{doc.id}", "text": "give 40 mEq KCl now",
                                             "confirm": "orders", "key": "k-order"})
    assert again.headers["location"] == sent.headers["location"]
    act_as(client, nurse)
    page = client.get(sent.headers["location"]).text
    assert messages_of(page) == ["give 40 mEq KCl now"] and "sent despite the orders warning" in page


def test_reply_keeps_text_on_refusal_and_sends_once_per_form(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    conversation = _start(client, "cnurse", doc.id, "first")
    nurse = web_user(client, "cnurse")
    empty = post(client, nurse, f"/c/{conversation}/send", {"text": "   ", "key": "a"})
    assert empty.status_code == 422 and "the message is empty" in empty.text
    for _ in range(2):
        assert post(client, nurse, f"/c/{conversation}/send", {"text": "second", "key": "b"}).status_code == 303
    act_as(client, nurse)
    assert messages_of(client.get(f"/c/{conversation}").text) == ["first", "second"]
    unknown = post(client, nurse, f"/c/{conversation}/send", {"text": "about who?", "mrn": "NO-SUCH", "key": "c"})
    assert unknown.status_code == 422 and "no patient with MRN NO-SUCH" in unknown.text
    assert "about who?</textarea>" in unknown.text


def test_photo_and_audio_are_inline_and_never_cached(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    nurse = web_user(client, "cnurse")
    response = post(client, nurse, "/compose", {"address": f"person:{doc.id}", "text": "wound, day 3"},
                    files={"photo": ("wound.png", png(), "image/png")})
    assert response.status_code == 303, response.text
    act_as(client, doc)
    page = client.get(response.headers["location"]).text
    src = re.search(r'<img class="attachment" src="(/api/attachments/\d+)"', page)
    assert src is not None and 'alt="Photo sent by Carol Nurse, RN"' in page
    image = client.get(src[1])
    assert image.status_code == 200 and image.headers["cache-control"] == "no-store"
    assert image.headers["content-disposition"] == "inline"
    refused = post(client, nurse, "/compose", {"address": f"person:{doc.id}", "text": "a document"},
                   files={"photo": ("notes.pdf", b"%PDF-1.4 not an image", "application/pdf")})
    assert refused.status_code == 422 and "only camera images" in refused.text


def test_compose_by_role_group_and_care_team(client: TestClient, db: Database, clock: FakeClock) -> None:
    patient_id = admit(db, clock, "MRN-WEB-CT")
    nurse = web_user(client, "cnurse")
    page = client.get("/compose?q=cardiology").text
    assert 'value="role:Cardiology On Call"' in page and "call order 1" in page
    assert 'value="group:' in page and "Cardiology Physicians" in page
    picked = client.get(f"/compose?patient_id={patient_id}").text
    assert f'value="careteam:{patient_id}/attending"' in picked and "Dr. Gregory House" in picked
    assert f'name="patient_id" value="{patient_id}"' in picked
    found = client.get("/compose?pq=MRN-WEB-CT").text
    assert f"/compose?patient_id={patient_id}" in found
    response = post(client, nurse, "/compose", {"address": f"careteam:{patient_id}/attending",
                                                "patient_id": str(patient_id), "text": "K+ question"})
    assert response.status_code == 303
    house = web_user(client, "ghouse")
    thread = client.get(response.headers["location"]).text
    assert "About patient:" in thread and "MRN-WEB-CT" in thread and messages_of(thread) == ["K+ question"]
    assert f'href="/patients/{patient_id}"' in thread
    patient_page = client.get(f"/patients/{patient_id}").text
    assert "K+ question" in patient_page and "Primary Nurse" in patient_page
    act_as(client, house)
    nobody = post(client, house, "/compose", {"address": "role:NOSUCH", "text": "hello"})
    assert nobody.status_code == 422 and "no assignment or department" in nobody.text


def test_forward_a_conversation_to_a_colleague(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    colleague = web_user(client, "aokafor")
    conversation = _start(client, "cnurse", doc.id, "pt in 412-B short of breath")
    act_as(client, doc)
    assert "Forward" in client.get(f"/compose?forward={conversation}&q=okafor").text
    response = post(client, doc, "/compose", {"address": f"person:{colleague.id}", "forward": str(conversation),
                                              "text": ""})
    assert response.status_code == 303, response.text
    act_as(client, colleague)
    page = client.get(response.headers["location"]).text
    assert messages_of(page) == ["pt in 412-B short of breath"] and "forwarded, written by Carol Nurse, RN" in page


def test_a_stranger_cannot_open_a_conversation(client: TestClient) -> None:
    doc = web_user(client, "jwilson")
    conversation = _start(client, "cnurse", doc.id, "private")
    stranger = web_user(client, "hlee")
    assert client.get(f"/c/{conversation}").status_code == 404
    assert client.get(f"/c/{conversation}/messages").status_code == 404
    assert post(client, stranger, f"/c/{conversation}/send", {"text": "hi", "key": "z"}).status_code == 404
