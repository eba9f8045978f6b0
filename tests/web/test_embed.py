"""Embedded mode: a signed, expiring, single-use launch token opens the EHR user's session on the
patient's conversations; every bad token is refused with a page that says why, and audited."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carerelay.app import create_app
from carerelay.audit.models import AuditEntry
from carerelay.auth.deps import SESSION_COOKIE
from carerelay.config import Settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.web.common import EMBED_COOKIE
from carerelay.web.launch import build_token, sign
from tests.web.helpers import admit

KEY = "k" * 40


@pytest.fixture
def embed_client(settings: Settings, db: Database, clock: FakeClock) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"embed_launch_key": KEY,
                                             "epic_haiku_url": "epichaiku://open?patient={epic_patient_id}"})
    with TestClient(create_app(configured, db=db, clock=clock)) as client:
        yield client


def _token(clock: FakeClock, *, user: str = "GHOUSE", mrn: str = "MRN-EMBED", seconds: int = 120,
           key: str = KEY) -> str:
    return build_token(key=key, ehr_username=user, mrn=mrn, expires_at=clock.now() + timedelta(seconds=seconds))


def test_good_token_lands_in_the_patients_conversations(embed_client: TestClient, db: Database,
                                                        clock: FakeClock) -> None:
    patient_id = admit(db, clock, "MRN-EMBED")
    token = _token(clock)
    landing = embed_client.get(f"/embed?token={token}")
    assert landing.status_code == 200
    assert f'content="0;url=/embed/patients/{patient_id}"' in landing.text
    assert embed_client.cookies.get(SESSION_COOKIE) and embed_client.cookies.get(EMBED_COOKIE) == str(patient_id)
    page = embed_client.get(f"/embed/patients/{patient_id}").text
    assert "DOE, JANE" in page and "Dr. Gregory House" in page and 'class="embedded"' in page
    assert 'href="epichaiku://open?patient=MRN-EMBED"' in page and "Open in Haiku" in page
    assert f'href="/embed/patients/{patient_id}">This patient' in page and ">Directory<" not in page
    replay = embed_client.get(f"/embed?token={token}")
    assert replay.status_code == 401 and "already used" in replay.text
    with db.unit_of_work() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "auth.sign_in")
                                .order_by(AuditEntry.seq.desc()).limit(1)).scalar_one()
    assert entry.detail["method"] == "ehr_launch" and entry.detail["patient_id"] == patient_id


def test_bad_tokens_get_a_clear_page(embed_client: TestClient, db: Database, clock: FakeClock) -> None:
    admit(db, clock, "MRN-EMBED")
    cases = [
        (_token(clock, key="x" * 40), "signature does not match"),
        (_token(clock, seconds=-5), "expired at"),
        (_token(clock, seconds=3600), "valid for longer than this server accepts"),
        (_token(clock, user="NOBODY"), "no active carerelay user has the EHR user name 'NOBODY'"),
        (_token(clock, mrn="NO-SUCH-MRN"), "no patient with MRN 'NO-SUCH-MRN'"),
        ("not-a-token", "malformed"),
        (sign(KEY, {"user": "GHOUSE", "patient": "MRN-EMBED",
                    "exp": int((clock.now() + timedelta(seconds=60)).timestamp())}), "needs a random 'nonce'"),
    ]
    for token, reason in cases:
        page = embed_client.get(f"/embed?token={token}")
        assert page.status_code == 401 and reason in html.unescape(page.text), page.text
        assert 'id="refusal"' in page.text and not embed_client.cookies.get(SESSION_COOKIE)
        with db.unit_of_work() as session:
            entry = session.execute(select(AuditEntry).where(AuditEntry.action == "auth.embed_launch")
                                    .order_by(AuditEntry.seq.desc()).limit(1)).scalar_one()
        assert entry.outcome == "failure" and reason.split("'")[0] in entry.detail["reason"]


def test_embedded_mode_is_off_without_a_key(client: TestClient, clock: FakeClock) -> None:
    page = client.get(f"/embed?token={_token(clock)}")
    assert page.status_code == 401 and "CARERELAY_EMBED_LAUNCH_KEY is empty" in page.text
