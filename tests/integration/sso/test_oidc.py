"""OpenID Connect sign-in against a real local provider, driven through the redirects with an HTTP client.

The browser is played by the test: it follows our redirect to the provider's /authorize, and the
provider's redirect back to our callback, exactly as a browser would (no JavaScript is involved).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carerelay.app import create_app
from carerelay.audit.models import AuditEntry
from carerelay.auth.deps import SESSION_COOKIE
from carerelay.config import Settings, load_settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from carerelay.integrations.sso import service as sso_service
from tests.conftest import Backend
from tests.integration.sso.oidc_idp import CLIENT_ID, CLIENT_SECRET, OidcIdp, running_oidc_idp


@pytest.fixture
def idp(clock: FakeClock) -> Iterator[OidcIdp]:
    with running_oidc_idp(clock) as provider:
        provider.user = {"sub": "idp-user-1", "email": "CNurse@demo-health.example"}
        yield provider


def _settings(backend: Backend, tmp_path: Path, idp: OidcIdp, **provider: Any) -> Settings:
    config = {"providers": [{"name": "test", "kind": "oidc", "label": "Test IdP", "issuer": idp.issuer,
                             "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                             "match": {"claim": "email", "field": "email"}, **provider}]}
    path = tmp_path / "sso.json"
    path.write_text(json.dumps(config))
    return load_settings(database_url=backend.url, log_format="text", sso_providers_file=str(path),
                         public_url="http://testserver", run_timers=False)


@pytest.fixture
def sso_client(backend: Backend, tmp_path: Path, idp: OidcIdp, db: Database, clock: FakeClock
               ) -> Iterator[TestClient]:
    sso_service._discovery.clear()
    with TestClient(create_app(_settings(backend, tmp_path, idp), db=db, clock=clock)) as client:
        yield client


def _through_idp(client: TestClient) -> str:
    """Start at our login, follow to the provider and back; return our callback path with its query."""
    start = client.get("/sso/oidc/test/login", follow_redirects=False)
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(f"{urlsplit(authorize).scheme}://127.0.0.1")
    assert "code_challenge_method=S256" in authorize and "nonce=" in authorize
    back = httpx.get(authorize, follow_redirects=False)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["location"])
    assert callback.path == "/sso/oidc/test/callback"
    return f"{callback.path}?{callback.query}"


def _demo_email(db: Database, username: str) -> str:
    with db.unit_of_work() as session:
        email = session.execute(select(Person.email).where(Person.username == username)).scalar_one()
    assert email
    return str(email)


def test_sign_in_matches_by_email_and_opens_a_session(
    sso_client: TestClient, idp: OidcIdp, db: Database
) -> None:
    idp.user = {"sub": "idp-user-1", "email": _demo_email(db, "cnurse").upper()}
    done = sso_client.get(_through_idp(sso_client))
    assert done.status_code == 200, done.text
    assert 'http-equiv="refresh"' in done.text
    assert sso_client.cookies.get(SESSION_COOKIE)
    me = sso_client.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["username"] == "cnurse"
    with db.unit_of_work() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "auth.sign_in")
                                .order_by(AuditEntry.seq.desc())).scalars().first()
        assert entry is not None and entry.detail["method"] == "sso:test" and entry.detail["subject"] == "idp-user-1"


def test_a_replayed_callback_is_refused(sso_client: TestClient, idp: OidcIdp, db: Database) -> None:
    idp.user = {"sub": "idp-user-1", "email": _demo_email(db, "cnurse")}
    callback = _through_idp(sso_client)
    assert sso_client.get(callback).status_code == 200
    again = sso_client.get(callback)
    assert again.status_code == 401
    assert "already used (replayed)" in again.text


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("sign_with_unpublished_key", True, "signature does not verify"),
        ("lifetime_seconds", -600, "has expired"),
        ("audience", "someone-else", "audience"),
    ],
)
def test_bad_tokens_are_refused_with_a_clear_message(
    sso_client: TestClient, idp: OidcIdp, db: Database, knob: str, value: Any, message: str
) -> None:
    idp.user = {"sub": "idp-user-1", "email": _demo_email(db, "cnurse")}
    setattr(idp, knob, value)
    refused = sso_client.get(_through_idp(sso_client))
    assert refused.status_code == 401
    assert message in refused.text and "Sign-in refused" in refused.text
    assert not sso_client.cookies.get(SESSION_COOKIE)
    with db.unit_of_work() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "auth.sso_refused")
                                .order_by(AuditEntry.seq.desc())).scalars().first()
    assert entry is not None and message in entry.detail["reason"]


def test_nobody_matches_and_jit_is_off_by_default(sso_client: TestClient, idp: OidcIdp, db: Database) -> None:
    idp.user = {"sub": "stranger", "email": "stranger@elsewhere.example"}
    refused = sso_client.get(_through_idp(sso_client))
    assert refused.status_code == 401 and "no carerelay account has email" in refused.text
    with db.unit_of_work() as session:
        assert session.execute(select(Person).where(Person.email == "stranger@elsewhere.example")).first() is None


def test_jit_creates_the_person_when_enabled(
    backend: Backend, tmp_path: Path, idp: OidcIdp, db: Database, clock: FakeClock
) -> None:
    sso_service._discovery.clear()
    settings = _settings(backend, tmp_path, idp, jit=True, match={"claim": "upn", "field": "ms_upn"})
    idp.user = {"sub": "new-1", "upn": "new.hire@hospital.example", "email": "new.hire@hospital.example",
                "given_name": "New", "family_name": "Hire", "preferred_username": "new.hire"}
    with TestClient(create_app(settings, db=db, clock=clock)) as client:
        done = client.get(_through_idp(client))
        assert done.status_code == 200, done.text
        me = client.get("/api/auth/me").json()
    assert me["username"] == "new.hire"
    with db.unit_of_work() as session:
        person = session.execute(select(Person).where(Person.username == "new.hire")).scalar_one()
        assert person.ms_upn == "new.hire@hospital.example" and person.family_name == "Hire"


def test_sign_in_matches_by_an_external_id(
    backend: Backend, tmp_path: Path, idp: OidcIdp, db: Database, clock: FakeClock
) -> None:
    """The IdP sends the workforce system's id (here the Kronos id as an ``employee_id`` claim), no e-mail match."""
    sso_service._discovery.clear()
    settings = _settings(backend, tmp_path, idp, match={"claim": "employee_id", "field": "kronos_id"})
    with db.unit_of_work() as session:
        kronos = session.execute(select(Person.kronos_id).where(Person.username == "cnurse")).scalar_one()
    assert kronos
    with TestClient(create_app(settings, db=db, clock=clock)) as client:
        idp.user = {"sub": "idp-user-7", "employee_id": kronos, "email": "someone.else@elsewhere.example"}
        done = client.get(_through_idp(client))
        assert done.status_code == 200, done.text
        assert client.get("/api/auth/me").json()["username"] == "cnurse"
        client.cookies.clear()
        idp.user = {"sub": "idp-user-8", "employee_id": kronos.lower() + "0"}
        refused = client.get(_through_idp(client))
        assert refused.status_code == 401 and "no carerelay account has kronos_id" in refused.text
        idp.user = {"sub": "idp-user-9", "email": "cnurse@demo-health.example"}  # the claim is missing
        missing = client.get(_through_idp(client))
        assert missing.status_code == 401 and "employee_id" in missing.text


def test_backchannel_logout_ends_the_sessions(sso_client: TestClient, idp: OidcIdp, db: Database) -> None:
    idp.user = {"sub": "idp-user-9", "email": _demo_email(db, "cnurse")}
    assert sso_client.get(_through_idp(sso_client)).status_code == 200
    assert sso_client.get("/api/auth/me").status_code == 200
    forged = sso_client.post("/sso/oidc/test/backchannel-logout",
                             data={"logout_token": idp.id_token(nonce=None)})  # an ID token is not a logout token
    assert forged.status_code == 400 and "back-channel logout event" in forged.json()["error_description"]
    assert sso_client.get("/api/auth/me").status_code == 200
    logout = sso_client.post("/sso/oidc/test/backchannel-logout", data={"logout_token": idp.logout_token("idp-user-9")})
    assert logout.status_code == 200, logout.text
    assert sso_client.get("/api/auth/me").status_code == 401


def test_unknown_provider_is_a_404_page(sso_client: TestClient) -> None:
    missing = sso_client.get("/sso/oidc/nope/login", follow_redirects=False)
    assert missing.status_code == 404 and "no oidc identity provider named" in missing.text
