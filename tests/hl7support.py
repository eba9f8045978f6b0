"""Test support for HL7: the shared samples, unique ids per test, an in-process listener on a thread."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from carerelay.config import Settings, load_settings
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.listener import Hl7Runtime
from carerelay.integrations.hl7.models import Hl7Message


def _shared_samples() -> Path:
    """``shared/`` stands beside the checkout (CI's clone, a worktree's main): look upward for it."""
    for base in Path(__file__).resolve().parents:
        candidate = base / "shared" / "samples" / "hl7"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/samples/hl7 not found beside the checkout")


SAMPLES = _shared_samples()


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def uniq(prefix: str = "T") -> str:
    return f"{prefix}{secrets.token_hex(4).upper()}"


def personalise(message: bytes, *, mrn: str, control: str) -> bytes:
    """A sample with its MRN and MSH-10 made unique, so tests sharing one database never collide."""
    out = message.replace(b"MRN1001", mrn.encode())
    for old in (b"MSG00001", b"MSG00002", b"MSG00003", b"ORD00077", b"LAB00042"):
        out = out.replace(b"|" + old + b"|", b"|" + control.encode() + b"|")
    return out


@dataclass
class Running:
    runtime: Hl7Runtime
    loop: asyncio.AbstractEventLoop
    db: Database

    def port(self, feed: str = "main") -> int:
        return self.runtime.ports[feed]

    def call(self, fn: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(fn)


def make_feeds() -> list[Feed]:
    return [
        Feed(name="main", port=0, ack_mode="processed", timezone="America/Chicago"),
        Feed(name="receipt", port=0, ack_mode="receipt"),
        Feed(name="lab", port=0, ack_mode="processed", charset="latin-1", message_types=("ORU^R01",)),
        Feed(name="walled", port=0, allow=(ipaddress.ip_network("10.0.0.0/8"),)),
    ]


@contextmanager
def running_listener(engine: Engine, clock: Clock, *, feeds: list[Feed] | None = None,
                     settings: Settings | None = None) -> Iterator[Running]:
    db = Database(engine)
    cfg = settings or load_settings(database_url="sqlite:///:memory:", mllp_idle_timeout_seconds=5)
    runtime = Hl7Runtime(db=db, settings=cfg, clock=clock, feeds=feeds or make_feeds(), poll_seconds=0.2)
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

    thread = threading.Thread(target=run, name="hl7-test-loop", daemon=True)
    thread.start()
    started.wait(30)
    if errors:
        raise errors[0]
    try:
        yield Running(runtime, loop, db)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def wait_processed(db: Database, message_ids: list[int], timeout: float = 20) -> list[Hl7Message]:
    """Wait for the processor (a real thread) to finish these messages: polls the store, no fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        with db.unit_of_work() as session:
            rows = list(session.execute(select(Hl7Message).where(Hl7Message.id.in_(message_ids))).scalars())
        if len(rows) == len(message_ids) and all(r.status != "received" for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise TimeoutError(f"not processed: {[(r.id, r.status) for r in rows]}")
        time.sleep(0.02)
