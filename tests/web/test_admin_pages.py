"""The integration admin's consoles: HL7 log and reprocess, escalation policies, routing defaults,
users and roles (changed by system administrators only)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.hl7 import store
from carerelay.integrations.hl7.feeds import Feed
from tests.hl7support import personalise, sample, uniq
from tests.web.helpers import act_as, post, web_user


def test_hl7_log_detail_and_reprocess(client: TestClient, db: Database, clock: FakeClock) -> None:
    mrn, control = uniq("WEBMRN"), uniq("WEBCTL")
    raw = personalise(sample("adt_a01_admit.hl7"), mrn=mrn, control=control)
    with db.unit_of_work() as session:
        [receipt] = store.receive_messages(session=session, clock=clock,
                                           items=[store.Inbound(feed=Feed(name="main", port=0), raw=raw,
                                                                              peer="10.0.0.9")])
    admin = web_user(client, "iadmin")
    log = client.get(f"/admin/hl7/messages?mrn={mrn}").text
    assert f'href="/admin/hl7/messages/{receipt.message_id}"' in log and control in log and ">received<" in log
    detail = client.get(f"/admin/hl7/messages/{receipt.message_id}").text
    assert f"PID|1||{mrn}" in detail and "10.0.0.9" in detail
    done = post(client, admin, "/admin/hl7/reprocess", {"ids": str(receipt.message_id)})
    assert done.status_code == 303 and done.headers["location"] == "/admin/hl7/messages?done=1"
    nothing = post(client, admin, "/admin/hl7/reprocess", {})
    assert nothing.status_code == 422 and "tick the messages" in nothing.text
    act_as(client, admin)
    feeds = client.get("/admin/hl7/fragment").text
    assert 'data-feed="default"' in feeds


def test_escalation_policy_form(client: TestClient) -> None:
    admin = web_user(client, "iadmin")
    bad = post(client, admin, "/admin/escalation", {"name": "broken", "steps": "target: soon"})
    assert bad.status_code == 422 and "steps line 1" in bad.text and "target: soon</textarea>" in bad.text
    unknown = post(client, admin, "/admin/escalation", {"name": "unknown", "steps": "nowhere:1 5"})
    assert unknown.status_code == 422 and "step 1: unknown address" in unknown.text
    good = post(client, admin, "/admin/escalation", {"name": "STAT to cardiology", "priority": "stat",
                                                      "steps": "target: 2\nrole:CARD-CALL2-DAY 3", "repeat": "1"})
    assert good.status_code == 303
    act_as(client, admin)
    page = client.get("/admin/escalation").text
    assert "STAT to cardiology" in page and "role:CARD-CALL2-DAY, wait 3.0 min" in page


def test_routing_defaults_form(client: TestClient) -> None:
    admin = web_user(client, "iadmin")
    page = client.get("/admin/routing").text
    department = re.search(r'<option value="(\d+)">Cardiology</option>', page)
    assert department is not None
    added = post(client, admin, "/admin/routing", {"department_id": department[1], "action": "hold",
                                                    "priorities": "routine", "sender_types": "nurse",
                                                    "window_start": "22:00", "window_end": "07:00",
                                                    "hold_until": "07:00"})
    assert added.status_code == 303, added.text
    incomplete = post(client, admin, "/admin/routing", {"department_id": department[1], "action": "forward"})
    assert incomplete.status_code == 422 and "needs forward_to" in incomplete.text
    act_as(client, admin)
    assert "hold until 07:00" in client.get("/admin/routing").text


def test_only_system_admins_change_roles(client: TestClient) -> None:
    target = web_user(client, "hlee")
    admin = web_user(client, "iadmin")
    page = client.get(f"/admin/users/{target.id}").text
    assert "<fieldset disabled>" in page and "Only a system administrator changes roles" in page
    assert post(client, admin, f"/admin/users/{target.id}", {"roles": "system_admin", "active": "true"}) \
        .status_code == 403
    root = web_user(client, "admin")
    saved = post(client, root, f"/admin/users/{target.id}", {"roles": ["nurse", "operator"], "active": "true"})
    assert saved.status_code == 303
    act_as(client, root)
    page = client.get(saved.headers["location"]).text
    assert "Saved." in page and 'value="operator" checked' in page
    short = post(client, root, f"/admin/users/{target.id}/reset-password", {"password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    reset = post(client, root, f"/admin/users/{target.id}/reset-password", {"password": "a-long-new-password"})
    assert reset.status_code == 303
    act_as(client, target)
    assert client.get("/inbox", follow_redirects=False).headers["location"].startswith("/sign-in")
