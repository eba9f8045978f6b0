"""Our WCTP client against our own server in a separate `carerelay serve` process (which also runs
the TAP, SNPP and e-mail-to-pager listeners when given ports): submit, refusals, then StatusInfo
and MessageReply collected by polling after a person answers the alert over HTTP."""

from __future__ import annotations

import smtplib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import Engine

from carerelay.demo import DEMO_PASSWORD
from carerelay.integrations.paging import tap
from carerelay.integrations.wctp.client import Polled, WctpClient, WctpFailure
from tests.conftest import Backend
from tests.pagingsupport import SnppSender, TapSender
from tests.servers import free_port, running_server
from tests.wctpsupport import uniq

pytestmark = pytest.mark.slow


def _token(base: str, username: str) -> dict[str, str]:
    response = httpx.post(f"{base}/api/auth/sign-in", json={"username": username, "password": DEMO_PASSWORD,
                                                            "kind": "api"})
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _poll_until(client: WctpClient, want: int) -> list[Polled]:
    """Poll the real server until ``want`` messages arrived (each acknowledged at the next poll)."""
    got: list[Polled] = []
    acks: list[int] = []
    deadline = time.monotonic() + 30
    while len(got) < want:
        assert time.monotonic() < deadline, got
        batch = client.poll(acknowledge=acks)
        acks = [p.sequence_no for p in batch]
        got.extend(batch)
        if len(got) < want:
            time.sleep(0.05)
    client.poll(acknowledge=acks)
    return got


def _message(base: str, admin: dict[str, str], message_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        rows = httpx.get(f"{base}/api/paging/messages", params={"message_id": message_id}, headers=admin).json()
        if rows:
            row: dict[str, Any] = rows[0]
            return row
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_client_against_our_server_process(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    ports = {"tap": free_port(), "snpp": free_port(), "smtp": free_port()}
    env = {"CARERELAY_TAP_PORT": str(ports["tap"]), "CARERELAY_SNPP_PORT": str(ports["snpp"]),
           "CARERELAY_PAGER_SMTP_PORT": str(ports["smtp"]), "CARERELAY_PAGER_EMAIL_DOMAIN": "pager.test"}
    with running_server(backend.cli_url(), tmp_path, None, **env) as server:
        url = f"{server.base_url}/wctp"
        now = datetime.now(UTC)
        with WctpClient(url, sender_id="telemetry-central", security_code="demo-secret", backoff=0) as client:
            assert "wctp-dtd-v1r3" in client.versions(now=now)
            assert client.lookup(recipient_id="5553333", message_id="L1")
            message_id = uniq("PROC")
            code, _ = client.submit(recipient_id="5553333", message_id=message_id, text=f"ASYSTOLE drill {message_id}",
                                    now=now, choices=("Accept", "Reject"), notify_queued=True, notify_delivered=False,
                                    notify_read=False)
            assert code == 200
            with pytest.raises(WctpFailure) as unknown:
                client.submit(recipient_id="no-such-bed-1", message_id=uniq("X"), text="x", now=now)
            assert unknown.value.code == 403 and not unknown.value.retryable
            [queued] = _poll_until(client, 1)
            assert queued.status is not None and queued.status.notification == "QUEUED"
            assert queued.status.header.response_to_message_id == message_id

            admin = _token(server.base_url, "iadmin")
            row = _message(server.base_url, admin, message_id)
            assert row["status"] == "accepted" and row["alert_id"]
            # Only someone the page reached may answer it: a member of the code team.
            events = httpx.get(f"{server.base_url}/api/alerts/{row['alert_id']}", headers=admin).json()["events"]
            reached = next(e["person_id"] for e in events if e["kind"] == "notified")
            member = httpx.get(f"{server.base_url}/api/people/{reached}", headers=admin).json()["username"]
            answered = httpx.post(f"{server.base_url}/api/alerts/{row['alert_id']}/respond",
                                  headers=_token(server.base_url, member), json={"choice": "Accept"})
            assert answered.status_code == 200, answered.text
            [reply] = _poll_until(client, 1)
            assert reply.reply is not None and reply.reply.payload.text == "Accept" and reply.reply.mcr
            assert reply.reply.header.recipient_id == "telemetry-central"
        with WctpClient(url, sender_id="telemetry-central", security_code="nope", attempts=1) as bad:
            with pytest.raises(WctpFailure) as refused:
                bad.submit(recipient_id="5553333", message_id=uniq("B"), text="x", now=now)
            assert refused.value.code == 402

        # the listeners `carerelay serve` started
        marker = uniq("LIVE")
        sender = TapSender(ports["tap"])
        sender.go_ahead()
        assert sender.transaction("5553333", f"TAP {marker}").startswith(tap.ACK)
        sender.bye()
        snpp = SnppSender(ports["snpp"])
        assert snpp.command("PAGE 5553333").startswith("250")
        assert snpp.command(f"MESS SNPP {marker}").startswith("250")
        assert snpp.command("SEND").startswith("250")
        snpp.command("QUIT")
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=15) as smtp:
            smtp.sendmail("ops@example.org", ["5553333@pager.test"], f"Subject: MAIL {marker}\r\n\r\nbody".encode())
        seen = httpx.get(f"{server.base_url}/api/paging/messages", headers=admin, params={"limit": 20}).json()
        assert {r["channel"] for r in seen if marker in r["text"]} == {"tap", "snpp", "email"}
