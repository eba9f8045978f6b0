"""HTTP adapter pieces: the per-request unit of work, and who may call a route.

Every route states a policy by depending on ``public()``, ``signed_in()`` or ``allow(*roles)``.
The returned dependency carries the policy as an attribute, so a test walks all registered routes
and fails on any route that forgot to state one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, WebSocket, WebSocketException, status
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from carerelay.auth import service
from carerelay.config import Settings
from carerelay.core.actor import Actor
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.core.errors import CarerelayError, Forbidden, Unauthenticated
from carerelay.directory.models import Role

SESSION_COOKIE = "carerelay_session"


def get_db(request: HTTPConnection) -> Database:
    db: Database = request.app.state.db
    return db


def get_clock(request: HTTPConnection) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def get_settings_dep(request: HTTPConnection) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request: it commits before the response is sent, or rolls back.

    Entered and left in the event loop (``Database.unit_of_work_async``): the commit never waits for
    a worker thread, and on SQLite requests take turns and commit in groups.
    """
    async with get_db(request).unit_of_work_async() as session:
        yield session


async def _clock_dependency(request: HTTPConnection) -> Clock:
    """Async so FastAPI calls it in the event loop: a sync dependency costs every request a thread hop,
    and on SQLite that hop falls inside the request's writer turn."""
    return get_clock(request)


async def _settings_dependency(request: HTTPConnection) -> Settings:
    return get_settings_dep(request)


DbSession = Annotated[Session, Depends(get_session, scope="function")]
ClockDep = Annotated[Clock, Depends(_clock_dependency)]
SettingsDep = Annotated[Settings, Depends(_settings_dependency)]


@dataclass(frozen=True)
class Policy:
    """``roles`` empty with ``signed_in`` means any signed-in person; neither means public.

    ``scim_token`` marks SCIM provisioning routes: the caller is an identity provider presenting its
    own bearer token (``scim_tokens``), never a person's session, and a session token is refused there.
    """

    signed_in: bool
    roles: frozenset[str]
    scim_token: bool = False
    token_kind: str | None = None

    def describe(self) -> str:
        if self.scim_token:
            return "SCIM provisioning token"
        if self.token_kind:
            return f"{self.token_kind} token"
        if not self.signed_in:
            return "public"
        return "signed in" if not self.roles else "roles: " + ", ".join(sorted(self.roles))


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_token(request: HTTPConnection) -> str:
    """The token of an ``Authorization: Bearer`` header, or "" (for tokens that are never a cookie)."""
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def presented_token(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE)


def _resolve_actor(request: Request, session: Session) -> Actor:
    token = presented_token(request)
    if not token:
        raise Unauthenticated("sign in first: send a bearer token or the session cookie")
    return service.signed_in_actor(session=session, clock=get_clock(request), settings=get_settings_dep(request),
                                   token=token, ip=client_ip(request))


def _scim_actor(request: Request, session: Session) -> Actor:
    from carerelay.integrations.scim import service as scim

    token = bearer_token(request)
    if not token:
        raise Unauthenticated("send the identity provider's SCIM bearer token in the Authorization header")
    row = scim.authenticate_token(session=session, clock=get_clock(request), token=token)
    return Actor(person_id=None, username=f"scim:{row.provider}", roles=frozenset({"scim"}), ip=client_ip(request))


def _policy_dependency(policy: Policy) -> Callable[..., Any]:
    if policy.scim_token:
        def scim_dep(request: Request, session: DbSession) -> Actor:
            return _scim_actor(request, session)

        dep: Callable[..., Any] = scim_dep
    elif not policy.signed_in:
        async def public_dep(request: Request) -> Actor:
            return Actor(person_id=None, username="anonymous", ip=client_ip(request))

        dep = public_dep
    else:
        def guarded_dep(request: Request, session: DbSession) -> Actor:
            actor = _resolve_actor(request, session)
            if policy.roles and not actor.roles.intersection(policy.roles):
                raise Forbidden("your role may not do this (" + policy.describe() + ")")
            return actor

        dep = guarded_dep
    dep.__carerelay_policy__ = policy  # type: ignore[attr-defined]
    return dep


@dataclass(frozen=True)
class Caller:
    """A signed-in route's caller, checked in the route's own worker thread (``actor``).

    For the hottest routes: the usual policy dependency checks the session in a thread of its own
    before the route's thread starts, and on SQLite both hops fall inside the request's writer turn.
    """

    request: Request

    def actor(self, session: Session) -> Actor:
        return _resolve_actor(self.request, session)


def signed_in_caller() -> Any:
    """Like ``signed_in()``, but the route checks the session itself, in its thread: ``caller.actor(session)``."""
    async def caller_dep(request: Request) -> Caller:
        if not presented_token(request):
            raise Unauthenticated("sign in first: send a bearer token or the session cookie")
        return Caller(request)

    caller_dep.__carerelay_policy__ = Policy(signed_in=True, roles=frozenset())  # type: ignore[attr-defined]
    return Depends(caller_dep)


def _ws_dependency() -> Callable[..., Any]:
    """WebSockets cannot hold a request's unit of work open: authenticate in a short one of their own."""

    async def ws_guard(websocket: WebSocket) -> Actor:
        token = presented_token(websocket)
        if not token:
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "sign in first")
        client = websocket.client.host if websocket.client else None

        def check(session: Session) -> Actor:
            auth_session, person = service.authenticate(
                session=session, clock=get_clock(websocket), settings=get_settings_dep(websocket), token=token)
            return Actor(person_id=person.id, username=person.username, roles=person.role_names,
                         session_id=auth_session.id, ip=client)

        try:
            actor: Actor = await get_db(websocket).run(check)
        except CarerelayError as exc:
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, exc.message) from None
        return actor

    ws_guard.__carerelay_policy__ = Policy(signed_in=True, roles=frozenset())  # type: ignore[attr-defined]
    return ws_guard


def ws_signed_in() -> Any:
    return Depends(_ws_dependency())


def public() -> Any:
    return Depends(_policy_dependency(Policy(signed_in=False, roles=frozenset())))


def signed_in() -> Any:
    return Depends(_policy_dependency(Policy(signed_in=True, roles=frozenset())))


def allow(*roles: Role) -> Any:
    """Any of these roles; system administrators are not implied, name them where they belong."""
    return Depends(_policy_dependency(Policy(signed_in=True, roles=frozenset(r.value for r in roles))))


def scim_provisioning() -> Any:
    """SCIM routes: an identity provider's provisioning token, not a user session."""
    return Depends(_policy_dependency(Policy(signed_in=False, roles=frozenset(), scim_token=True)))


def system_token(kind: str, authenticate: Callable[[Session, str], Any]) -> Any:
    """Routes another system calls with a bearer token of its own (an assignment system pushing
    changes), never a person's session. ``authenticate`` turns the token into what the route needs
    (the feed) or raises ``Unauthenticated``."""

    def token_dep(request: Request, session: DbSession) -> Any:
        token = bearer_token(request)
        if not token:
            raise Unauthenticated(f"send the {kind} bearer token in the Authorization header")
        return authenticate(session, token)

    token_dep.__carerelay_policy__ = Policy(  # type: ignore[attr-defined]
        signed_in=True, roles=frozenset({f"{kind} token"}), token_kind=kind)
    return Depends(token_dep)


def policy_of(call: Any) -> Policy | None:
    policy: Policy | None = getattr(call, "__carerelay_policy__", None)
    return policy
