"""POST /wctp: every answer a WCTP document with the standard code (never an HTTP 500), hostile XML
refused without harm, and every refusal kept in the feed monitor with its reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from carerelay.audit import service as audit_service
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.wctp import api as wctp_api
from carerelay.jobs import service as jobs
from tests.api.messaging.helpers import User, user
from tests.wctpsupport import drain, occupy, post, submit, uniq, wctp_sample

SECRET = "carerelay-xxe-canary-7f3a"


def monitor(client: TestClient, admin: User, **query: Any) -> list[dict[str, Any]]:
    response = client.get("/api/paging/messages", headers=admin.headers, params=query)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def refused_with(client: TestClient, body: bytes, code: int) -> dict[str, Any]:
    """Post, expect a WCTP failure with ``code``, and find the refusal in the monitor with its reason."""
    answer = post(client, body)
    kind, got, text = answer.outcome()
    assert (kind, got) == ("Failure", code), answer.text
    assert text, "the standard error text is given"
    admin = user(client, "iadmin")
    [row] = monitor(client, admin, status="refused", limit=1)
    assert row["error_code"] == code and row["error_text"], row
    return row


@pytest.fixture
def bed(db: Database, clock: FakeClock) -> None:
    occupy(db, clock, unit="4W", room="412", bed="B", nurse_unique_id="N777")


def test_version_query_sample(client: TestClient) -> None:
    answer = post(client, wctp_sample("version_query.xml"))
    assert answer.name == "wctp-VersionResponse"
    assert answer.operation.get("inquirer") == "nursecall-4w"
    assert "wctp-dtd-v1r3" in [d.get("dtdName") for d in answer.operation.findall("wctp-DTDSupport")]


def test_not_xml_truncated_empty_and_oversize_are_301(client: TestClient) -> None:
    sample = wctp_sample("submit_nursecall_bathroom.xml")
    for body in (b"hello, not xml", sample[: len(sample) // 2], b"", b"\xff\xfe\x00garbage"):
        row = refused_with(client, body, 301)
        assert row["channel"] == "wctp"
    big = b"<wctp-Operation>" + b" " * (50 * 1024 * 1024) + b"</wctp-Operation>"
    row = refused_with(client, big, 301)
    assert "over the" in row["error_text"] and str(len(big)) in row["error_text"]


def test_external_entities_billion_laughs_and_dtds_are_refused_unexpanded(client: TestClient, tmp_path: Any) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    xxe = (f'<?xml version="1.0"?><!DOCTYPE wctp-Operation [<!ENTITY x SYSTEM "file://{secret}">]>'
           f'<wctp-Operation wctpVersion="1.3"><wctp-VersionQuery inquirer="&x;"/></wctp-Operation>').encode()
    laughs = ('<?xml version="1.0"?><!DOCTYPE wctp-Operation [<!ENTITY a "aaaaaaaaaa">'
              + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
              + ']><wctp-Operation wctpVersion="1.3"><wctp-VersionQuery inquirer="&i;"/></wctp-Operation>').encode()
    external_dtd = (f'<?xml version="1.0"?><!DOCTYPE wctp-Operation SYSTEM "file://{secret}">'
                    f'<wctp-Operation wctpVersion="1.3"><wctp-VersionQuery inquirer="x"/></wctp-Operation>').encode()
    parameter = (f'<?xml version="1.0"?><!DOCTYPE wctp-Operation [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>'
                 f'<wctp-Operation wctpVersion="1.3"><wctp-VersionQuery inquirer="x"/></wctp-Operation>').encode()
    for body in (xxe, laughs, parameter):
        answer = post(client, body)
        assert answer.outcome()[0] == "Failure" and SECRET not in answer.text
        assert answer.code() in (301, 302)
    # the standard DOCTYPE form is accepted and never fetched, even when it names a local file
    answer = post(client, external_dtd)
    assert answer.name == "wctp-VersionResponse" and SECRET not in answer.text


def test_wrong_nesting_and_missing_fields_are_302(client: TestClient) -> None:
    swapped = submit().replace(b'<wctp-Recipient recipientID="4W-412-B"/>', b"").replace(
        b"<wctp-SubmitHeader", b'<wctp-Recipient recipientID="4W-412-B"/><wctp-SubmitHeader')
    assert "wctp-SubmitRequest must contain" in refused_with(client, swapped, 302)["error_text"]
    nested = submit().replace(b"<wctp-Alphanumeric>", b"<wctp-Alphanumeric><b>").replace(
        b"</wctp-Alphanumeric>", b"</b></wctp-Alphanumeric>")
    refused_with(client, nested, 302)
    no_id = submit(message_id="X").replace(b' messageID="X"', b"")
    assert "messageID" in refused_with(client, no_id, 302)["error_text"]
    long_id = submit(message_id="M" * 33)
    assert "longer than 32" in refused_with(client, long_id, 302)["error_text"]
    refused_with(client, submit(control=' deliveryPriority="URGENT"'), 302)
    refused_with(client, b'<?xml version="1.0"?><wctp-Operation><wctp-VersionQuery inquirer="x"/></wctp-Operation>',
                 302)


def test_version_and_operation_support(client: TestClient, bed: None) -> None:
    refused_with(client, submit(version="2.0"), 303)
    multi = (b'<?xml version="1.0"?><wctp-Operation wctpVersion="1.3"><wctp-SendMsgMulti/></wctp-Operation>')
    refused_with(client, multi, 304)
    for version in ("1.3", "wctp-dtd-v1r1", "wctp-dtd-v1r0"):
        answer = post(client, submit(version=version))
        assert answer.outcome()[:2] == ("Success", 200)
        assert answer.root.get("wctpVersion") in (version, "wctp-dtd-v1r3", "wctp-dtd-v1r1", "wctp-dtd-v1r0")


def test_sender_code_and_recipient_are_checked(client: TestClient, bed: None) -> None:
    assert "not configured" in refused_with(client, submit(sender="nobody-here"), 401)["error_text"]
    refused_with(client, submit(sender="x" * 129), 401)
    assert "wrong security code" in refused_with(client, submit(code="guess"), 402)["error_text"]
    refused_with(client, submit(code=None), 402)
    assert "not a mapped recipient" in refused_with(client, submit(recipient="9-9-9"), 403)["error_text"]
    refused_with(client, submit(recipient="r" * 129), 403)


def test_times_are_checked(client: TestClient, clock: FakeClock, bed: None) -> None:
    refused_with(client, submit(control=' deliveryBefore="yesterday"'), 405)
    refused_with(client, submit(control=' deliveryBefore="2026-02-30T10:00:00"'), 405)
    expired = (clock.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "has passed" in refused_with(client, submit(control=f' deliveryBefore="{expired}"'), 408)["error_text"]
    later = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert post(client, submit(control=f' deliveryBefore="{later}"')).code() == 200


def test_payload_limit(client: TestClient, bed: None) -> None:
    refused_with(client, submit(text="x" * 65_536), 411)
    assert post(client, submit(text="x" * 65_535)).code() == 200


def test_unknown_attributes_client_originator_and_security_token_are_accepted(client: TestClient, bed: None) -> None:
    answer = post(client, submit(control=' vendorPriority="7" x-ascom="1"', extra_header=' vendor="ascom"'))
    assert answer.code() == 200
    client_originator = submit(originator="wctp-ClientOriginator", code=None).replace(
        b'senderID="nursecall-4w"', b'senderID="nursecall-4w" miscInfo="demo-secret"')
    assert post(client, client_originator).code() == 200
    token = submit(code=None).replace(b'wctpVersion="wctp-dtd-v1r3"',
                                      b'wctpVersion="wctp-dtd-v1r3" wctpToken="demo-secret"')
    assert post(client, token).code() == 200


def test_a_repeat_of_an_accepted_message_is_answered_and_not_routed_again(client: TestClient, bed: None) -> None:
    message_id = uniq("DUP")
    nurse, admin = user(client, "cnurse"), user(client, "iadmin")
    before = len(client.get("/api/alerts", headers=nurse.headers).json())
    for _ in range(3):
        assert post(client, submit(message_id=message_id, text="BED EXIT 412-B")).code() == 200
    assert len(client.get("/api/alerts", headers=nurse.headers).json()) == before + 1
    rows = monitor(client, admin, message_id=message_id)
    assert sorted(r["status"] for r in rows) == ["accepted", "duplicate", "duplicate"]
    assert len({r["alert_id"] for r in rows}) == 1


def test_delivery_after_holds_the_message_until_then(client: TestClient, clock: FakeClock, db: Database,
                                                     bed: None) -> None:
    message_id = uniq("LATER")
    at = (clock.now() + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = post(client, submit(message_id=message_id, control=f' deliveryAfter="{at}"'))
    assert answer.code() == 200 and "held until" in answer.operation[0].text
    admin, nurse = user(client, "iadmin"), user(client, "cnurse")
    [row] = monitor(client, admin, message_id=message_id)
    assert row["status"] == "scheduled" and row["alert_id"] is None
    clock.advance(minutes=10)
    jobs.fire_due(db=db, clock=clock)
    [row] = monitor(client, admin, message_id=message_id)
    assert row["status"] == "accepted" and row["alert_id"] in [
        a["id"] for a in client.get("/api/alerts", headers=nurse.headers).json()]


def test_lookup_subscriber(client: TestClient) -> None:
    def lookup(recipient: str) -> Any:
        return post(client, f'<?xml version="1.0"?><wctp-Operation wctpVersion="1.3"><wctp-LookupSubscriber>'
                            f'<wctp-Originator senderID="nursecall-4w" securityCode="demo-secret"/>'
                            f'<wctp-LookupMessageControl messageID="L1"/><wctp-Recipient recipientID="{recipient}"/>'
                            f'</wctp-LookupSubscriber></wctp-Operation>')

    found = lookup("ICU-2-A")
    assert found.name == "wctp-LookupResponse" and found.operation.find("wctp-LookupData") is not None
    assert lookup("5551234").operation.find("wctp-LookupData") is not None  # a virtual pager number
    assert lookup("nothing-9").code() == 403


def test_submit_client_message_and_client_query_by_tracking_number(client: TestClient, bed: None) -> None:
    body = (b'<?xml version="1.0"?><wctp-Operation wctpVersion="wctp-dtd-v1r1"><wctp-SubmitClientMessage>'
            b'<wctp-SubmitClientHeader submitTimestamp="2026-11-24T08:00:00">'
            b'<wctp-ClientOriginator senderID="nursecall-4w" miscInfo="demo-secret"/>'
            b'<wctp-ClientMessageControl notifyWhenQueued="true" allowResponse="true"/>'
            b'<wctp-Recipient recipientID="4W-412-B"/></wctp-SubmitClientHeader>'
            b'<wctp-Payload><wctp-Alphanumeric>PAIN 7/10 412-B</wctp-Alphanumeric></wctp-Payload>'
            b'</wctp-SubmitClientMessage></wctp-Operation>')
    answer = post(client, body)
    assert answer.name == "wctp-SubmitClientResponse"
    tracking = answer.operation.find("wctp-ClientSuccess").get("trackingNumber")
    assert tracking and len(tracking) >= 16

    def query(number: str) -> Any:
        return post(client, f'<?xml version="1.0"?><wctp-Operation wctpVersion="1.3"><wctp-ClientQuery '
                            f'senderID="nursecall-4w" recipientID="4W-412-B" trackingNumber="{number}"/>'
                            f'</wctp-Operation>')

    got = query(tracking)
    assert got.name == "wctp-ClientQueryResponse"
    [status] = got.operation.findall("wctp-ClientMessage/wctp-ClientStatusInfo")
    assert status.find("wctp-Notification").get("type") == "QUEUED"
    assert query(tracking).operation.find("wctp-NoMessages") is not None
    assert query("not-a-number").code() == 404


def test_poll_needs_the_senders_code(client: TestClient) -> None:
    answer = post(client, wctp_sample("poll_for_messages.xml").replace(b"demo-secret", b"wrong"))
    assert answer.name == "wctp-PollResponse" and answer.code() == 402
    assert post(client, wctp_sample("poll_for_messages.xml")).name == "wctp-PollResponse"


def test_a_bug_is_answered_604_not_http_500(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(wctp_api, "handle_request", broken)
    answer = post(client, wctp_sample("version_query.xml"))
    assert answer.code() == 604 and "boom" not in answer.text
    [row] = monitor(client, user(client, "iadmin"), status="refused", limit=1)
    assert row["error_code"] == 604


def test_a_commit_that_fails_is_answered_600_and_keeps_nothing_of_the_submit(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The submit's unit of work ends in the route (SQLite: with its write group's COMMIT); a COMMIT
    that fails is the sender's cue to send again, not an HTTP 500 nor a lost page."""
    real, failures = audit_service._append, list[int]()

    def disk_error(conn: Any, entries: list[dict[str, Any]]) -> None:
        if not failures:
            failures.append(len(entries))
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))
        real(conn, entries)

    monkeypatch.setattr(audit_service, "_append", disk_error)
    message_id = uniq("M")
    answer = post(client, submit(message_id=message_id))
    assert failures and answer.code() == 600, answer.text
    admin = user(client, "iadmin")
    [row] = monitor(client, admin, status="refused", limit=1)
    assert row["error_code"] == 600 and "send again" in row["error_text"]
    assert not [r for r in monitor(client, admin, status="accepted", limit=20) if r["message_id"] == message_id]
    assert post(client, submit(message_id=message_id)).code() == 200  # sent again: accepted, as new


