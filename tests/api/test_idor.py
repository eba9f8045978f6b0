"""No one reads or touches what they have no part in, by guessing its id (IDOR), through the API,
the web pages or a list or search.

The rules under test, as the services state them:
- messaging (1): a conversation, its messages, receipts and attachments are its members' alone; to
  anyone else it does not exist (404), whatever their role — compliance reads through discovery.
- messaging (3): the sender sees every recipient's receipt, a recipient only their own.
- alerts (1): an alert is visible to the people it reached and to the overseeing roles (operators,
  integration admins, compliance officers, system admins); (2) only the people it reached answer it.
- patients: any care role (clinician, nurse, operator, system admin) may read a patient — a clinical
  messaging platform must let a nurse find the patient a message is about — and every read is
  audited with who read it; other roles cannot read patients at all.
- scheduling (1)(2): swap and time-off requests are seen by the people in them, their department's
  scheduler and system administrators.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.messaging.helpers import User, direct, png, send, user

OUTSIDERS = ("hlee", "ghouse", "ooperator", "sscheduler", "iadmin", "admin", "ccompliance")
"""One person of every role who is in none of the conversations below."""


def _attach(client: TestClient, who: User) -> int:
    response = client.post("/api/attachments", headers=who.headers,
                           files={"file": ("camera.png", png(), "image/png")})
    assert response.status_code == 201, response.text
    attachment_id: int = response.json()["id"]
    return attachment_id


@pytest.fixture
def private(client: TestClient) -> dict[str, Any]:
    """Carol Nurse and Dr. Wilson's conversation: one message needing acknowledgement, with a photo."""
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    conversation = direct(client, nurse, doc)
    sent = send(client, nurse, conversation, "zebrafinch wound check 412-B", needs_ack=True,
                attachment_ids=[_attach(client, nurse)])
    return {"nurse": nurse, "doc": doc, "conversation": conversation, "message": sent["id"],
            "attachment": sent["attachments"][0]["id"]}


def test_a_conversation_does_not_exist_for_anyone_outside_it(client: TestClient, private: dict[str, Any]) -> None:
    conv, message, attachment = private["conversation"], private["message"], private["attachment"]
    for name in OUTSIDERS:
        outsider = user(client, name)
        own = direct(client, outsider, user(client, "lcuddy"))
        send(client, outsider, own, "their own words")
        h = outsider.headers
        attempts = {
            "read it": client.get(f"/api/conversations/{conv}", headers=h),
            "read its messages": client.get(f"/api/conversations/{conv}/messages", headers=h),
            "write into it": client.post(f"/api/conversations/{conv}/messages", headers=h, json={"text": "hello"}),
            "add themselves": client.post(f"/api/conversations/{conv}/members", headers=h,
                                          json={"person_id": outsider.id}),
            "read its receipts": client.get(f"/api/messages/{message}/receipts", headers=h),
            "acknowledge it": client.post(f"/api/messages/{message}/acknowledge", headers=h),
            "mark it read": client.post("/api/receipts", headers=h, json={"message_ids": [message], "state": "read"}),
            "open its photo": client.get(f"/api/attachments/{attachment}", headers=h),
            "forward it whole": client.post("/api/forward", headers=h,
                                            json={"to_conversation_id": own, "conversation_id": conv}),
            "forward its message": client.post("/api/forward", headers=h,
                                               json={"to_conversation_id": own, "message_ids": [message]}),
            "forward into it": client.post("/api/forward", headers=h,
                                           json={"to_conversation_id": conv, "conversation_id": own}),
            "open its page": client.get(f"/c/{conv}", headers=h),
            "open its messages fragment": client.get(f"/c/{conv}/messages", headers=h),
            "send from its page": client.post(f"/c/{conv}/send", headers=h, data={"text": "hello"}),
            "acknowledge from its page": client.post(f"/c/{conv}/ack/{message}", headers=h),
            "compose a forward of it": client.get(f"/compose?forward={conv}", headers=h),
            "send a forward of it": client.post("/compose", headers=h, data={
                "address": f"person:{outsider.id}", "forward": str(conv), "text": "fyi"}),
        }
        leaked = {what: r.status_code for what, r in attempts.items() if r.status_code != 404}
        assert not leaked, f"{name} reached the conversation: {leaked}"
        listed = {c["id"] for c in client.get("/api/conversations", headers=h).json()}
        assert conv not in listed and own in listed, name
        found = client.get("/api/messages/search?q=zebrafinch", headers=h)
        assert found.status_code == 200 and found.json() == [], name
        inbox = client.get("/inbox", headers=h)
        assert inbox.status_code == 200 and "zebrafinch" not in inbox.text, name
    # Nothing any of them tried changed the conversation.
    nurse, doc = private["nurse"], private["doc"]
    assert client.get(f"/api/conversations/{conv}", headers=nurse.headers).json()["member_ids"] == sorted(
        [nurse.id, doc.id])
    assert [m["id"] for m in client.get(f"/api/conversations/{conv}/messages", headers=nurse.headers).json()] == [
        message]
    receipt = client.get(f"/api/messages/{message}/receipts", headers=nurse.headers).json()
    assert [(r["person_id"], r["read_at"], r["acknowledged_at"]) for r in receipt] == [(doc.id, None, None)]


