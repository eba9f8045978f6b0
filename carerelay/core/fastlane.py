"""The busiest route served without FastAPI's routing and dependency solving, for requests of the
usual shape; every other request goes on to the FastAPI route as before.

FastAPI spends about a quarter of a send's server CPU on the send route's own request handling:
trying the routes in order, solving five dependencies with their exit stacks, and validating the
body through its field machinery (docs/subsystems/performance.md, "ninth machine"). A lane matches
its path with one regular expression and calls the route's own endpoint with the same arguments.

What keeps the two paths one behaviour:
- A lane *declines* (returns ``None``) whatever it does not recognise as well-formed — a missing
  token, a body that is not valid JSON for the model, an unexpected header — before anything is
  read from or written to the database; the request then goes to the FastAPI route with its body
  replayed, and every 401/422 the client sees is the route's own.
- Once a lane has started the work, its errors are answered by the application's own exception
  handlers, as the route's would be; anything else propagates to the server-error handler, as it
  would from the route.
- ``scope["route"]`` is the FastAPI route, so request metrics name it the same.
- tests/api/messaging/test_send_fast_lane.py sends the same requests with and without lanes and
  compares the answers.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi.routing import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Serve = Callable[[Request, "re.Match[str]"], Awaitable[Response | None]]


@dataclass(frozen=True)
class Lane:
    method: str
    pattern: re.Pattern[str]
    """Matched against the whole path: only what the route's path parameters would accept and a lane
    can convert without FastAPI (e.g. ASCII digits for an int id)."""
    route: BaseRoute
    """The FastAPI route the lane stands in for: its metrics label, and where declined requests go."""
    serve: Serve


def lane(router: APIRouter, method: str, path: str, pattern: str, serve: Serve) -> Lane:
    """A lane for ``router``'s route ``method path``; fails at start-up if there is no such route."""
    for route in router.routes:
        if getattr(route, "path", None) == path and method in (getattr(route, "methods", None) or ()):
            return Lane(method=method, pattern=re.compile(pattern), route=route, serve=serve)
    raise LookupError(f"no route {method} {path} for a fast lane to stand in for")


class FastLanes:
    """ASGI middleware in front of the FastAPI router (inside the request metrics)."""

    def __init__(self, app: ASGIApp, lanes: Sequence[Lane]) -> None:
        self.app = app
        self.lanes = tuple(lanes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            for candidate in self.lanes:
                if scope["method"] == candidate.method and (found := candidate.pattern.fullmatch(scope["path"])):
                    await self._serve(candidate, found, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, candidate: Lane, found: re.Match[str], scope: Scope, receive: Receive,
                     send: Send) -> None:
        scope["route"] = candidate.route  # the metrics label, a 500 included (the router sets it again if declined)
        request = Request(scope, receive)
        try:
            response = await candidate.serve(request, found)
        except Exception as exc:
            handler = _handler_for(scope, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        if response is None:
            await self.app(scope, _replay(await request.body(), receive), send)
            return
        await response(scope, receive, send)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _handler_for(scope: Scope, exc: Exception) -> Handler | None:
    """The application's exception handler for ``exc`` (by class, most specific first), as FastAPI's
    exception middleware would choose it."""
    handlers: dict[type[Exception], Handler] = getattr(scope["app"], "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls in handlers and cls is not Exception:
            return handlers[cls]
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body a lane has read, for the route that answers instead; then the client's own messages."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed
