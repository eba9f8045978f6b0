"""Test support for the paging listeners: a PagingRuntime on free ports in a thread of its own, and
small blocking clients that speak TAP and SNPP over real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from carerelay.config import Settings, load_settings
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.paging import tap
from carerelay.integrations.paging.listeners import PagingRuntime


@dataclass
class Running:
    runtime: PagingRuntime

    def port(self, name: str) -> int:
        return self.runtime.ports[name]


@contextmanager
def running_paging(db: Database, clock: Clock, settings: Settings | None = None,
                   listen: dict[str, int] | None = None) -> Iterator[Running]:
    cfg = settings or load_settings(database_url="sqlite:///:memory:", paging_idle_timeout_seconds=10,
                                    pager_email_domain="pager.demo-health.example")
    runtime = PagingRuntime(db=db, settings=cfg, clock=clock, listen=listen or {"tap": 0, "snpp": 0, "smtp": 0})
    loop = asyncio.new_event_loop()
    started = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runtime.start())
        except BaseException as exc:
            errors.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runtime.stop())
        loop.close()

    thread = threading.Thread(target=run, name="paging-test-loop", daemon=True)
    thread.start()
    started.wait(30)
    if errors:
        raise errors[0]
    try:
        yield Running(runtime)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


class LineSocket:
    """A blocking client socket that reads up to a marker (a real peer, so a timeout, not a sleep)."""

    def __init__(self, port: int, timeout: float = 15) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}; got {self.buffer!r}")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(marker)
        self.buffer = rest
        return head + marker

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


class TapSender:
    """An entry device in automatic mode."""

    def __init__(self, port: int, password: str = "") -> None:
        self.io = LineSocket(port)
        self.last_message = b""
        self.io.send(tap.CR)
        assert self.io.until(b"ID=").endswith(b"ID=")
        self.io.send(tap.ESC + b"PG1" + password.encode() + tap.CR)
        self.logon = self.answer()  # ACK, or ESC EOT after a refused logon (self.last_message says why)

    def go_ahead(self) -> None:
        assert self.io.until(tap.GO_AHEAD).endswith(tap.GO_AHEAD)

    def transaction(self, pager_id: str, message: str) -> bytes:
        """Send one page in one block; the answer up to its control character."""
        fields = tap.escape(pager_id.encode()) + tap.CR + tap.escape(message.encode()) + tap.CR
        self.io.send(tap.block(fields))
        return self.answer()

    def answer(self) -> bytes:
        while True:
            line = self.io.until(tap.CR)
            if line[:1] in (tap.ACK, tap.NAK, tap.RS) or line.startswith(tap.ESC + tap.EOT):
                return line
            self.last_message = line

    def bye(self) -> bytes:
        self.io.send(tap.EOT + tap.CR)
        return self.io.until(tap.ESC + tap.EOT + tap.CR)


class SnppSender:
    def __init__(self, port: int) -> None:
        self.io = LineSocket(port)
        self.greeting = self.io.until(b"\r\n").decode()

    def command(self, text: str) -> str:
        self.io.send(text.encode() + b"\r\n")
        return self.io.until(b"\r\n").decode().strip()

    def lines_until(self, prefix: str) -> list[str]:
        got = []
        while True:
            line = self.io.until(b"\r\n").decode().strip()
            got.append(line)
            if line.startswith(prefix):
                return got
