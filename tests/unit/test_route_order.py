"""The busiest routers are matched first (carerelay/app.py HOT_ROUTERS); that is only safe while no
route of theirs and no route elsewhere can answer the same request, which this keeps true."""

from __future__ import annotations

import re
from collections.abc import Iterator

from starlette.routing import BaseRoute, Match

from carerelay.app import HOT_ROUTERS, create_app
from carerelay.config import load_settings


def _flat(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from (_flat(inner.routes) if inner is not None else [route])


def _requests(route: BaseRoute) -> Iterator[dict[str, object]]:
    """Requests this route answers: its path with each parameter as a number and as a word, per method."""
    path = getattr(route, "path", "")
    kind = "websocket" if "WebSocket" in type(route).__name__ else "http"
    for value in ("1", "x"):
        concrete = re.sub(r"\{[^}]+\}", value, path)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            yield {"type": kind, "path": concrete, "method": method, "root_path": "", "headers": [],
                   "query_string": b""}


def test_no_request_is_answered_by_a_hot_router_and_another_route() -> None:
    app = create_app(load_settings(database_url="sqlite:///:memory:"))
    hot = [route for router in HOT_ROUTERS for route in _flat(router.routes)]
    hot_ids = {id(route) for route in hot}
    others = [route for route in _flat(app.router.routes) if id(route) not in hot_ids]
    assert len(hot) > 20 and len(others) > 200
    clashes = []
    for ours in hot:
        for theirs in others:
            for first, second in ((ours, theirs), (theirs, ours)):
                for scope in _requests(first):
                    if second.matches(dict(scope))[0] == Match.FULL:
                        clashes.append(f"{scope['method']} {scope['path']}: {first} and {second}")
    assert clashes == []


def test_the_hot_routers_are_matched_first() -> None:
    app = create_app(load_settings(database_url="sqlite:///:memory:"))
    included = [getattr(route, "original_router", None) for route in app.router.routes]
    routers = [router for router in included if router is not None]
    assert routers[:len(HOT_ROUTERS)] == list(HOT_ROUTERS)
