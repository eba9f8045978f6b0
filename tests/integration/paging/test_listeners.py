"""TAP, SNPP and e-mail-to-pager over real sockets: pages reach the person the pager number names
(the on-call neurologist for 5551234), refusals answer with the protocol's code and are kept in the
feed monitor."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carerelay.config import load_settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.paging import tap
from carerelay.integrations.paging.models import PagingMessage
from carerelay.routing.resolver import resolve
from tests.api.messaging.helpers import User, user
from tests.pagingsupport import SnppSender, TapSender, running_paging
from tests.wctpsupport import occupy, uniq

DOMAIN = "pager.demo-health.example"


def neurologist_on_call(client: TestClient, db: Database, clock: FakeClock) -> User:
    with db.unit_of_work() as session:
        [first, *_] = resolve(session, "role:Neurology On Call", clock.now()).recipients
    admin = user(client, "iadmin")
    return user(client, client.get(f"/api/people/{first.person_id}", headers=admin.headers).json()["username"])


def alerts_titled(client: TestClient, who: User, marker: str) -> list[dict[str, Any]]:
    return [a for a in client.get("/api/alerts", headers=who.headers).json() if marker in a["title"] + a["body"]]


def monitor(db: Database, **where: Any) -> list[PagingMessage]:
    with db.unit_of_work() as session:
        query = select(PagingMessage).order_by(PagingMessage.id.desc())
        for name, value in where.items():
            query = query.where(getattr(PagingMessage, name) == value)
        return list(session.execute(query).scalars())


def test_tap_checksums_match_the_specification() -> None:
    assert tap.checksum(tap.STX + b"123" + tap.CR + b"ABC" + tap.CR + tap.ETX) == b"17;"
    assert tap.unescape(tap.escape(b"a\rb\x1bc\x1ad")) == b"a\rb\x1bc\x1ad"


def test_tap_session_blocks_checksums_and_refusals(client: TestClient, db: Database, clock: FakeClock) -> None:
    neuro = neurologist_on_call(client, db, clock)
    marker = uniq("TAP")
    with running_paging(db, clock) as running:
        sender = TapSender(running.port("tap"))
        assert sender.logon.startswith(tap.ACK) and b"110 1.8" in sender.last_message
        sender.go_ahead()
        answer = sender.transaction("5551234", f"Call 4401 re bed 12 {marker}")
        assert answer.startswith(tap.ACK) and sender.last_message.startswith(b"211")
        # a damaged block is refused (NAK) and accepted when sent again
        body = tap.STX + b"5551234" + tap.CR + f"second {marker}".encode() + tap.CR + tap.ETX
        sender.io.send(body + b"000" + tap.CR)
        assert sender.answer().startswith(tap.NAK) and sender.last_message.startswith(b"514")
        sender.io.send(body + tap.checksum(body) + tap.CR)
        assert sender.answer().startswith(tap.ACK)
        # one transaction over three blocks: a field continued (US), then a new field (ETB), then the end (ETX)
        first = tap.block(b"5551234" + tap.CR + b"part one ", tap.US)
        second = tap.block(f"continues {marker}".encode() + tap.CR, tap.ETB)
        third = tap.block(b"next line" + tap.CR, tap.ETX)
        for piece in (first, second):
            sender.io.send(piece)
            assert sender.answer().startswith(tap.ACK)
        sender.io.send(third)
        assert sender.answer().startswith(tap.ACK)
        unknown = sender.transaction("0000001", "nobody has this pager")
        assert unknown.startswith(tap.RS) and sender.last_message.startswith(b"511")
        assert sender.bye().endswith(tap.ESC + tap.EOT + tap.CR)
    got = alerts_titled(client, neuro, marker)
    assert len(got) == 3 and {a["kind"] for a in got} == {"page"}
    assert any(a["body"].startswith(f"part one continues {marker}\nnext line") for a in got)
    [refused] = monitor(db, channel="tap", status="refused", recipient_id="0000001")
    assert refused.error_code == 403 and "not a mapped recipient" in (refused.error_text or "")


def test_tap_logon_with_a_senders_password_applies_its_rules(client: TestClient, db: Database,
                                                             clock: FakeClock) -> None:
    occupy(db, clock, unit="4W", room="412", bed="B", nurse_unique_id="N777")
    nurse = user(client, "cnurse")
    marker = uniq("EXIT")
    with running_paging(db, clock) as running:
        sender = TapSender(running.port("tap"), password="demo-secret")
        sender.go_ahead()
        assert sender.transaction("4W-412-B", f"BED EXIT 412-B {marker}").startswith(tap.ACK)
        sender.bye()
    [alert] = alerts_titled(client, nurse, marker)
    assert alert["kind"] == "bed_exit" and alert["priority"] == "stat"
    [row] = monitor(db, channel="tap", alert_id=alert["id"])
    assert row.sender_id == "nursecall-4w"


def test_tap_password_required(db: Database, clock: FakeClock) -> None:
    settings = load_settings(database_url="sqlite:///:memory:", tap_password="s3cret1")
    with running_paging(db, clock, settings, listen={"tap": 0}) as running:
        refused = TapSender(running.port("tap"), password="wrong")
        assert refused.logon.startswith(tap.ESC + tap.EOT) and refused.last_message.startswith(b"509")
        accepted = TapSender(running.port("tap"), password="s3cret1")
        assert accepted.logon.startswith(tap.ACK)
        accepted.bye()


def test_snpp_level_1_and_2(client: TestClient, db: Database, clock: FakeClock) -> None:
    neuro = neurologist_on_call(client, db, clock)
    marker = uniq("SNPP")
    with running_paging(db, clock) as running:
        snpp = SnppSender(running.port("snpp"))
        assert snpp.greeting.startswith("220")
        snpp.io.send(b"HELP\r\n")
        assert snpp.lines_until("250")[-1].startswith("250 End of Help")
        assert snpp.command("PAGE 0000002").startswith("550")
        assert snpp.command("SEND").startswith("503")
        assert snpp.command("page 5551234").startswith("250")
        assert snpp.command(f"MESS stroke alert ED bay 3 {marker}").startswith("250")
        assert snpp.command("MESS again").startswith("503")
        assert snpp.command("SUBJ Neuro").startswith("250")
        assert snpp.command("SEND").startswith("250 Message Sent")
        assert snpp.command("LEVE 1").startswith("500")
        assert snpp.command("LOGI nursecall-4w wrong").startswith("550")
        assert snpp.command("LOGIn nursecall-4w demo-secret").startswith("550")  # not an SNPP sender
        assert snpp.command("PAGEr 5551234").startswith("250")
        snpp.io.send(b"DATA\r\n")
        assert snpp.io.until(b"\r\n").startswith(b"354")
        snpp.io.send(f"line one {marker}\r\n..dotted\r\n.\r\n".encode())
        assert snpp.io.until(b"\r\n").startswith(b"250")
        assert snpp.command("RESE").startswith("250")
        assert snpp.command("SEND").startswith("503")
        assert snpp.command("QUIT").startswith("221")
        assert snpp.io.closed()
    got = alerts_titled(client, neuro, marker)
    assert [a["title"] for a in got] == [f"Neuro: stroke alert ED bay 3 {marker}"]
    assert monitor(db, channel="snpp", status="refused", recipient_id="0000002")


def test_snpp_login_required(client: TestClient, db: Database, clock: FakeClock) -> None:
    admin = user(client, "iadmin")
    assert client.post("/api/paging/senders", headers=admin.headers, json={
        "sender_id": "legacy-paging", "security_code": "pw1", "channels": ["snpp"]}).status_code == 201
    settings = load_settings(database_url="sqlite:///:memory:", snpp_require_login=True)
    with running_paging(db, clock, settings, listen={"snpp": 0}) as running:
        snpp = SnppSender(running.port("snpp"))
        assert snpp.command("PAGE 5551234").startswith("550")
        assert snpp.command("LOGI legacy-paging pw1").startswith("250")
        assert snpp.command("PAGE 5551234").startswith("250")
        snpp.command("QUIT")


def test_email_to_a_virtual_pager_reaches_the_person_on_call_for_its_role(
    client: TestClient, db: Database, clock: FakeClock
) -> None:
    neuro = neurologist_on_call(client, db, clock)
    marker = uniq("MAIL")
    message = EmailMessage()
    message["From"] = "ooperator@demo-health.example"
    message["To"] = f"5551234@{DOMAIN}"
    message["Subject"] = f"Stroke alert {marker}"
    message["X-Priority"] = "1"
    message.set_content("Patient in ED bay 3, last known well 13:10. Call 4455.")
    with running_paging(db, clock) as running, smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=15) as smtp:
        refused = smtp.send_message(message)
        assert refused == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("x@example.org", [f"0000003@{DOMAIN}"], b"Subject: x\r\n\r\nnobody")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("x@example.org", ["5551234@elsewhere.example"], b"Subject: x\r\n\r\nwrong domain")
    [alert] = alerts_titled(client, neuro, marker)
    assert alert["title"] == f"Stroke alert {marker}" and alert["priority"] == "stat"
    assert "last known well 13:10" in alert["body"]
    trail = client.get(f"/api/alerts/{alert['id']}", headers=neuro.headers).json()["events"]
    [notified] = [e for e in trail if e["kind"] == "notified"]
    assert "pager 5551234" in notified["detail"]["reason"] and "Neurology On Call" in notified["detail"]["reason"]
    assert {r.recipient_id for r in monitor(db, channel="email", status="refused")} >= {"0000003", "5551234"}
