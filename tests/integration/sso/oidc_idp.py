"""A small OpenID Connect provider for tests, listening on a loopback port.

Authorization code flow with PKCE (checked with Authlib's S256 helper), ID tokens and back-channel
logout tokens signed with joserfc. Knobs let a test make it misbehave the ways real IdPs and attackers
do: sign with a key it does not publish, address another audience, issue an expired token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

import uvicorn
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from carerelay.core.clock import Clock
from tests.servers import free_port

CLIENT_ID = "carerelay-test"
CLIENT_SECRET = "test-client-secret"


@dataclass
class OidcIdp:
    issuer: str
    clock: Clock
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    user: dict[str, Any] = field(default_factory=dict)
    audience: str = CLIENT_ID
    lifetime_seconds: int = 300
    sign_with_unpublished_key: bool = False
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _sign(self, claims: dict[str, Any]) -> str:
        key = self.key
        if self.sign_with_unpublished_key:
            key = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, different key: a forgery
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)

    def id_token(self, nonce: str | None) -> str:
        now = int(self.clock.now().timestamp())
        claims = {"iss": self.issuer, "aud": self.audience, "iat": now, "exp": now + self.lifetime_seconds,
                  **self.user}
        if nonce:
            claims["nonce"] = nonce
        return self._sign(claims)

    def logout_token(self, sub: str) -> str:
        now = int(self.clock.now().timestamp())
        return self._sign({"iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
                           "jti": secrets.token_hex(8), "sub": sub,
                           "events": {"http://schemas.openid.net/event/backchannel-logout": {}}})

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def configuration() -> dict[str, Any]:
            return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"], "backchannel_logout_supported": True}

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return dict(KeySet([self.key]).as_dict(private=False))

        @app.get("/authorize")
        def authorize(client_id: str, redirect_uri: str, response_type: str, state: str, nonce: str,
                      code_challenge: str, code_challenge_method: str, scope: str = "") -> RedirectResponse:
            if client_id != CLIENT_ID or response_type != "code" or code_challenge_method != "S256":
                raise HTTPException(400, "bad authorization request")
            if "openid" not in scope.split():
                raise HTTPException(400, "scope must include openid")
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"challenge": code_challenge, "nonce": nonce, "redirect_uri": redirect_uri}
            return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", status_code=302)

        @app.post("/token")
        def token(grant_type: Annotated[str, Form()], code: Annotated[str, Form()],
                  redirect_uri: Annotated[str, Form()], code_verifier: Annotated[str, Form()],
                  client_id: Annotated[str, Form()], client_secret: Annotated[str, Form()]) -> JSONResponse:
            grant = self.codes.pop(code, None)  # a code is good once
            if grant is None or grant_type != "authorization_code":
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET) or redirect_uri != grant["redirect_uri"]:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if create_s256_code_challenge(code_verifier) != grant["challenge"]:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE mismatch"},
                                    status_code=400)
            return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                 "expires_in": 300, "id_token": self.id_token(grant["nonce"])})

        return app


@contextmanager
def running_oidc_idp(clock: Clock) -> Iterator[OidcIdp]:
    port = free_port()
    idp = OidcIdp(issuer=f"http://127.0.0.1:{port}", clock=clock)
    server = uvicorn.Server(uvicorn.Config(idp.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # waiting for a real listener to come up
        if time.monotonic() > deadline or not thread.is_alive():
            raise TimeoutError("the test OIDC provider did not start")
        time.sleep(0.02)
    try:
        yield idp
    finally:
        server.should_exit = True
        thread.join(timeout=10)