def test_members_reach_it(client: TestClient, private: dict[str, Any]) -> None:
    """The counterpart of the test above, so a 404 for everyone cannot pass it."""
    doc, conv = private["doc"], private["conversation"]
    assert client.get(f"/api/conversations/{conv}/messages", headers=doc.headers).status_code == 200
    assert client.get(f"/api/attachments/{private['attachment']}", headers=doc.headers).status_code == 200
    assert client.get(f"/c/{conv}", headers=doc.headers).status_code == 200
    found = client.get("/api/messages/search?q=zebrafinch", headers=doc.headers).json()
    assert [m["id"] for m in found] == [private["message"]]


def test_an_unsent_attachment_is_its_uploaders_alone(client: TestClient) -> None:
    nurse, doc = user(client, "cnurse"), user(client, "jwilson")
    attachment = _attach(client, nurse)
    assert client.get(f"/api/attachments/{attachment}", headers=doc.headers).status_code == 404
    conversation = direct(client, doc, user(client, "ghouse"))
    taken = client.post(f"/api/conversations/{conversation}/messages", headers=doc.headers,
                        json={"text": "look", "attachment_ids": [attachment]})
    assert taken.status_code == 422 and taken.json()["field"] == "attachment_ids"
    assert client.get(f"/api/attachments/{attachment}", headers=nurse.headers).status_code == 200


def test_a_recipient_sees_only_their_own_receipt(client: TestClient) -> None:
    nurse, doc, house = user(client, "cnurse"), user(client, "jwilson"), user(client, "ghouse")
    created = client.post("/api/conversations", headers=nurse.headers,
                          json={"kind": "group", "member_ids": [doc.id, house.id], "title": "412-B"})
    assert created.status_code == 201, created.text
    sent = send(client, nurse, created.json()["id"], "BP 82/50")
    assert {r["person_id"] for r in client.get(f"/api/messages/{sent['id']}/receipts",
                                               headers=nurse.headers).json()} == {doc.id, house.id}
    assert [r["person_id"] for r in client.get(f"/api/messages/{sent['id']}/receipts",
                                               headers=doc.headers).json()] == [doc.id]


@pytest.fixture
def alert(client: TestClient) -> dict[str, Any]:
    """An alert raised by an operator to Dr. House alone."""
    operator, house = user(client, "ooperator"), user(client, "ghouse")
    raised = client.post("/api/alerts", headers=operator.headers,
                         json={"title": "call 4W re 412-B", "address": f"person:{house.id}", "choices": ["Accept",
                                                                                                        "Reject"]})
    assert raised.status_code == 201, raised.text
    return {"id": raised.json()["id"], "house": house}


def test_an_alert_does_not_exist_for_people_it_did_not_reach(client: TestClient, alert: dict[str, Any]) -> None:
    alert_id = alert["id"]
    for name in ("cnurse", "jwilson", "sscheduler"):
        h = user(client, name).headers
        attempts = {
            "read it": client.get(f"/api/alerts/{alert_id}", headers=h),
            "acknowledge it": client.post(f"/api/alerts/{alert_id}/acknowledge", headers=h),
            "answer it": client.post(f"/api/alerts/{alert_id}/respond", headers=h, json={"choice": "Reject"}),
            "record a read-back": client.post(f"/api/alerts/{alert_id}/readback", headers=h, json={"text": "K 6.8"}),
            "mark it read": client.post("/api/alerts/receipts", headers=h, json={"alert_ids": [alert_id],
                                                                                 "state": "read"}),
            "open its page": client.get(f"/alerts/{alert_id}", headers=h),
            "answer from its page": client.post(f"/alerts/{alert_id}/respond", headers=h, data={"choice": "Accept"}),
        }
        leaked = {what: r.status_code for what, r in attempts.items() if r.status_code != 404}
        assert not leaked, f"{name} reached the alert: {leaked}"
        assert alert_id not in {a["id"] for a in client.get("/api/alerts?open_only=false", headers=h).json()}


def test_overseers_read_an_alert_but_only_those_it_reached_answer_it(client: TestClient,
                                                                      alert: dict[str, Any]) -> None:
    """A compliance officer acknowledging a critical result would stop its escalation with no one at
    the bedside having seen it."""
    alert_id = alert["id"]
    for name in ("ooperator", "iadmin", "ccompliance", "admin"):
        h = user(client, name).headers
        assert client.get(f"/api/alerts/{alert_id}", headers=h).status_code == 200, name
        for answer in (client.post(f"/api/alerts/{alert_id}/acknowledge", headers=h),
                       client.post(f"/api/alerts/{alert_id}/respond", headers=h, json={"choice": "Reject"}),
                       client.post(f"/api/alerts/{alert_id}/respond", headers=h, json={"choice": "Accept"}),
                       client.post(f"/alerts/{alert_id}/respond", headers=h, data={"choice": "Accept"})):
            assert answer.status_code == 403, (name, answer.text)
    trail = client.get(f"/api/alerts/{alert_id}", headers=alert["house"].headers).json()
    assert trail["alert"]["status"] == "open"
    assert not {e["kind"] for e in trail["events"]} & {"acknowledged", "rejected"}
    answered = client.post(f"/api/alerts/{alert_id}/respond", headers=alert["house"].headers,
                           json={"choice": "Accept"})
    assert answered.status_code == 200 and answered.json()["status"] == "acknowledged"