def test_operator_pages_a_number_from_the_web(client: TestClient) -> None:
    operator = user(client, "ooperator")
    sent = client.post("/api/paging/page", headers=operator.headers,
                       json={"number": "5553333", "text": "Code blue drill in 10 minutes, ED"})
    assert sent.status_code == 201, sent.text
    assert sent.json()["alert_id"] is not None
    refused = client.post("/api/paging/page", headers=operator.headers, json={"number": "0000000", "text": "x"})
    assert refused.status_code == 422 and "not a mapped recipient" in refused.json()["detail"]
    [row] = monitor(client, user(client, "iadmin"), channel="web", status="refused", limit=1)
    assert row["recipient_id"] == "0000000"
    nurse = user(client, "cnurse")
    assert client.post("/api/paging/page", headers=nurse.headers, json={"number": "5553333",
                                                                        "text": "x"}).status_code == 403


def test_admin_manages_senders_recipients_and_rules(client: TestClient, bed: None) -> None:
    admin = user(client, "iadmin")
    sender = client.post("/api/paging/senders", headers=admin.headers,
                         json={"sender_id": "ascom-7", "security_code": "s3cret", "channels": ["wctp"]})
    assert sender.status_code == 201 and sender.json()["security_code_required"] is True
    assert "s3cret" not in sender.text
    assert client.post("/api/paging/senders", headers=admin.headers,
                       json={"sender_id": "ascom-7"}).status_code == 409
    mapped = client.post("/api/paging/recipients", headers=admin.headers,
                         json={"recipient_id": "ROOM-412B-PULL", "unit": "4W", "room": "412", "bed": "B"})
    assert mapped.status_code == 201 and mapped.json()["address"] == "location:4W/412/B/nurse"
    assert client.post("/api/paging/recipients", headers=admin.headers,
                       json={"recipient_id": "NOPE", "unit": "4W", "room": "999", "bed": "Z"}).status_code == 422
    bad = client.post("/api/paging/rules", headers=admin.headers,
                      json={"name": "bad", "alert_kind": "x", "text_pattern": "(unclosed"})
    assert bad.status_code == 422 and bad.json()["field"] == "text_pattern"
    assert client.post("/api/paging/rules", headers=admin.headers,
                       json={"name": "bad2", "alert_kind": "x", "target": "group:{wing}"}).status_code == 422
    rule = client.post("/api/paging/rules", headers=admin.headers, json={
        "name": "Pull cord", "alert_kind": "pull_cord", "position": 1, "sender_id": "ascom-7",
        "text_pattern": "pull cord", "priority": "critical", "tone": "alarm",
        "target": "all:location:{unit}/{room}/{bed}/nurse|group:{unit}-CHARGE"})
    assert rule.status_code == 201, rule.text
    answer = post(client, submit(sender="ascom-7", code="s3cret", recipient="ROOM-412B-PULL",
                                 text="BATHROOM PULL CORD 412-B"))
    assert answer.code() == 200
    charge = user(client, "dwhitaker")
    [alert] = [a for a in client.get("/api/alerts", headers=charge.headers).json() if a["kind"] == "pull_cord"]
    assert alert["priority"] == "critical"
    assert client.get("/api/paging/rules", headers=user(client, "cnurse").headers).status_code == 403
    drain(client, "nursecall-4w")


