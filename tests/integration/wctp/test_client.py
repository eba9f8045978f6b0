"""The outbound WCTP client and the pager channel, against a second independent WCTP peer written
from the specification (tests/wctp_peer.py): submit, retries, refusals, polling, and the closed
loop — a page's StatusInfo and MessageReply answering the alert as the pager's holder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

import pytest
from fastapi.testclient import TestClient

from carerelay.app import create_app
from carerelay.config import Settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.paging.models import PagingMessage
from carerelay.integrations.wctp.client import WctpClient, WctpFailure
from carerelay.integrations.wctp.gateways import Gateway
from carerelay.integrations.wctp.outbox import enqueue, push_due
from carerelay.integrations.wctp.worker import WctpWorker
from carerelay.notifications import service as notifications
from carerelay.notifications.channels.pager import WctpPagerChannel
from tests.api.messaging.helpers import user
from tests.wctp_peer import Peer, operation, running_peer, status_info
from tests.wctpsupport import drain, occupy, post, submit, uniq

PAGER_ID = "5558001"


@pytest.fixture
def peer() -> Iterator[Peer]:
    with running_peer({"mainhosp": "carrier-pw"}, {PAGER_ID, "5558002"}) as running:
        yield running


def gateway(peer: Peer) -> Gateway:
    return Gateway(name="testcarrier", url=peer.url, sender_id="mainhosp", security_code="carrier-pw", default=True,
                   attempts=3, backoff_seconds=0)


def test_client_submits_retries_and_reads_refusals(peer: Peer, clock: FakeClock) -> None:
    with WctpClient(peer.url, sender_id="mainhosp", security_code="carrier-pw", backoff=0) as client:
        assert "wctp-dtd-v1r3" in client.versions(now=clock.now())
        assert client.submit(recipient_id=PAGER_ID, message_id="A1", text="hello", now=clock.now())[0] == 200
        peer.fail_next = [503, 503]
        before = peer.requests
        assert client.submit(recipient_id=PAGER_ID, message_id="A2", text="after a hiccup", now=clock.now())[0] == 200
        assert peer.requests - before == 3
        peer.fail_next = [503, 503, 503]
        with pytest.raises(WctpFailure) as down:
            client.submit(recipient_id=PAGER_ID, message_id="A3", text="never", now=clock.now())
        assert down.value.retryable
        with pytest.raises(WctpFailure) as unknown:
            client.submit(recipient_id="0000000", message_id="A4", text="nobody", now=clock.now())
        assert (unknown.value.code, unknown.value.retryable) == (403, False)
        peer.fail_next = [604]
        with pytest.raises(WctpFailure) as internal:
            WctpClient(peer.url, sender_id="mainhosp", security_code="carrier-pw", attempts=1).submit(
                recipient_id=PAGER_ID, message_id="A5", text="x", now=clock.now())
        assert internal.value.retryable
    with WctpClient(peer.url, sender_id="mainhosp", security_code="wrong", backoff=0) as bad:
        with pytest.raises(WctpFailure) as refused:
            bad.submit(recipient_id=PAGER_ID, message_id="A6", text="x", now=clock.now())
        assert refused.value.code == 402 and not refused.value.retryable
    with WctpClient("http://127.0.0.1:9/wctp", sender_id="x", attempts=2, backoff=0, timeout=2) as nowhere:
        with pytest.raises(WctpFailure) as unreachable:
            nowhere.versions(now=clock.now())
        assert unreachable.value.retryable


def test_client_polls_reports_and_acknowledges(peer: Peer, clock: FakeClock) -> None:
    with WctpClient(peer.url, sender_id="mainhosp", security_code="carrier-pw", backoff=0) as client:
        client.submit(recipient_id=PAGER_ID, message_id="P1", text="call 4401", now=clock.now())
        assert client.poll() == []
        peer.device_reports("P1", reply="Call back")
        first = client.poll()
        assert [(p.status.notification if p.status else p.reply.payload.text if p.reply else None)
                for p in first] == ["DELIVERED", "READ", "Call back"]
        assert client.poll(acknowledge=[p.sequence_no for p in first]) == []


def test_a_page_through_the_carrier_closes_the_loop(client: TestClient, db: Database, clock: FakeClock,
                                                    settings: Settings, peer: Peer) -> None:
    operator, house = user(client, "ooperator"), user(client, "ghouse")
    alert = client.post("/api/alerts", headers=operator.headers, json={
        "title": "K+ 6.8 (HH) call back", "address": f"person:{house.id}", "priority": "critical",
        "choices": ["Accept", "Call back"]}).json()
    with db.unit_of_work() as session:
        delivery = notifications.enqueue(session=session, clock=clock, person_id=house.id, channel="pager",
                                         address=f"{PAGER_ID}@testcarrier", subject="[CRITICAL] K+ 6.8",
                                         body="Call the lab at 4401", alert_id=alert["id"])
    channel = WctpPagerChannel([gateway(peer)], clock=clock)
    assert notifications.deliver_due(db=db, clock=clock, channels={"pager": channel}) >= 1
    [page] = [s for s in peer.submitted if s.message_id == f"CR{delivery.id}"]
    assert page.recipient == PAGER_ID and page.choices == ["Accept", "Reject", "Call back"]
    assert page.text.startswith("[CRITICAL] K+ 6.8") and page.notify_delivered and page.notify_read

    # the carrier pushes a StatusInfo to our /wctp: checked against the gateway and the page's pager
    wired = settings.model_copy(update={"wctp_gateways": json.dumps([{
        k: v for k, v in asdict(gateway(peer)).items()}])})
    with TestClient(create_app(wired, db=db, clock=clock)) as app:
        pushed = post(app, operation(status_info(f"CR{delivery.id}", PAGER_ID, "mainhosp", "DELIVERED", "X1")))
        assert pushed.outcome()[:2] == ("Success", 200)
        spoofed = post(app, operation(status_info(f"CR{delivery.id}", "5558002", "mainhosp", "READ", "X2")))
        assert spoofed.code() == 401
        stranger = post(app, operation(status_info("CR999999999", PAGER_ID, "mainhosp", "READ", "X3")))
        assert stranger.code() == 404

    # the holder answers on the pager; the worker polls the carrier and the alert is acknowledged by them
    peer.device_reports(f"CR{delivery.id}", delivered=False, reply="Accept")
    worker = WctpWorker(settings, gateways=[gateway(peer)])
    assert worker.poll_carrier(db, clock, gateway(peer)) == 2
    trail = client.get(f"/api/alerts/{alert['id']}", headers=house.headers).json()
    assert trail["alert"]["status"] == "acknowledged" and trail["alert"]["acknowledged_by"] == house.id
    kinds = [e["kind"] for e in trail["events"]]
    assert {"pager_delivered", "pager_read", "pager_reply", "acknowledged"} <= set(kinds)
    assert worker.poll_carrier(db, clock, gateway(peer)) == 0  # acknowledged to the carrier
    worker.close()
    channel.close()


def test_replies_are_pushed_to_a_senders_url_after_commit(client: TestClient, db: Database, clock: FakeClock,
                                                          peer: Peer) -> None:
    admin = user(client, "iadmin")
    host = client.post("/api/paging/senders", headers=admin.headers, json={
        "sender_id": "ascom-push", "security_code": "pw", "reply_url": peer.url, "reply_security_code": "back"})
    assert host.status_code == 201
    occupy(db, clock, unit="4W", room="412", bed="B", nurse_unique_id="N777")
    message_id = uniq("PUSH")
    body = submit(sender="ascom-push", code="pw", message_id=message_id, choices=("Accept", "Reject"),
                  control=' notifyWhenQueued="true" notifyWhenDelivered="true" notifyWhenRead="true"')
    assert post(client, body).code() == 200
    nurse = user(client, "cnurse")
    [alert] = [a for a in client.get("/api/alerts", headers=nurse.headers).json() if a["title"].startswith("BATHROOM")
               and a["source"] == "wctp"]
    assert client.post(f"/api/alerts/{alert['id']}/respond", headers=nurse.headers,
                       json={"choice": "Accept"}).status_code == 200
    assert not peer.pushed, "nothing leaves before the outbox runs"
    with WctpClient("http://unused", sender_id="carerelay", attempts=1) as pusher:
        sent = push_due(db=db, clock=clock, post=lambda url, doc: pusher.confirm(doc, url=url))
    assert sent == 4
    kinds = [(p.tag, p.findtext("wctp-Payload/wctp-Alphanumeric") or p.find("wctp-Notification").get("type"))  # type: ignore[union-attr]
             for p in peer.pushed]
    assert kinds == [("wctp-StatusInfo", "QUEUED"), ("wctp-StatusInfo", "DELIVERED"), ("wctp-StatusInfo", "READ"),
                     ("wctp-MessageReply", "Accept")]
    header = peer.pushed[-1].find("wctp-ResponseHeader")
    assert header is not None and header.get("responseToMessageID") == message_id
    assert header.findall("wctp-Originator")[0].get("securityCode") == "back"
    assert header.findall("wctp-Recipient")[0].get("recipientID") == "ascom-push"
    assert drain(client, "nursecall-4w") is not None

    # a host that refuses a reply for good: failed at once and written into the alert's trail
    peer.fail_next = [403]
    [row] = client.get("/api/paging/messages", headers=admin.headers, params={"message_id": message_id}).json()
    with db.unit_of_work() as session:
        message = session.get(PagingMessage, row["id"])
        assert message is not None
        enqueue(session=session, clock=clock, message=message, kind="reply", reply_text="Call back")
    with WctpClient("http://unused", sender_id="carerelay", attempts=1) as pusher:
        assert push_due(db=db, clock=clock, post=lambda url, doc: pusher.confirm(doc, url=url)) == 1
    trail = client.get(f"/api/alerts/{alert['id']}", headers=nurse.headers).json()["events"]
    assert any(e["kind"] == "wctp_reply_failed" for e in trail)


def test_a_peers_refusal_codes_come_back_as_they_are(clock: FakeClock) -> None:
    with running_peer({}, set()) as peer:
        peer.fail_next = [301]
        with WctpClient(peer.url, sender_id="x", attempts=1) as client, pytest.raises(WctpFailure) as failure:
            client.submit(recipient_id="1", message_id="H1", text="x", now=clock.now())
        assert (failure.value.code, failure.value.retryable) == (301, False)