def test_patients_are_read_by_care_roles_only_and_every_read_names_the_reader(client: TestClient) -> None:
    nurse = user(client, "cnurse")
    created = client.post("/api/patients", headers=nurse.headers,
                          json={"mrn": "MRN-IDOR-1", "family_name": "Roe", "given_name": "Richard"})
    assert created.status_code == 201, created.text
    patient = created.json()["id"]
    for name in ("sscheduler", "iadmin", "ccompliance"):
        h = user(client, name).headers
        for path in (f"/api/patients/{patient}", f"/api/patients/{patient}/care-team",
                     f"/api/patients/{patient}/results", "/api/patients?mrn=MRN-IDOR-1", f"/patients/{patient}",
                     f"/embed/patients/{patient}"):
            assert client.get(path, headers=h).status_code == 403, (name, path)
    # A clinician with no part in the patient's care may look them up (to message about them), and
    # the audit log says who did.
    stranger = user(client, "ghouse")
    assert client.get(f"/api/patients/{patient}", headers=stranger.headers).status_code == 200
    compliance = user(client, "ccompliance")
    reads = client.get(f"/api/audit?action=patient.read&object_type=patient&object_id={patient}",
                       headers=compliance.headers).json()
    assert stranger.id in {r["actor_id"] for r in reads}


def test_time_off_and_swaps_are_seen_by_those_in_them_and_their_schedulers(client: TestClient) -> None:
    wilson = user(client, "jwilson")
    asked = client.post("/api/scheduling/time-off", headers=wilson.headers,
                        json={"person_id": wilson.id, "starts_on": "2027-03-01", "ends_on": "2027-03-05",
                              "reason": "knee surgery"})
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]

    def sees(name: str) -> bool:
        listed = client.get("/api/scheduling/time-off", headers=user(client, name).headers)
        assert listed.status_code == 200
        return request_id in {t["id"] for t in listed.json()}

    # Wilson is cardiology: its scheduler sees the request, the hospitalists' scheduler does not.
    assert sees("jwilson") and sees("sscheduler") and sees("admin")
    assert not sees("ghouse") and not sees("cnurse") and not sees("jpatel")
    assert not any(t["id"] == request_id for t in client.get(
        f"/api/scheduling/time-off?person_id={wilson.id}", headers=user(client, "ghouse").headers).json())
    slot = next(s for schedule in client.get("/api/scheduling/schedules", headers=wilson.headers).json()
                for s in client.get(f"/api/scheduling/schedules/{schedule['id']}/slots", headers=wilson.headers).json()
                if s["person_id"] == wilson.id)
    okafor = user(client, "aokafor")
    swap = client.post("/api/scheduling/swaps", headers=wilson.headers,
                       json={"slot_id": slot["id"], "to_person_id": okafor.id, "reason": "family matter"})
    assert swap.status_code == 201, swap.text

    def sees_swap(name: str) -> bool:
        listed = client.get("/api/scheduling/swaps", headers=user(client, name).headers)
        assert listed.status_code == 200
        return swap.json()["id"] in {s["id"] for s in listed.json()}

    assert sees_swap("jwilson") and sees_swap("aokafor") and sees_swap("sscheduler") and sees_swap("admin")
    assert not sees_swap("ghouse") and not sees_swap("jpatel")


def test_other_peoples_sessions_and_rules_cannot_be_touched(client: TestClient) -> None:
    wilson, house = user(client, "jwilson"), user(client, "ghouse")
    sessions = client.get("/api/auth/sessions", headers=wilson.headers).json()
    current = next(s["id"] for s in sessions if s["current"])
    assert client.delete(f"/api/auth/sessions/{current}", headers=house.headers).status_code == 404
    assert client.get("/api/auth/me", headers=wilson.headers).status_code == 200
    rule = client.post("/api/routing/rules", headers=wilson.headers, json={"action": "deliver"})
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]
    assert client.delete(f"/api/routing/rules/{rule_id}", headers=house.headers).status_code == 404
    assert client.post(f"/me/rules/{rule_id}/deactivate", headers=house.headers).status_code == 404
    assert rule_id not in {r["id"] for r in client.get("/api/routing/rules", headers=house.headers).json()}
    assert next(r for r in client.get("/api/routing/rules", headers=wilson.headers).json()
                if r["id"] == rule_id)["active"]
