"""Every route the application registers, with the policies it declares (auth/deps.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount, Route

from carerelay.auth.deps import Policy, policy_of

# Framework routes that are not ours: the OpenAPI document is the public contract.
FRAMEWORK_PUBLIC = {"/openapi.json"}
STATIC_MOUNTS = {"/static", "/static/swagger"}


@dataclass(frozen=True)
class DeclaredRoute:
    methods: tuple[str, ...]
    """HTTP methods, or ("WS",) for a WebSocket."""
    path: str
    policies: tuple[Policy, ...]
    route: APIRoute | APIWebSocketRoute

    @property
    def label(self) -> str:
        return f"{','.join(self.methods)} {self.path}"


def _policies(dependant: Any) -> list[Policy]:
    found = []
    for dep in dependant.dependencies:
        policy = policy_of(dep.call)
        if policy is not None:
            found.append(policy)
        found.extend(_policies(dep))
    return found


def expand_routes(routes: list[Any]) -> list[Any]:
    """FastAPI keeps included routers lazily; open them so no route escapes the walk."""
    flat = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat.extend(expand_routes(included.routes) if included is not None else [route])
    return flat


def declared_routes(app: FastAPI) -> list[DeclaredRoute]:
    rows = []
    for route in expand_routes(app.routes):
        if isinstance(route, APIRoute | APIWebSocketRoute):
            methods = tuple(sorted(getattr(route, "methods", None) or {"WS"}))
            rows.append(DeclaredRoute(methods, route.path, tuple(_policies(route.dependant)), route))
        elif isinstance(route, Mount):
            assert route.path in STATIC_MOUNTS, f"unexpected mount {route.path}"
        elif isinstance(route, Route):
            assert route.path in FRAMEWORK_PUBLIC, f"route {route.path} is not an APIRoute and has no policy"
        else:
            raise AssertionError(f"unknown kind of route {route!r}: teach this walk to open it")
    assert len(rows) > 20, "the walk found too few routes to be real"
    return rows
