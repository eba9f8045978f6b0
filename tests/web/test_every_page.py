"""Every page renders for the roles it is for, refuses the others, and carries the security headers;
every form post needs the CSRF token."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from carerelay.web.common import CSRF_GUARDS, WebRoute
from tests.route_walk import expand_routes
from tests.web.helpers import web_user

PAGES = {
    "cnurse": ["/home", "/inbox", "/inbox?q=hello", "/inbox/fragment", "/compose", "/compose?q=cardio",
               "/compose?pq=doe", "/alerts", "/alerts/fragment", "/directory", "/directory?q=hou", "/oncall",
               "/oncall/fragment", "/patients", "/patients?q=doe", "/me/schedule", "/me/rules"],
    "dwhitaker": ["/staffing", "/staffing/4W", "/staffing/4W?target=412%2FB&shift=next&find=lee",
                  "/staffing/4W/fragment", "/staffing/ICU"],
    "ooperator": ["/board", "/oncall/fragment?board=1", "/page"],
    "sscheduler": ["/schedules"],
    "iadmin": ["/admin", "/admin/hl7", "/admin/hl7/fragment", "/admin/hl7/messages",
               "/admin/hl7/messages?status=error&type=ADT", "/admin/escalation", "/admin/routing", "/admin/users",
               "/admin/users?q=nurse&role=nurse"],
    "ccompliance": ["/compliance", "/compliance/audit", "/compliance/audit?action=auth.sign_in",
                    "/compliance/verify", "/compliance/verify?run=1", "/compliance/discovery",
                    "/compliance/discovery?text=potassium", "/compliance/reports/tta",
                    "/compliance/reports/tta?kind=all&days=7"],
}

FORBIDDEN = {
    "cnurse": ["/board", "/schedules", "/admin", "/admin/hl7", "/compliance", "/compliance/discovery"],
    "iadmin": ["/compliance/audit", "/schedules", "/board"],
    "ccompliance": ["/patients", "/admin/users", "/staffing"],
    "sscheduler": ["/patients", "/admin", "/compliance/reports/tta", "/staffing/4W", "/page"],
}


# Nothing loaded from another origin or a CDN. Attribute values only: a random token in the page
# (a CSRF field, a nonce) may spell "cdn" by chance.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:(?:https?:)?//|[^"'\s>]*cdn)""", re.IGNORECASE)

def test_pages_render_for_their_roles(client: TestClient) -> None:
    for username, urls in sorted(PAGES.items()):
        web_user(client, username)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:2000]}"
            assert response.headers["content-type"].startswith("text/html"), url
            assert "script-src 'self'" in response.headers["content-security-policy"], url
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], url
            assert response.headers["cache-control"] == "no-store", url
            assert "<script src=\"http" not in response.text and not EXTERNAL.search(response.text), url


def test_pages_refuse_other_roles(client: TestClient) -> None:
    for username, urls in sorted(FORBIDDEN.items()):
        web_user(client, username)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 403, f"{url}: {response.status_code}"
            assert "Not allowed" in response.text and "<h1>" in response.text, url


def test_signed_out_pages_lead_to_sign_in_and_back(client: TestClient) -> None:
    response = client.get("/alerts/fragment?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Falerts%2Ffragment%3Fx%3D1"
    page = client.get(response.headers["location"])
    assert 'name="next" value="/alerts/fragment?x=1"' in page.text
    assert "Your session has ended" in page.text


def _post_routes() -> list[tuple[str, Any]]:
    from carerelay.app import create_app
    from carerelay.config import load_settings

    app = create_app(load_settings(database_url="sqlite:///:memory:"))
    return [(r.path, r) for r in expand_routes(app.routes) if isinstance(r, APIRoute) and isinstance(r, WebRoute)
            and "POST" in (r.methods or set())]


def _names(dependant: Any) -> set[str]:
    found = set()
    for dep in dependant.dependencies:
        found.add(getattr(dep.call, "__name__", ""))
        found |= _names(dep)
    return found


def test_every_web_form_post_checks_csrf() -> None:
    posts = _post_routes()
    assert len(posts) > 20
    missing = [path for path, route in posts if not _names(route.dependant) & set(CSRF_GUARDS)]
    assert not missing, f"web form posts without a CSRF check: {missing}"


def test_a_post_without_the_token_is_refused(client: TestClient) -> None:
    web_user(client, "cnurse")
    response = client.post("/me/rules", data={"action": "deliver"}, follow_redirects=False)
    assert response.status_code == 403 and "reload the page" in response.text
    response = client.post("/me/rules", data={"action": "deliver", "csrf": "0" * 64}, follow_redirects=False)
    assert response.status_code == 403
