"""A local HTTP server answering like the Rauland-Sync-style assignment API of docs/subsystems/staffing.md."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class SystemState:
    """What the assignment system holds, per unit; tests edit it between polls."""

    units: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    token: str = "rs-token"
    facility: str = "MAINHOSP"
    page_size: int = 2
    fail_with: int | None = None
    requests: list[str] = field(default_factory=list)


def _handler(state: SystemState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.requests.append(self.path)
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            parts = url.path.strip("/").split("/")
            if state.fail_with is not None:
                self._send(state.fail_with, {"error": "maintenance"})
            elif self.headers.get("Authorization") != f"Bearer {state.token}":
                self._send(401, {"error": "unauthorized"})
            elif (len(parts) == 7 and parts[:3] == ["api", "v1", "facilities"] and parts[3] == state.facility
                  and parts[4] == "units" and parts[6] == "assignments" and "start" in query and "end" in query):
                rows = state.units.get(parts[5], [])
                page = int(query.get("page", "1"))
                pages = max(1, -(-len(rows) // state.page_size))
                chunk = rows[(page - 1) * state.page_size: page * state.page_size]
                self._send(200, {"facility": state.facility, "unit": parts[5], "generatedAt": "2026-11-24T14:00:00Z",
                                 "page": page, "pageSize": state.page_size, "totalPages": pages,
                                 "assignments": chunk})
            else:
                self._send(404, {"error": "not found"})

    return Handler


@contextmanager
def assignment_system() -> Iterator[tuple[str, SystemState]]:
    state = SystemState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
