"""SAML 2.0 Web SSO against a real pysaml2 identity provider (in the test process, with its own keys).

The test plays the browser: it follows our redirect to the IdP's single sign-on URL, has the IdP parse
the AuthnRequest and answer with a signed assertion, and posts that to our ACS as the auto-submitting
form of a real IdP would. Signatures are made and checked by xmlsec1.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import saml2
import saml2.time_util
from fastapi.testclient import TestClient
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from sqlalchemy import select

from carerelay.app import create_app
from carerelay.audit.models import AuditEntry
from carerelay.auth.deps import SESSION_COOKIE
from carerelay.config import load_settings
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.directory.models import Person
from tests.conftest import Backend
from tests.integration.sso.saml_idp import IDP_ENTITY, IDP_SSO, idp_config, key_and_cert

pytestmark = pytest.mark.skipif(shutil.which("xmlsec1") is None,
                                reason="xmlsec1 is not installed (apt-get install xmlsec1; .ci/run does this in CI)")

PUBLIC_URL = "http://testserver"


@dataclass
class Saml:
    client: TestClient
    tmp: Path
    sp_metadata: Path

    def idp(self, lifetime_minutes: int = 15) -> Server:
        return Server(config=idp_config(self.tmp, self.sp_metadata, lifetime_minutes))


@pytest.fixture
def saml_env(backend: Backend, tmp_path: Path, db: Database, clock: FakeClock) -> Iterator[Saml]:
    key_and_cert(tmp_path, "idp")
    sp_key, sp_cert = key_and_cert(tmp_path, "sp")
    idp_metadata = tmp_path / "idp-metadata.xml"
    idp_metadata.write_text(create_metadata_string(None, config=idp_config(tmp_path, None)).decode())
    providers = {"providers": [{"name": "test", "kind": "saml", "label": "Test SAML IdP",
                                "idp_metadata_file": str(idp_metadata), "sp_key_file": str(sp_key),
                                "sp_cert_file": str(sp_cert), "match": {"attribute": "mail", "field": "email"}}]}
    (tmp_path / "sso.json").write_text(json.dumps(providers))
    settings = load_settings(database_url=backend.url, log_format="text", public_url=PUBLIC_URL,
                             sso_providers_file=str(tmp_path / "sso.json"), run_timers=False)
    with TestClient(create_app(settings, db=db, clock=clock)) as client:
        meta = client.get("/sso/saml/test/metadata")
        assert meta.status_code == 200 and meta.headers["content-type"].startswith("application/samlmetadata+xml")
        sp_metadata = tmp_path / "sp-metadata.xml"
        sp_metadata.write_text(meta.text)
        yield Saml(client, tmp_path, sp_metadata)


def _authn_request(env: Saml) -> tuple[str, str]:
    start = env.client.get("/sso/saml/test/login", follow_redirects=False)
    assert start.status_code == 303, start.text
    url = urlsplit(start.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == IDP_SSO
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["SigAlg"] == SIG_RSA_SHA256 and query["Signature"]
    return query["SAMLRequest"], query["RelayState"]


def _respond(env: Saml, *, email: str, lifetime_minutes: int = 15, audience: str | None = None,
             tamper: bool = False, issued_minutes_ago: int = 0) -> tuple[dict[str, str], Server]:
    request, relay = _authn_request(env)
    idp = env.idp(lifetime_minutes)
    parsed = idp.parse_authn_request(request, saml2.BINDING_HTTP_REDIRECT)
    sp_entity = f"{PUBLIC_URL}/sso/saml/test/metadata"
    assert parsed.message.issuer.text == sp_entity
    # The IdP's own clock (pysaml2 reads the system time): set back to issue an assertion whose whole
    # validity window is in the past, as a captured-and-replayed-later or delayed assertion has.
    issued = saml2.time_util.instant(time_stamp=int(time.time()) - issued_minutes_ago * 60)
    with mock.patch("saml2.assertion.instant", lambda *a, **k: issued):
        response = _create(idp, parsed, email, audience)
    xml = str(response)
    if tamper:
        assert email in xml
        xml = xml.replace(email, "attacker@evil.example")
    return {"SAMLResponse": base64.b64encode(xml.encode()).decode(), "RelayState": relay}, idp


def _create(idp: Server, parsed: Any, email: str, audience: str | None) -> Any:
    sp_entity = f"{PUBLIC_URL}/sso/saml/test/metadata"
    return idp.create_authn_response(
        identity={"mail": [email], "givenName": ["Carol"]}, in_response_to=parsed.message.id,
        destination=f"{PUBLIC_URL}/sso/saml/test/acs", sp_entity_id=audience or sp_entity,
        name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text="saml-user-1"),
        authn={"class_ref": saml2.saml.AUTHN_PASSWORD, "authn_auth": IDP_ENTITY},
        sign_assertion=True, sign_response=False, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)


def _email(db: Database, username: str) -> str:
    with db.unit_of_work() as session:
        return str(session.execute(select(Person.email).where(Person.username == username)).scalar_one())


def test_saml_sign_in_and_replay_refused(saml_env: Saml, db: Database) -> None:
    form, _idp = _respond(saml_env, email=_email(db, "cnurse"))
    done = saml_env.client.post("/sso/saml/test/acs", data=form)
    assert done.status_code == 200, done.text
    assert saml_env.client.cookies.get(SESSION_COOKIE)
    assert saml_env.client.get("/api/auth/me").json()["username"] == "cnurse"
    saml_env.client.cookies.clear()
    replay = saml_env.client.post("/sso/saml/test/acs", data=form)
    assert replay.status_code == 401 and "already used (replayed)" in replay.text
    assert not saml_env.client.cookies.get(SESSION_COOKIE)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tamper": True}, "signature does not verify"),
        ({"issued_minutes_ago": 30, "lifetime_minutes": -10}, "has expired"),
        ({"audience": "https://another-sp.example/metadata"}, "wrong audience"),
    ],
)
def test_bad_assertions_are_refused_with_a_clear_message(
    saml_env: Saml, db: Database, options: dict[str, Any], message: str
) -> None:
    form, _idp = _respond(saml_env, email=_email(db, "cnurse"), **options)
    refused = saml_env.client.post("/sso/saml/test/acs", data=form)
    assert refused.status_code == 401, refused.text
    assert message in refused.text
    assert not saml_env.client.cookies.get(SESSION_COOKIE)
    with db.unit_of_work() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "auth.sso_refused")
                                .order_by(AuditEntry.seq.desc())).scalars().first()
    assert entry is not None and message in entry.detail["reason"]


def test_a_response_to_a_request_not_made_here_is_refused(saml_env: Saml, db: Database) -> None:
    form, _idp = _respond(saml_env, email=_email(db, "cnurse"))
    refused = saml_env.client.post("/sso/saml/test/acs", data={**form, "RelayState": "made-up"})
    assert refused.status_code == 401 and "not started here" in refused.text


def test_metadata_names_the_acs_and_signs_requests(saml_env: Saml) -> None:
    text = saml_env.sp_metadata.read_text()
    assert f"{PUBLIC_URL}/sso/saml/test/acs" in text and 'AuthnRequestsSigned="true"' in text
    assert 'WantAssertionsSigned="true"' in text
