"""Real peers for connector tests: an OpenSSH sshd, an SMTP server, and local HTTP servers that answer
as Microsoft Graph, a clinical collaboration partner and AnesthesiaGo do — errors and rate limits included.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from aiosmtpd.controller import Controller

from tests.servers import free_port

SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    port: int
    root: Path
    known_hosts: Path
    client_key: Path
    username: str
    process: subprocess.Popen[bytes] | None

    def transport(self, folder: str = "outbox", **extra: Any) -> dict[str, Any]:
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        return {"kind": "sftp", "host": "127.0.0.1", "port": self.port, "username": self.username,
                "path": str(self.root / folder), "key_file": str(self.client_key),
                "known_hosts": str(self.known_hosts), "timeout_seconds": 10, **extra}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Waits on a real process starting to listen, not on time passing in the system under test."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"sshd did not listen: {log.read_text(errors='replace')}")


@contextmanager
def running_sshd(tmp: Path) -> Iterator[Sshd]:
    """OpenSSH's sshd on a loopback port with its own host key, key-only login, internal-sftp."""
    import getpass

    if shutil.which(SSHD) is None:
        raise RuntimeError("openssh-server is not installed (apt-get install -y openssh-server)")
    base = tmp / "sshd"
    base.mkdir()
    host_key, client_key = base / "host_key", base / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    (base / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    port = free_port()
    config = base / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {base / 'sshd.pid'}",
        f"AuthorizedKeysFile {base / 'authorized_keys'}", "UsePAM no", "StrictModes no",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp", "LogLevel VERBOSE", ""]))
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
    log = base / "sshd.log"
    process = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(log)])
    known_hosts = base / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {Path(f'{host_key}.pub').read_text().strip()}\n")
    server = Sshd(port, tmp / "sftp-root", known_hosts, client_key, getpass.getuser(), process)
    server.root.mkdir()
    try:
        _wait_for_port(port, process, log)
        yield server
    finally:
        server.stop()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"

    def texts(self) -> list[str]:
        from email import message_from_bytes

        out = []
        for raw in self.messages:
            message = message_from_bytes(raw)
            body = message.get_payload(decode=True)
            out.append(f"To: {message['To']}\nSubject: {message['Subject']}\n\n"
                       + (body.decode() if isinstance(body, bytes) else str(message.get_payload())))
        return out


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


# -- HTTP peers ---------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeApi:
    """A ThreadingHTTPServer whose ``handle(method, path, query, headers, body)`` a subclass writes."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with api.lock:
                    api.log.append((self.command, url.path))
                    reply = api.handle(self.command, unquote(url.path), parse_qs(url.query), dict(self.headers),
                                       raw)
                data = b"" if reply.body is None else (reply.body if isinstance(reply.body, bytes)
                                                      else json.dumps(reply.body).encode())
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               raw: bytes) -> Reply:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class FakeGraph(FakeApi):
    """Microsoft Graph v1.0 calendar events and the identity platform's client-credentials token."""

    TENANT = "contoso-tenant"
    CLIENT_ID = "carerelay-app"
    SECRET = "graph-secret"

    def __init__(self, users: set[str]) -> None:
        self.users = users
        self.events: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, str] = {}
        self.token = secrets.token_hex(8)
        self.throttle_on: dict[int, int] = {}
        self.event_requests = 0
        super().__init__()

    def transport(self) -> dict[str, Any]:
        return {"kind": "http", "base_url": f"{self.url}/v1.0",
                "token_url": f"{self.url}/{self.TENANT}/oauth2/v2.0/token", "client_id": self.CLIENT_ID,
                "secret_env": "TEST_GRAPH_SECRET"}

    def calendar(self, upn: str) -> list[dict[str, Any]]:
        return sorted((e for e in self.events.values() if e["upn"] == upn), key=lambda e: e["start"]["dateTime"])

    @staticmethod
    def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
        return Reply(status, {"error": {"code": code, "message": message}}, headers or {})

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               raw: bytes) -> Reply:
        if path == f"/{self.TENANT}/oauth2/v2.0/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            if form.get("grant_type") != "client_credentials" or form.get("client_id") != self.CLIENT_ID \
                    or form.get("client_secret") != self.SECRET:
                return Reply(401, {"error": "invalid_client",
                                   "error_description": "AADSTS7000215: Invalid client secret provided."})
            return Reply(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": self.token})
        if headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "InvalidAuthenticationToken", "Access token is empty.")
        parts = path.split("/")
        if len(parts) < 5 or parts[1] != "v1.0" or parts[2] != "users" or parts[4] != "events":
            return self._error(400, "BadRequest", f"Resource not found for the segment '{path}'.")
        self.event_requests += 1
        if self.event_requests in self.throttle_on:
            return self._error(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                               {"Retry-After": str(self.throttle_on.pop(self.event_requests))})
        upn = parts[3]
        if upn not in self.users:
            return self._error(404, "ErrorInvalidUser", f"The requested user '{upn}' is invalid.")
        body = json.loads(raw) if raw else {}
        if method == "POST" and len(parts) == 5:
            existing = self.transactions.get(body.get("transactionId", ""))
            if existing:
                return Reply(201, self.events[existing])
            event_id = "AAMk" + secrets.token_hex(6)
            self.events[event_id] = {**body, "id": event_id, "upn": upn}
            if body.get("transactionId"):
                self.transactions[body["transactionId"]] = event_id
            return Reply(201, self.events[event_id])
        event_id = parts[5] if len(parts) > 5 else ""
        event = self.events.get(event_id)
        if event is None or event["upn"] != upn:
            return self._error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if method == "PATCH":
            event.update(body)
            return Reply(200, event)
        if method == "DELETE":
            del self.events[event_id]
            return Reply(204)
        return self._error(405, "ErrorInvalidRequest", "The OData request is not supported.")


