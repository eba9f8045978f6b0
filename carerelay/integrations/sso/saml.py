"""SAML 2.0 Web SSO with pysaml2: signed AuthnRequests (RSA-SHA256), signed assertions required.

The request id is kept in a one-time login state whose key travels as RelayState, so a response is
accepted once, for a request made here; the assertion id is also remembered until it expires. pysaml2
checks the signature (xmlsec1), the audience, the recipient and the validity window; each of its
refusals is translated into a sentence an IT admin can act on.

pysaml2 reads the system clock for NotBefore/NotOnOrAfter; everything of ours uses the injected clock.
"""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import saml2
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.response import (
    IncorrectlySigned,
    StatusError,
    UnsolicitedResponse,
    VerificationError,
)
from saml2.sigver import SignatureError
from saml2.validate import ResponseLifetimeExceed, ToEarly
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carerelay.auth.service import SignedIn
from carerelay.config import Settings
from carerelay.core.clock import Clock
from carerelay.integrations.sso.config import Provider
from carerelay.integrations.sso.models import SsoSeenAssertion
from carerelay.integrations.sso.service import (
    SsoRefused,
    _refuse,
    consume_login_state,
    new_login_state,
    remember_request,
    sign_in_matched,
)

XMLSEC = shutil.which("xmlsec1") or "/usr/bin/xmlsec1"


def sp_urls(public_url: str, provider: Provider) -> tuple[str, str]:
    base = f"{public_url.rstrip('/')}/sso/saml/{provider.name}"
    return f"{base}/metadata", f"{base}/acs"


def sp_config(public_url: str, provider: Provider) -> SPConfig:
    entity_id, acs = sp_urls(public_url, provider)
    config = SPConfig()
    config.load({
        "entityid": entity_id,
        "xmlsec_binary": XMLSEC,
        "key_file": provider.sp_key_file,
        "cert_file": provider.sp_cert_file,
        "metadata": {"local": [provider.idp_metadata_file]},
        "service": {"sp": {
            "name": f"carerelay ({provider.name})",
            "endpoints": {"assertion_consumer_service": [(acs, saml2.BINDING_HTTP_POST)]},
            "allow_unsolicited": False,
            "authn_requests_signed": True,
            "want_assertions_signed": True,
            "want_response_signed": False,
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
        }},
        "accepted_time_diff": 60,
    })
    return config


def metadata(public_url: str, provider: Provider) -> str:
    """What the IT admin gives the identity provider: entity id, ACS URL, signing certificate."""
    xml = create_metadata_string(None, config=sp_config(public_url, provider), valid=24 * 365)
    return xml.decode("utf-8") if isinstance(xml, bytes) else str(xml)


def _idp_entity(client: Saml2Client) -> str:
    idps = list(client.metadata.identity_providers())
    if len(idps) != 1:
        raise SsoRefused(f"the IdP metadata file must describe exactly one identity provider (found {len(idps)})")
    return str(idps[0])


@dataclass(frozen=True)
class Redirect:
    url: str


def begin_saml_login(*, session: Session, clock: Clock, settings: Settings, provider: Provider) -> Redirect:
    client = Saml2Client(config=sp_config(settings.public_url, provider))
    idp = _idp_entity(client)
    login = new_login_state(session=session, clock=clock, provider=provider.name, minutes=settings.sso_state_minutes)
    request_id, info = client.prepare_for_authenticate(
        entityid=idp, relay_state=login.state, binding=saml2.BINDING_HTTP_REDIRECT, sign=True,
        sigalg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
    # The request id is what the response must answer (InResponseTo); keep it with the state.
    remember_request(session=session, state=login.state, request_id=str(request_id))
    location = dict(info["headers"])["Location"]
    return Redirect(str(location))


def _explain(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, (SignatureError, IncorrectlySigned)) or "signature" in text.lower():
        return "the SAML response's signature does not verify with the identity provider's certificate"
    if isinstance(exc, ResponseLifetimeExceed):
        return "the SAML assertion has expired (NotOnOrAfter is past)"
    if isinstance(exc, ToEarly):
        return "the SAML assertion is not valid yet (NotBefore is in the future; check the clocks)"
    if "AudienceRestrictions" in text:
        return "the SAML assertion is addressed to another service provider (wrong audience)"
    if isinstance(exc, UnsolicitedResponse):
        return "the SAML response does not answer a sign-in started here"
    if isinstance(exc, StatusError):
        return f"the identity provider refused the sign-in: {text}"
    if isinstance(exc, VerificationError):
        return f"the SAML assertion failed verification: {text}"
    return f"the SAML response is not acceptable: {text}"


def finish_saml_login(
    *, session: Session, clock: Clock, settings: Settings, provider: Provider, saml_response: str,
    relay_state: str | None, ip: str | None, user_agent: str | None,
) -> SignedIn:
    login = consume_login_state(session=session, clock=clock, provider=provider.name, state=relay_state, ip=ip)
    client = Saml2Client(config=sp_config(settings.public_url, provider))
    try:
        base64.b64decode(saml_response, validate=True)
        response = client.parse_authn_request_response(saml_response, saml2.BINDING_HTTP_POST,
                                                        outstanding={login.nonce or "": "/"})
    except Exception as exc:  # pysaml2 raises many types, some bare Exception: all are refusals
        raise _refuse(session, clock, provider.name, _explain(exc), ip) from exc
    if response is None or response.assertion is None:
        raise _refuse(session, clock, provider.name, "the SAML response carries no assertion", ip)
    assertion_id = str(response.assertion.id)
    try:
        with session.begin_nested():
            session.add(SsoSeenAssertion(provider=provider.name, assertion_id=assertion_id[:255],
                                         expires_at=clock.now() + timedelta(hours=24)))
            session.flush()
    except IntegrityError:
        raise _refuse(session, clock, provider.name, "this SAML assertion was already used (replayed)", ip) from None
    name_id = response.name_id.text if response.name_id is not None else None
    claims: dict[str, Any] = {k: v for k, v in (response.ava or {}).items()}
    if name_id:
        claims["name_id"] = name_id
    return sign_in_matched(session=session, clock=clock, settings=settings, provider=provider,
                           subject=name_id or assertion_id, claims=claims, ip=ip, user_agent=user_agent)
