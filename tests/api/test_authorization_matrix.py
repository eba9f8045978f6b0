"""Every route × every role: the declared policy is what the server enforces.

Each route states who may call it through one dependency of ``carerelay/auth/deps.py``. This test
reads that declaration from the route itself and, for an anonymous caller and a demo person of each
role, sends a real request and checks that the gate answers as declared: refused when the role is
not named (401 for no session; 403 "your role may not do this"; on web pages the redirect to
sign-in or the 403 page), and let through when it is — whatever the handler then makes of the
request (a 404 for an id that does not exist, a 422 for a missing body). The gate must answer
before the handler, so a refused caller never learns whether an id exists or what a body must hold.

A route added without a policy fails here (and in tests/unit/core/test_route_policies.py), so it
cannot ship unguarded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.websockets import WebSocketDisconnect

from carerelay.app import create_app
from carerelay.auth.deps import Policy
from carerelay.config import load_settings
from carerelay.directory.models import Role
from carerelay.web.common import WebRoute
from tests.api.shared_app import ROLE_USERS, SharedApp, shared_app
from tests.conftest import TEST_KEYS, Backend
from tests.route_walk import DeclaredRoute, declared_routes

# The gate is the same code whatever the store; storage behaviour is covered on both databases by
# the IDOR and schemathesis tests, so the matrix (every route × every role) runs once, on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

GATE_REFUSAL = "your role may not do this"
IDENTITIES: tuple[str | None, ...] = (None, *ROLE_USERS)
"""``None`` is a caller with no session at all."""

assert set(ROLE_USERS) == {r.value for r in Role}, "a role without a demo person escapes the matrix"


def _walk() -> list[DeclaredRoute]:
    return declared_routes(create_app(load_settings(database_url="sqlite:///:memory:")))


ROUTES = _walk()
HTTP_ROUTES = [r for r in ROUTES if r.methods != ("WS",)]
WS_ROUTES = [r for r in ROUTES if r.methods == ("WS",)]


def test_every_route_declares_exactly_one_policy() -> None:
    wrong = [f"{r.label}: {len(r.policies)} policies" for r in ROUTES if len(r.policies) != 1]
    assert not wrong, "every route must depend on exactly one of public(), signed_in(), allow(...), " \
                      "scim_provisioning(), system_token(...), ws_signed_in(): " + "; ".join(wrong)


def may_pass(policy: Policy, role: str | None) -> bool:
    """What the declaration promises for a person holding ``role`` (None: nobody signed in)."""
    if policy.scim_token or policy.token_kind:
        return False  # another system's own token; a person's session never opens these
    if not policy.signed_in:
        return True
    if role is None:
        return False
    return not policy.roles or role in policy.roles


@pytest.fixture(scope="module")
def shared(engine: Engine, backend: Backend) -> Iterator[SharedApp]:
    settings = load_settings(database_url=backend.url, log_format="text", attachment_keys=TEST_KEYS,
                             run_timers=False)
    with shared_app(engine, settings) as app:
        yield app


# Path parameters: real demo rows where a name is enough to find one, any id elsewhere. The gate
# answers before the handler looks anything up, so an id that does not exist tests it just as well.
PATH_VALUES = {"unit": "4W", "unit_code": "4W", "name": "demo", "urn": "urn:ietf:params:scim:schemas:core:2.0:User",
               "rest": "Unknown", "external_id": "X1"}


def _url(path: str, shared: SharedApp) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name == "person_id":
            return str(shared.person_ids["ghouse"])
        return PATH_VALUES.get(name, "1")

    return re.sub(r"\{([^}]+)\}", fill, path)


def _refused(response: httpx.Response, *, web: bool, role: str | None) -> bool:
    """The gate said no: not signed in, or not a role this route names."""
    if web and response.status_code == 303:
        return response.headers.get("location", "").startswith("/sign-in?next=")
    if response.status_code == 401:
        return True
    return response.status_code == 403 and GATE_REFUSAL in response.text and role is not None


def _check(route: DeclaredRoute, method: str, role: str | None, shared: SharedApp, app: FastAPI) -> str | None:
    """A problem found, or None."""
    policy = route.policies[0]
    web = isinstance(route.route, WebRoute)
    url = _url(route.path, shared)
    with shared.rolled_back():
        response = shared.client.request(method, url, headers=shared.headers(role))
    who = role or "anonymous"
    status = response.status_code
    if status >= 500:
        return f"{method} {url} as {who}: {status} {response.text[:200]}"
    if not policy.signed_in and not policy.scim_token:
        return None  # no gate: whatever a public route answers (a redirect to sign-in, too) is its own
    expected_pass = may_pass(policy, role)
    refused = _refused(response, web=web, role=role)
    if expected_pass and refused:
        return f"{method} {url} as {who}: refused ({status} {response.text[:120]}) but declared {policy.describe()}"
    if not expected_pass:
        if not refused:
            return f"{method} {url} as {who}: {status} {response.text[:120]} — declared {policy.describe()}, " \
                   f"the gate must refuse before the handler answers"
        wanted = 303 if web and role is None else (401 if role is None or policy.scim_token or policy.token_kind
                                                   else 403)
        if status != wanted:
            return f"{method} {url} as {who}: refused with {status}, expected {wanted}"
    return None


@SQLITE_ONLY
@pytest.mark.parametrize("route", HTTP_ROUTES, ids=[r.label for r in HTTP_ROUTES])
def test_route_answers_each_role_as_declared(route: DeclaredRoute, shared: SharedApp) -> None:
    problems = [problem for method in route.methods for role in IDENTITIES
                if (problem := _check(route, method, role, shared, shared.app)) is not None]
    assert not problems, "\n".join(problems)


@SQLITE_ONLY
@pytest.mark.parametrize("route", WS_ROUTES, ids=[r.label for r in WS_ROUTES])
def test_websocket_answers_each_role_as_declared(route: DeclaredRoute, shared: SharedApp) -> None:
    policy = route.policies[0]
    for role in IDENTITIES:
        with shared.rolled_back():
            if may_pass(policy, role):
                with shared.client.websocket_connect(route.path, headers=shared.headers(role)) as ws:
                    assert ws.receive_json()["type"] == "hello", role
            else:
                with pytest.raises(WebSocketDisconnect) as refused, \
                        shared.client.websocket_connect(route.path, headers=shared.headers(role)):
                    pass
                assert refused.value.code == 1008, role
