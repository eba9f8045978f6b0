"""SSO sign-in: one-time login state, matching the IdP's person to ours, OpenID Connect, back-channel logout.

Every refusal is an :class:`SsoRefused` whose message says what went wrong in words an IT admin can
act on ("the ID token's audience is not this application"), and every attempt — accepted or not —
is audited as ``auth.sign_in`` / ``auth.sso_refused``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx2 as httpx
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from carerelay.audit import service as audit
from carerelay.auth import service as auth
from carerelay.config import Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.errors import Unauthenticated
from carerelay.directory import service as directory
from carerelay.directory.models import Person
from carerelay.integrations.provisioning import default_roles
from carerelay.integrations.sso.config import Provider
from carerelay.integrations.sso.models import SsoIdentity, SsoLoginState

ID_TOKEN_ALGORITHMS = ["RS256", "ES256", "PS256"]
LEEWAY_SECONDS = 60
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class SsoRefused(Unauthenticated):
    """A sign-in refused; the message is shown on the error page as is."""


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def _refuse(session: Session, clock: Clock, provider: str, reason: str, ip: str | None) -> SsoRefused:
    audit.record(session=session, clock=clock, actor=Actor(person_id=None, username=f"sso:{provider}", ip=ip),
                 action="auth.sso_refused", object_type="identity_provider", object_id=provider, outcome="failure",
                 detail={"reason": reason})
    return SsoRefused(reason, keep_changes=True)


# -- one-time login state ----------------------------------------------------------------------

@dataclass(frozen=True)
class LoginState:
    state: str
    nonce: str
    code_verifier: str


def new_login_state(*, session: Session, clock: Clock, provider: str, minutes: int, state: str | None = None
                    ) -> LoginState:
    now = clock.now()
    made = LoginState(state=state or secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                      code_verifier=secrets.token_urlsafe(48))
    session.add(SsoLoginState(state_hash=_hash(made.state), provider=provider, nonce=made.nonce,
                              code_verifier=made.code_verifier, created_at=now,
                              expires_at=now + timedelta(minutes=minutes)))
    session.flush()
    return made


def remember_request(*, session: Session, state: str, request_id: str) -> None:
    """SAML: the AuthnRequest id a response must answer, kept in the nonce slot of the login state."""
    row = session.execute(select(SsoLoginState).where(SsoLoginState.state_hash == _hash(state))).scalar_one()
    row.nonce = request_id[:120]
    session.flush()


def consume_login_state(
    *, session: Session, clock: Clock, provider: str, state: str | None, ip: str | None
) -> SsoLoginState:
    row = session.execute(
        select(SsoLoginState).where(SsoLoginState.state_hash == _hash(state or ""))
    ).scalar_one_or_none() if state else None
    now = clock.now()
    if row is None or row.provider != provider:
        raise _refuse(session, clock, provider, "this sign-in was not started here (unknown state); start again", ip)
    if row.used_at is not None:
        raise _refuse(session, clock, provider, "this sign-in response was already used (replayed); start again", ip)
    if row.expires_at <= now:
        raise _refuse(session, clock, provider, "this sign-in took too long and expired; start again", ip)
    row.used_at = now
    session.flush()
    return row


# -- matching and sessions ---------------------------------------------------------------------

def _match(session: Session, field: str, value: str) -> Person | None:
    column = getattr(Person, field)
    key = value.strip()
    if field in ("email", "username", "ms_upn"):
        from sqlalchemy import func

        return session.execute(select(Person).where(func.lower(column) == key.lower()).order_by(Person.id)
                               ).scalars().first()
    return session.execute(select(Person).where(column == key)).scalar_one_or_none()


def sign_in_matched(
    *, session: Session, clock: Clock, settings: Settings, provider: Provider, subject: str,
    claims: dict[str, Any], ip: str | None, user_agent: str | None,
) -> auth.SignedIn:
    """Find our person for what the IdP asserted (or create them, if the provider allows), open a session."""
    raw = claims.get(provider.match_source)
    value = raw[0] if isinstance(raw, list) and raw else raw
    if not isinstance(value, str) or not value.strip():
        raise _refuse(session, clock, provider.name,
                      f"the identity provider did not send {provider.match_source!r}, which this provider is "
                      f"configured to match people by", ip)
    person = _match(session, provider.match_field, value)
    if person is None and provider.jit:
        person = _create_jit(session, clock, settings, provider, value, claims)
    if person is None:
        raise _refuse(session, clock, provider.name,
                      f"no carerelay account has {provider.match_field} {value!r}; ask an administrator to "
                      f"create or provision it", ip)
    identity = session.execute(select(SsoIdentity).where(SsoIdentity.provider == provider.name,
                                                         SsoIdentity.subject == subject)).scalar_one_or_none()
    if identity is None:
        identity = SsoIdentity(provider=provider.name, subject=subject, person_id=person.id,
                               last_sign_in_at=clock.now())
        session.add(identity)
    identity.person_id = person.id
    identity.last_sign_in_at = clock.now()
    session.flush()
    return auth.start_session(session=session, clock=clock, settings=settings, person=person,
                              method=f"sso:{provider.name}", ip=ip, user_agent=user_agent,
                              detail={"subject": subject})


def _create_jit(session: Session, clock: Clock, settings: Settings, provider: Provider, value: str,
                claims: dict[str, Any]) -> Person:
    def first(*names: str) -> str | None:
        for name in names:
            got = claims.get(name)
            got = got[0] if isinstance(got, list) and got else got
            if isinstance(got, str) and got.strip():
                return got.strip()
        return None

    email = first("email", "mail", "emailaddress")
    username = (first("preferred_username", "uid", "upn") or email or value).lower()[:120]
    profession = settings.provisioning_default_profession
    data: dict[str, Any] = {"username": username, "given_name": first("given_name", "givenName") or username,
                            "family_name": first("family_name", "sn", "surname") or "", "email": email,
                            "profession": profession, "roles": default_roles(profession)}
    if provider.match_field not in ("email", "username"):
        data[provider.match_field] = value
    return directory.create_person(session=session, clock=clock,
                                   actor=Actor(person_id=None, username=f"sso-jit:{provider.name}"), data=data)


# -- OpenID Connect ----------------------------------------------------------------------------

_discovery_lock = threading.Lock()
_discovery: dict[str, dict[str, Any]] = {}


def discover(provider: Provider, *, refresh: bool = False) -> dict[str, Any]:
    """The provider's metadata (cached per process; refreshed when a key is unknown)."""
    with _discovery_lock:
        if not refresh and provider.issuer in _discovery:
            return _discovery[provider.issuer]
    try:
        response = httpx.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=10)
        response.raise_for_status()
        meta: dict[str, Any] = response.json()
        jwks = httpx.get(meta["jwks_uri"], timeout=10)
        jwks.raise_for_status()
        meta["_jwks"] = jwks.json()
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise SsoRefused(f"cannot read the identity provider's configuration at {provider.issuer}: {exc}") from exc
    if meta.get("issuer", "").rstrip("/") != provider.issuer:
        raise SsoRefused(f"the identity provider says its issuer is {meta.get('issuer')!r}, "
                         f"not the configured {provider.issuer!r}")
    with _discovery_lock:
        _discovery[provider.issuer] = meta
    return meta