class FakePartner(FakeApi):
    """The clinical-collaboration partner REST shape of docs/subsystems/exports.md."""

    USER = "carerelay-bg"
    PASSWORD = "partner-secret"

    def __init__(self, teams: set[tuple[str, str]]) -> None:
        self.teams = teams
        self.on_call: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.vendors: set[str] = set()
        super().__init__()

    def transport(self) -> dict[str, Any]:
        return {"kind": "http", "base_url": self.url, "username": self.USER, "secret_env": "TEST_PARTNER_SECRET"}

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               raw: bytes) -> Reply:
        self.vendors.add(headers.get("X-Partner-Vendor", ""))
        if path == "/api/v1/session" and method == "POST":
            body = json.loads(raw)
            if body.get("username") != self.USER or body.get("password") != self.PASSWORD:
                return Reply(401, {"error": "invalid credentials"})
            token = secrets.token_hex(8)
            self.tokens.add(token)
            return Reply(201, {"token": token, "expires_in": 3600})
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return Reply(401, {"error": "session expired"})
        parts = path.split("/")
        if len(parts) != 9 or parts[3] != "sites" or parts[5] != "teams" or parts[7] != "on-call":
            return Reply(404, {"error": "no such route"})
        site, team, shift = parts[4], parts[6], parts[8]
        if (site, team) not in self.teams:
            return Reply(404, {"error": f"unknown team {team!r} at site {site!r}"})
        if method == "PUT":
            body = json.loads(raw)
            if not body.get("start") or not body.get("end"):
                return Reply(422, {"error": "start and end are required"})
            self.on_call[(site, team, shift)] = body
            return Reply(200, {"ok": True})
        if method == "DELETE":
            self.on_call.pop((site, team, shift), None)
            return Reply(204)
        return Reply(405, {"error": "method not allowed"})


class FakeAnesthesiaGo(FakeApi):
    API_KEY = "ago-key"

    def __init__(self) -> None:
        self.days: dict[str, list[dict[str, Any]]] = {}
        self.throttle: list[int] = []
        super().__init__()

    def transport(self) -> dict[str, Any]:
        return {"kind": "http", "base_url": self.url, "secret_env": "TEST_AGO_KEY"}

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               raw: bytes) -> Reply:
        if headers.get("Authorization") != f"Bearer {self.API_KEY}":
            return Reply(401, {"errors": [{"message": "invalid API key"}]})
        if self.throttle:
            return Reply(429, {"errors": [{"message": "slow down"}]}, {"Retry-After": str(self.throttle.pop(0))})
        parts = path.split("/")
        if method != "PUT" or len(parts) != 4 or parts[2] != "schedules":
            return Reply(404, {"errors": [{"message": "not found"}]})
        body = json.loads(raw)
        for entry in body.get("assignments", []):
            missing = [f for f in ("employee_id", "assignment_id", "start", "end") if not entry.get(f)]
            if missing:
                return Reply(422, {"errors": [{"field": f, "message": "required"} for f in missing]})
        self.days[parts[3]] = body["assignments"]
        return Reply(200, {"date": parts[3], "count": len(body["assignments"])})