def test_the_monitor_keeps_each_request_without_its_codes(client: TestClient, bed: None) -> None:
    message_id = uniq("RED")
    assert post(client, submit(message_id=message_id)).code() == 200
    admin = user(client, "iadmin")
    [row] = monitor(client, admin, message_id=message_id)
    detail = client.get(f"/api/paging/messages/{row['id']}", headers=admin.headers).json()
    assert "demo-secret" not in detail["raw"] and 'securityCode="***"' in detail["raw"]
    assert detail["notify_delivered"] is False and detail["priority_in"] == "NORMAL"


def test_a_held_message_that_expires_while_held_is_refused(client: TestClient, clock: FakeClock, db: Database,
                                                           bed: None) -> None:
    message_id = uniq("HOLD")
    after = (clock.now() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = (clock.now() + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert post(client, submit(message_id=message_id, control=f' deliveryAfter="{after}" '
                                                              f'deliveryBefore="{before}"')).code() == 200
    clock.advance(minutes=30)
    jobs.fire_due(db=db, clock=clock)
    [row] = monitor(client, user(client, "iadmin"), message_id=message_id)
    assert (row["status"], row["error_code"], row["alert_id"]) == ("refused", 408, None)


def test_purge_drops_old_monitor_rows(client: TestClient, clock: FakeClock, db: Database, bed: None) -> None:
    from carerelay.core.actor import cli_actor
    from carerelay.integrations.paging.service import purge_messages

    message_id = uniq("OLD")
    assert post(client, submit(message_id=message_id, control=' notifyWhenQueued="true"')).code() == 200
    clock.advance(days=3)
    with db.unit_of_work() as session:
        assert purge_messages(session=session, clock=clock, actor=cli_actor(), older_than_days=2) >= 1
    assert monitor(client, user(client, "iadmin"), message_id=message_id) == []


def test_operator_pages_from_the_web_page(client: TestClient) -> None:
    operator = user(client, "ooperator")
    form = client.get("/page", headers=operator.headers)
    assert form.status_code == 200 and 'name="number"' in form.text
    sent = client.post("/page", headers=operator.headers,
                       data={"number": "5552000", "text": "Call the ED re bay 4", "priority": "stat"})
    assert sent.status_code == 200 and "alert" in sent.text and "raised" in sent.text
    refused = client.post("/page", headers=operator.headers, data={"number": "0000009", "text": "x"})
    assert refused.status_code == 422 and "Not paged" in refused.text
    assert client.get("/page", headers=user(client, "cnurse").headers).status_code == 403