def _client(provider: Provider, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(client_id=provider.client_id, client_secret=provider.client_secret or None,
                         scope=" ".join(provider.scopes), redirect_uri=redirect_uri,
                         code_challenge_method="S256", token_endpoint_auth_method="client_secret_post"
                         if provider.client_secret else "none")


def begin_oidc_login(*, session: Session, clock: Clock, settings: Settings, provider: Provider,
                     redirect_uri: str) -> str:
    """The URL to send the browser to: authorization code flow with PKCE (S256), state and nonce."""
    meta = discover(provider)
    login = new_login_state(session=session, clock=clock, provider=provider.name, minutes=settings.sso_state_minutes)
    url, _state = _client(provider, redirect_uri).create_authorization_url(
        meta["authorization_endpoint"], state=login.state, nonce=login.nonce, code_verifier=login.code_verifier)
    return str(url)


def _validate_jwt(token: str, provider: Provider, clock: Clock, *, nonce: str | None, what: str) -> dict[str, Any]:
    meta = discover(provider)
    try:
        header = json.loads(_b64(token.split(".")[0]))
    except (ValueError, IndexError) as exc:
        raise SsoRefused(f"the {what} is not a JWT") from exc
    keys = KeySet.import_key_set(meta["_jwks"])
    if header.get("kid") and not any(k.kid == header["kid"] for k in keys.keys):
        keys = KeySet.import_key_set(discover(provider, refresh=True)["_jwks"])  # the IdP rotated its keys
    try:
        decoded = jwt.decode(token, keys, algorithms=ID_TOKEN_ALGORITHMS)
    except JoseError as exc:
        raise SsoRefused(f"the {what}'s signature does not verify with the identity provider's keys ({exc.error})"
                         ) from exc
    claims = dict(decoded.claims)
    now = int(clock.now().timestamp())
    if str(claims.get("iss", "")).rstrip("/") != provider.issuer:
        raise SsoRefused(f"the {what} was issued by {claims.get('iss')!r}, not {provider.issuer!r}")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if provider.client_id not in audiences:
        raise SsoRefused(f"the {what}'s audience {audience!r} is not this application ({provider.client_id})")
    if "exp" in claims or what == "ID token":
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now - LEEWAY_SECONDS:
            raise SsoRefused(f"the {what} has expired")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > now + LEEWAY_SECONDS:
        raise SsoRefused(f"the {what} has no valid issue time (iat)")
    if nonce is not None and claims.get("nonce") != nonce:
        raise SsoRefused(f"the {what}'s nonce does not match this sign-in (a replayed token?)")
    if not isinstance(claims.get("sub"), str) and what == "ID token":
        raise SsoRefused(f"the {what} has no subject")
    return claims


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def finish_oidc_login(
    *, session: Session, clock: Clock, settings: Settings, provider: Provider, redirect_uri: str,
    params: dict[str, str], ip: str | None, user_agent: str | None,
) -> auth.SignedIn:
    if params.get("error"):
        raise _refuse(session, clock, provider.name, f"the identity provider refused: {params['error']} "
                      f"{params.get('error_description', '')}".strip(), ip)
    login = consume_login_state(session=session, clock=clock, provider=provider.name, state=params.get("state"),
                                ip=ip)
    if not params.get("code"):
        raise _refuse(session, clock, provider.name, "the identity provider sent no authorization code", ip)
    meta = discover(provider)
    try:
        token = _client(provider, redirect_uri).fetch_token(
            meta["token_endpoint"], grant_type="authorization_code", code=params["code"],
            code_verifier=login.code_verifier)
    except Exception as exc:  # Authlib raises OAuthError, requests raises its own: both mean "refused"
        raise _refuse(session, clock, provider.name, f"the identity provider refused the code: {exc}", ip) from exc
    id_token = token.get("id_token")
    if not id_token:
        raise _refuse(session, clock, provider.name, "the identity provider returned no ID token", ip)
    try:
        claims = _validate_jwt(str(id_token), provider, clock, nonce=login.nonce, what="ID token")
    except SsoRefused as exc:
        raise _refuse(session, clock, provider.name, exc.message, ip) from exc
    return sign_in_matched(session=session, clock=clock, settings=settings, provider=provider,
                           subject=str(claims["sub"]), claims=claims, ip=ip, user_agent=user_agent)


def backchannel_logout(*, session: Session, clock: Clock, provider: Provider, logout_token: str,
                       ip: str | None) -> int:
    """OpenID Connect Back-Channel Logout 1.0: the IdP ends the person's sessions here (e.g. after a reset)."""
    try:
        claims = _validate_jwt(logout_token, provider, clock, nonce=None, what="logout token")
        events = claims.get("events")
        if not isinstance(events, dict) or BACKCHANNEL_EVENT not in events:
            raise SsoRefused("the logout token has no back-channel logout event")
        if "nonce" in claims:
            raise SsoRefused("a logout token must not carry a nonce")
        if not claims.get("sub"):
            raise SsoRefused("the logout token names no subject (sid-only logout is not supported)")
    except SsoRefused as exc:
        raise _refuse(session, clock, provider.name, exc.message, ip) from exc
    identity = session.execute(select(SsoIdentity).where(SsoIdentity.provider == provider.name,
                                                         SsoIdentity.subject == str(claims["sub"]))
                               ).scalar_one_or_none()
    ended = 0
    if identity is not None:
        ended = auth.revoke_all_sessions(session=session, clock=clock, person_id=identity.person_id,
                                         reason=f"back-channel logout from {provider.name}")
    audit.record(session=session, clock=clock, actor=Actor(person_id=None, username=f"sso:{provider.name}", ip=ip),
                 action="auth.backchannel_logout", object_type="person",
                 object_id=identity.person_id if identity else None,
                 detail={"subject": claims["sub"], "sessions_ended": ended, "known": identity is not None})
    return ended
