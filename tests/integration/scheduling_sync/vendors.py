"""Local HTTP servers that answer like QGenda (REST v2, JSON), Amion (Rpt=619 text) and ShiftAdmin
(the organization API: Basic auth, JSON POSTs to ``/<org>/org_groups`` and ``/<org>/org_scheduled_shifts``)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class VendorState:
    """What the fake vendor holds; tests edit it between runs."""

    qgenda_entries: list[dict[str, Any]] = field(default_factory=list)
    amion_days: dict[tuple[int, int, int], list[str]] = field(default_factory=dict)
    fail_with: int | None = None
    requests: list[str] = field(default_factory=list)
    token: str = "tok-123"
    shiftadmin_org: str = "vcare"
    shiftadmin_groups: list[dict[str, Any]] = field(default_factory=list)
    shiftadmin_shifts: list[dict[str, Any]] = field(default_factory=list)
    shiftadmin_bodies: list[dict[str, Any]] = field(default_factory=list)


SHIFTADMIN_USER = ("sync@example.org", "s3cret")


def _shiftadmin_in_range(value: str, first: date, last: date) -> bool:
    """A row whose start cannot be read is answered anyway: a broken vendor row is the client's problem."""
    try:
        return first <= datetime.strptime(value, "%m/%d/%Y %H:%M").date() <= last
    except ValueError:
        return True


def _handler(state: VendorState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _shiftadmin(self, endpoint: str, raw: bytes) -> None:
            expected = "Basic " + base64.b64encode(":".join(SHIFTADMIN_USER).encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, b'{"error":"Unauthorized"}', "application/json")
                return
            if state.fail_with is not None:
                self._send(state.fail_with, b"unavailable", "text/plain")
                return
            body = json.loads(raw or b"{}")
            state.shiftadmin_bodies.append({"endpoint": endpoint, **body})
            if endpoint == "org_groups":
                self._send(200, json.dumps(state.shiftadmin_groups).encode(), "application/json")
            elif endpoint == "org_scheduled_shifts":
                first, last = date.fromisoformat(body["start_date"]), date.fromisoformat(body["end_date"])
                rows = [s for s in state.shiftadmin_shifts if s["group_id"] == body.get("group_id", s["group_id"])
                        and _shiftadmin_in_range(s["shift_start"], first, last)]
                self._send(200, json.dumps(rows).encode(), "application/json")
            else:
                self._send(404, b'{"error":"Not found"}', "application/json")

        def do_POST(self) -> None:
            state.requests.append(f"POST {self.path}")
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            org, _, endpoint = self.path.strip("/").partition("/")
            if org == state.shiftadmin_org and endpoint.startswith("org_"):
                self._shiftadmin(endpoint, raw)
                return
            form = parse_qs(raw.decode())
            if self.path == "/v2/login" and form.get("email") == ["sync@example.org"] \
                    and form.get("password") == ["s3cret"]:
                body = json.dumps({"access_token": state.token, "token_type": "bearer", "expires_in": 3600})
                self._send(200, body.encode(), "application/json")
            else:
                self._send(401, b'{"error":"invalid_grant"}', "application/json")

        def do_GET(self) -> None:
            state.requests.append(f"GET {self.path}")
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if state.fail_with is not None:
                self._send(state.fail_with, b"unavailable", "text/plain")
            elif url.path == "/v2/schedule":
                if self.headers.get("Authorization") != f"bearer {state.token}" or query.get("companyKey") != "CK-1":
                    self._send(401, b'{"Message":"Authorization has been denied"}', "application/json")
                    return
                self._send(200, json.dumps(state.qgenda_entries).encode(), "application/json")
            elif url.path == "/cgi-bin/ocs" and query.get("Rpt") == "619" and query.get("Lo") == "demo-site":
                day = (int(query["Year"]), int(query["Month"]), int(query["Day"]))
                title = f"Assignments for {day[1]}-{day[2]}-{day[0] % 100}\n\n"
                self._send(200, (title + "\n".join(state.amion_days.get(day, [])) + "\n").encode(), "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

    return Handler


@contextmanager
def vendor_server() -> Iterator[tuple[str, VendorState]]:
    state = VendorState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
