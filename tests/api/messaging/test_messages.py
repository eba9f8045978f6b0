"""Conversations, sending, receipts, patient context, policies, idempotency and forwarding."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from carerelay.audit.models import AuditEntry
from carerelay.core.db import Database
from carerelay.messaging.models import Conversation, Message
from tests.api.messaging.helpers import direct, send, user


def _patient(client: TestClient, headers: dict[str, str], mrn: str) -> int:
    response = client.post("/api/patients", headers=headers,
                           json={"mrn": mrn, "family_name": "Doe", "given_name": "Jane", "birth_date": "1958-02-14"})
    assert response.status_code == 201, response.text
    patient_id: int = response.json()["id"]
    return patient_id


def _messages(db: Database) -> int:
    with db.unit_of_work() as session:
        return int(session.execute(select(func.count()).select_from(Message)).scalar_one())


def test_direct_conversation_is_reused_and_group_needs_others(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    first = direct(client, nurse, doc)
    assert direct(client, nurse, doc) == first
    lonely = client.post("/api/conversations", headers=nurse.headers, json={"kind": "group", "member_ids": [nurse.id]})
    assert lonely.status_code == 422 and "at least one other" in lonely.json()["detail"]
    two = client.post("/api/conversations", headers=nurse.headers, json={"kind": "direct", "member_ids": [2, 3]})
    assert two.status_code == 422


def test_conversation_to_a_group_address_reaches_its_members(client: TestClient) -> None:
    nurse = user(client, "cnurse")
    groups = client.get("/api/groups", headers=nurse.headers).json()
    cardiology = next(g for g in groups if g["code"] == "CARD-PHYS")
    conv = client.post("/api/conversations", headers=nurse.headers,
                       json={"kind": "address", "address": f"group:{cardiology['id']}"})
    assert conv.status_code == 201
    assert set(cardiology["member_ids"]) <= set(conv.json()["member_ids"])
    bad = client.post("/api/conversations", headers=nurse.headers, json={"kind": "address", "address": "nowhere:1"})
    assert bad.status_code == 422 and bad.json()["field"] == "address"


def test_an_address_that_reaches_no_one_is_refused_and_nothing_is_stored(client: TestClient, db: Database) -> None:
    nurse, admin = user(client, "cnurse"), user(client, "admin")
    gone = user(client, "golsen")
    team = client.post("/api/groups", headers=admin.headers,
                       json={"code": "NIGHT-FLOAT", "name": "Night float", "member_ids": [gone.id]})
    assert team.status_code == 201, team.text
    client.patch(f"/api/people/{gone.id}", headers=admin.headers, json={"active": False})
    with db.unit_of_work() as session:
        before = session.execute(select(func.count()).select_from(Conversation)).scalar_one()
    refused = client.post("/api/conversations", headers=nurse.headers,
                          json={"kind": "address", "address": f"group:{team.json()['id']}"})
    assert refused.status_code == 422 and refused.json()["field"] == "address"
    assert "reaches no one right now" in refused.json()["detail"]
    with db.unit_of_work() as session:
        assert session.execute(select(func.count()).select_from(Conversation)).scalar_one() == before


def test_deactivated_recipient_is_refused_and_nothing_is_stored(client: TestClient, db: Database) -> None:
    nurse, admin = user(client, "cnurse"), user(client, "admin")
    gone = user(client, "tquinn")
    client.patch(f"/api/people/{gone.id}", headers=admin.headers, json={"active": False})
    response = client.post("/api/conversations", headers=nurse.headers,
                           json={"kind": "direct", "member_ids": [gone.id]})
    assert response.status_code == 422 and "deactivated" in response.json()["detail"]
    assert client.get("/api/conversations", headers=nurse.headers).json() == []


def test_send_read_and_receipts_visible_to_the_sender(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    message = send(client, nurse, conv, "Patient in 412 is asking for you", needs_ack=True, priority="urgent")
    assert message["seq"] == 1 and message["sender_name"] == "Carol Nurse, RN"
    sent = client.get(f"/api/messages/{message['id']}/receipts", headers=nurse.headers).json()
    assert [(r["person_id"], r["read_at"]) for r in sent] == [(doc.id, None)]
    read = client.get(f"/api/conversations/{conv}/messages", headers=doc.headers).json()
    assert [m["text"] for m in read] == ["Patient in 412 is asking for you"]
    client.post("/api/receipts", headers=doc.headers, json={"message_ids": [message["id"]], "state": "read"})
    assert client.post(f"/api/messages/{message['id']}/acknowledge", headers=doc.headers).json() == {"changed": 1}
    seen = client.get(f"/api/messages/{message['id']}/receipts", headers=nurse.headers).json()[0]
    assert seen["delivered_at"] and seen["read_at"] and seen["acknowledged_at"]
    plain = send(client, nurse, conv, "fyi")
    no_ack = client.post(f"/api/messages/{plain['id']}/acknowledge", headers=doc.headers)
    assert no_ack.status_code == 422


def test_outsiders_cannot_read_post_or_see_receipts(client: TestClient, db: Database) -> None:
    nurse, doc, outsider = user(client, "cnurse"), user(client, "jwilson"), user(client, "hpark")
    conv = direct(client, nurse, doc)
    message = send(client, nurse, conv, "private")
    before = _messages(db)
    assert client.get(f"/api/conversations/{conv}/messages", headers=outsider.headers).status_code == 404
    assert client.get(f"/api/conversations/{conv}", headers=outsider.headers).status_code == 404
    post = client.post(f"/api/conversations/{conv}/messages", headers=outsider.headers, json={"text": "hi"})
    assert post.status_code == 404
    assert client.get(f"/api/messages/{message['id']}/receipts", headers=outsider.headers).status_code == 404
    assert _messages(db) == before


def test_every_read_of_a_conversation_is_audited(client: TestClient, db: Database) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    send(client, nurse, conv, "hello")
    client.get(f"/api/conversations/{conv}/messages", headers=doc.headers)
    with db.unit_of_work() as session:
        reads = session.execute(select(AuditEntry).where(AuditEntry.action == "conversation.read",
                                                         AuditEntry.object_id == str(conv))).scalars().all()
    assert [r.actor_id for r in reads] == [doc.id]


def test_one_patient_per_conversation(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    jane, john = _patient(client, nurse.headers, "MRN-T1"), _patient(client, nurse.headers, "MRN-T2")
    conv = direct(client, nurse, doc)
    send(client, nurse, conv, "about Jane", patient_id=jane)
    assert client.get(f"/api/conversations/{conv}", headers=nurse.headers).json()["patient_id"] == jane
    other = client.post(f"/api/conversations/{conv}/messages", headers=nurse.headers,
                        json={"text": "and John?", "patient_id": john})
    assert other.status_code == 409
    assert "start a new conversation for this patient" in other.json()["detail"]
    same = send(client, nurse, conv, "Jane again", patient_id=jane)
    assert same["patient_id"] == jane


def test_order_text_needs_confirmation_and_can_be_blocked(client: TestClient) -> None:
    nurse, doc, admin = user(client, "cnurse"), user(client, "jwilson"), user(client, "admin")
    conv = direct(client, nurse, doc)
    url = f"/api/conversations/{conv}/messages"
    first = client.post(url, headers=nurse.headers, json={"text": "give 40 mEq KCl now"})
    assert first.status_code == 422 and first.json()["warnings"] == ["orders"]
    assert "EMR" in first.json()["detail"]
    confirmed = client.post(url, headers=nurse.headers, json={"text": "give 40 mEq KCl now", "confirm": ["orders"]})
    assert confirmed.status_code == 201 and confirmed.json()["warnings_confirmed"] == ["orders"]
    assert client.post(url, headers=nurse.headers, json={"text": "the order set is in the EMR"}).status_code == 201
    denied = client.patch("/api/messaging/policy", headers=nurse.headers, json={"orders_in_text": "block"})
    assert denied.status_code == 403
    client.patch("/api/messaging/policy", headers=admin.headers, json={"orders_in_text": "block"})
    blocked = client.post(url, headers=nurse.headers, json={"text": "start heparin drip", "confirm": ["orders"]})
    assert blocked.status_code == 422 and "does not allow" in blocked.json()["detail"]
    critical = client.post(url, headers=nurse.headers, json={"text": "critical potassium 6.8"})
    assert critical.json()["warnings"] == ["critical_result"]


def test_critical_result_text_can_be_blocked(client: TestClient, db: Database) -> None:
    nurse, doc, admin = user(client, "cnurse"), user(client, "jwilson"), user(client, "admin")
    conv = direct(client, nurse, doc)
    url = f"/api/conversations/{conv}/messages"
    assert client.patch("/api/messaging/policy", headers=admin.headers,
                        json={"critical_results_in_text": "block"}).status_code == 200
    with db.unit_of_work() as session:
        before = session.execute(select(func.count()).select_from(Message)).scalar_one()
    for text in ("critical potassium 6.8", "Troponin critical high 2.1, call me"):
        blocked = client.post(url, headers=nurse.headers, json={"text": text, "confirm": ["critical_result"]})
        assert blocked.status_code == 422 and blocked.json()["field"] == "text", blocked.text
        assert blocked.json()["detail"].startswith("Not sent.") and "does not allow" in blocked.json()["detail"]
    with db.unit_of_work() as session:
        assert session.execute(select(func.count()).select_from(Message)).scalar_one() == before
    assert send(client, nurse, conv, "potassium recheck is due at 14:00")["warnings_confirmed"] == []
    assert client.post(url, headers=nurse.headers, json={"text": "give 40 mEq KCl now"}).json()["warnings"] == [
        "orders"]  # the other policy keeps its own setting


def test_courtesy_reply_is_silent(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    assert send(client, doc, conv, "ok thx 👍")["silent"] is True
    assert send(client, doc, conv, "no thanks needed, patient stable?")["silent"] is False


def test_bad_messages_are_refused_and_html_is_kept_as_text(client: TestClient, db: Database) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    url = f"/api/conversations/{conv}/messages"
    before = _messages(db)
    assert client.post(url, headers=nurse.headers, json={"text": "   "}).json()["field"] == "text"
    assert client.post(url, headers=nurse.headers, json={"text": "x" * 10_001}).status_code == 422
    assert client.post(url, headers=nurse.headers, json={"text": "hi", "priority": "whenever"}).status_code == 422
    assert client.post(url, headers=nurse.headers, json={"text": "hi", "attachment_ids": [99999]}).status_code == 422
    nan = client.post(url, headers={**nurse.headers, "Content-Type": "application/json"},
                      content=b'{"text": "hi", "patient_id": NaN}')  # Python's JSON parser takes NaN; JSON has none
    assert nan.status_code == 422 and nan.json()["field"] == "patient_id", nan.text
    assert nan.json()["errors"][0]["input"] == "nan"
    assert _messages(db) == before
    script = '<script>alert("x")</script> & <b>bold</b>'
    stored = send(client, nurse, conv, script)
    assert stored["text"] == script


def test_idempotent_send(client: TestClient, db: Database) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conv = direct(client, nurse, doc)
    url = f"/api/conversations/{conv}/messages"
    headers = {**nurse.headers, "Idempotency-Key": "retry-me-1"}
    first = client.post(url, headers=headers, json={"text": "once only"})
    again = client.post(url, headers=headers, json={"text": "once only"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    reused = client.post(url, headers=headers, json={"text": "something else"})
    assert reused.status_code == 422 and reused.json()["field"] == "Idempotency-Key"
    texts = [m["text"] for m in client.get(url, headers=doc.headers).json()]
    assert texts == ["once only"]


def test_forwarding_keeps_author_and_time(client: TestClient, clock: object) -> None:
    nurse, doc, colleague = user(client, "cnurse"), user(client, "jwilson"), user(client, "aokafor")
    source = direct(client, nurse, doc)
    original = send(client, nurse, source, "wound looks worse")
    send(client, doc, source, "coming")
    target = direct(client, doc, colleague)
    forwarded = client.post("/api/forward", headers=doc.headers,
                            json={"to_conversation_id": target, "message_ids": [original["id"]]})
    assert forwarded.status_code == 201
    copy = forwarded.json()[0]
    assert copy["sender_id"] == doc.id and copy["original_author_id"] == nurse.id
    assert copy["original_sent_at"] == original["created_at"] and copy["forwarded_from_id"] == original["id"]
    whole = client.post("/api/forward", headers=doc.headers, json={"to_conversation_id": target,
                                                                   "conversation_id": source}).json()
    assert [m["original_author_id"] for m in whole] == [nurse.id, doc.id]
    seen = client.get(f"/api/conversations/{target}/messages", headers=colleague.headers).json()
    assert [m["seq"] for m in seen] == [1, 2, 3]
    stranger = user(client, "hpark")
    denied = client.post("/api/forward", headers=stranger.headers,
                         json={"to_conversation_id": target, "message_ids": [original["id"]]})
    assert denied.status_code == 404


def test_adding_a_member_to_a_group(client: TestClient) -> None:
    nurse, doc, third = user(client, "cnurse"), user(client, "jwilson"), user(client, "aokafor")
    group = client.post("/api/conversations", headers=nurse.headers,
                        json={"kind": "group", "member_ids": [doc.id], "title": "412-B"}).json()
    added = client.post(f"/api/conversations/{group['id']}/members", headers=nurse.headers,
                        json={"person_id": third.id})
    assert third.id in added.json()["member_ids"]
    one_to_one = direct(client, nurse, doc)
    refused = client.post(f"/api/conversations/{one_to_one}/members", headers=nurse.headers,
                          json={"person_id": third.id})
    assert refused.status_code == 422
