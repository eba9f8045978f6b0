"""The MLLP listener: asyncio servers (one per feed), a store writer and an in-order processor.

Per connection, one loop reads many frames. Each complete frame goes to the store writer, which
batches whatever is waiting into one transaction in the database thread (group commit) and only
then resolves the frame's future; the connection writes the ACK after that, in frame order.
ACK-on-receipt feeds answer AA as soon as the message is committed; ACK-after-processing feeds wait
for the processor's outcome.

The processor takes stored messages in id (arrival) order — so one patient's messages are applied
in the order they came — and runs in the same database thread, a few at a time, so storing (and
so ACK latency) never waits long behind it. It also picks up messages left ``received`` by a crash
or put back by a reprocess, and checks feed silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from carerelay.config import Settings
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.hl7 import metrics
from carerelay.integrations.hl7.ack import DEFAULT_HEADER, ErrorLocation, build_ack
from carerelay.integrations.hl7.feeds import Feed, feeds_from, result_policy
from carerelay.integrations.hl7.mllp import Frame, FrameReader, Garbage, Oversize, frame
from carerelay.integrations.hl7.parser import Header, HL7Error, header_of, parse
from carerelay.integrations.hl7.presenting import PresentingRules, rules_from
from carerelay.integrations.hl7.store import (
    FeedHealth,
    Inbound,
    Processed,
    Receipt,
    check_feeds,
    process_pending,
    receive_messages,
)
from carerelay.patients.service import ResultPolicy

log = logging.getLogger("carerelay.hl7")

READ_CHUNK = 256 * 1024
BACKLOG = 1024  # an interface engine restarting reconnects every channel at once; don't drop their SYNs


@dataclass
class _Pending:
    inbound: Inbound
    future: asyncio.Future[Receipt]
    started: float


def _head_header(head: bytes, charset: str) -> Header | None:
    """The MSH of an oversize frame, from its first bytes, so the AR can name the message."""
    first = head.replace(b"\n", b"\r").split(b"\r", 1)[0]
    try:
        return header_of(parse(first, charset))
    except HL7Error:
        return None


class Hl7Runtime:
    """Listeners, store writer and processor of one node. ``start`` binds; ``stop`` drains."""

    def __init__(self, *, db: Database, settings: Settings, clock: Clock, feeds: list[Feed] | None = None,
                 policy: ResultPolicy | None = None, presenting: PresentingRules | None = None,
                 process_batch: int = 8, poll_seconds: float = 1.0,
                 silence_check_seconds: float = 30.0, quiet_seconds: float = 0.01,
                 max_defer_seconds: float = 1.0) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.feeds = feeds if feeds is not None else feeds_from(settings)
        self.by_name = {f.name: f for f in self.feeds}
        self.policy = policy or result_policy(settings)
        self.presenting = presenting if presenting is not None else rules_from(settings)
        self.stat_priorities = tuple(p.strip() for p in settings.hl7_stat_priorities.split(",") if p.strip())
        self.process_batch = process_batch
        self.poll_seconds = poll_seconds
        self.silence_check_seconds = silence_check_seconds
        self.quiet_seconds = quiet_seconds
        self.max_defer_seconds = max_defer_seconds
        self._last_store = 0.0
        self.max_bytes = settings.mllp_max_message_bytes
        self.idle_timeout = settings.mllp_idle_timeout_seconds
        self.max_connections = settings.mllp_max_connections
        self.ports: dict[str, int] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hl7-db")
        self._servers: list[asyncio.Server] = []
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._waiters: dict[int, asyncio.Future[Processed]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: set[asyncio.Task[Any]] = set()
        self._recent: OrderedDict[int, Processed] = OrderedDict()
        self._ack_after_processing = any(f.ack_mode == "processed" for f in self.feeds)
        self._stopping = False
        self.last_health: list[FeedHealth] = []

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for feed in self.feeds:
            if not feed.listen:
                continue
            context = None
            if feed.tls_cert:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(feed.tls_cert, feed.tls_key)
            try:
                server = await asyncio.start_server(self._connection_handler(feed), feed.host, feed.port,
                                                    ssl=context, limit=READ_CHUNK * 2, backlog=BACKLOG)
            except OSError as exc:
                log.error("hl7 feed cannot listen", extra={"feed": feed.name, "host": feed.host, "port": feed.port,
                                                           "error": str(exc)})
                for started in self._servers:
                    started.close()
                self._executor.shutdown(wait=False)
                raise
            self._servers.append(server)
            self.ports[feed.name] = server.sockets[0].getsockname()[1]
            log.info("hl7 feed listening", extra={"feed": feed.name, "host": feed.host, "port": self.ports[feed.name],
                                                  "tls": bool(context), "ack_mode": feed.ack_mode})
        self._tasks.append(loop.create_task(self._writer_loop(), name="hl7-store-writer"))
        self._tasks.append(loop.create_task(self._processor_loop(), name="hl7-processor"))

    async def stop(self) -> None:
        self._stopping = True
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=True)
        log.info("hl7 listeners stopped")

    def wake(self) -> None:
        """Ask the processor to look for work now (after a reprocess)."""
        self._wake.set()

    # ------------------------------------------------------------ database thread

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _store_sync(self, items: list[Inbound]) -> list[Receipt]:
        with self.db.unit_of_work() as session:
            return receive_messages(session=session, clock=self.clock, items=items)

    def _process_sync(self, limit: int) -> list[Processed]:
        with self.db.unit_of_work() as session:
            done = process_pending(session=session, clock=self.clock, feeds=self.by_name, policy=self.policy,
                                   stat_priorities=self.stat_priorities, limit=limit, presenting=self.presenting)
        return done

    def _check_sync(self) -> list[FeedHealth]:
        with self.db.unit_of_work() as session:
            return check_feeds(session=session, clock=self.clock, feeds=self.feeds)

    # ------------------------------------------------------------ store writer (group commit)

    async def _writer_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < 256 and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._last_store = time.monotonic()
            try:
                receipts: list[Receipt] = await self._in_db(self._store_sync, [p.inbound for p in batch])
            except Exception:
                log.exception("hl7 store failed: answering AE so the sender sends again", extra={"count": len(batch)})
                for p in batch:
                    if not p.future.done():
                        p.future.set_result(Receipt(None, None, "AE", "could not store the message; send it again",
                                                    ErrorLocation("MSH", 1, None, "207")))
                continue
            self._last_store = time.monotonic()
            for p, receipt in zip(batch, receipts, strict=True):
                if not p.future.done():
                    p.future.set_result(receipt)
            if any(r.to_process for r in receipts):
                self._wake.set()

    # ------------------------------------------------------------ processor

    async def _processor_loop(self) -> None:
        next_check = 0.0
        while True:
            now = time.monotonic()
            if now >= next_check:
                next_check = now + self.silence_check_seconds
                try:
                    self.last_health = await self._in_db(self._check_sync)
                    for h in self.last_health:
                        metrics.HL7_FEED_SILENT.labels(h.feed).set(1 if h.silent_since else 0)
                except Exception:
                    log.exception("hl7 feed check failed")
            try:
                while True:
                    self._wake.clear()
                    limit = await self._yield_to_stores()
                    done: list[Processed] = await self._in_db(self._process_sync, limit)
                    for item in done:
                        metrics.HL7_PROCESSED.labels("all", item.status).inc()
                        waiter = self._waiters.pop(item.message_id, None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(item)
                        elif self._ack_after_processing:
                            # processed before its connection asked (a pipelined frame): keep the outcome
                            self._recent[item.message_id] = item
                            while len(self._recent) > 10_000:
                                self._recent.popitem(last=False)
                    if len(done) < limit:
                        break
                    # let queued stores go first: the executor is FIFO and the writer is waiting
                    await asyncio.sleep(0)
            except Exception:
                log.exception("hl7 processing pass failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def _yield_to_stores(self) -> int:
        """Storing (and so ACKing) goes first: wait for a quiet moment in the store writer, at most
        ``max_defer_seconds``; then process a full batch, or a single message if still busy. Under a
        sustained burst above processing capacity the backlog grows and drains when the burst ends."""
        deadline = time.monotonic() + self.max_defer_seconds
        while time.monotonic() - self._last_store < self.quiet_seconds or not self._queue.empty():
            if time.monotonic() >= deadline:
                return 1
            await asyncio.sleep(self.quiet_seconds)
        return self.process_batch

    async def _processed(self, message_id: int) -> Processed | None:
        known = self._recent.pop(message_id, None)
        if known is not None:
            return known
        future: asyncio.Future[Processed] = asyncio.get_running_loop().create_future()
        self._waiters[message_id] = future
        self._wake.set()
        try:
            return await asyncio.wait_for(future, timeout=60)
        except TimeoutError:
            self._waiters.pop(message_id, None)
            return None

    # ------------------------------------------------------------ connections

    def _connection_handler(self, feed: Feed) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            metrics.HL7_CONNECTIONS.labels(feed.name).inc()
            try:
                await self._serve_connection(feed, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
                log.info("hl7 connection dropped", extra={"feed": feed.name, "error": str(exc)})
            except asyncio.CancelledError:
                pass
            finally:
                metrics.HL7_CONNECTIONS.labels(feed.name).dec()
                self._connections.discard(task)
                writer.close()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await writer.wait_closed()

        return handle

    async def _serve_connection(self, feed: Feed, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer_ip = peername[0] if isinstance(peername, tuple) and peername else None
        peer = f"{peer_ip}:{peername[1]}" if peer_ip else None
        if not feed.allows(peer_ip):
            log.warning("hl7 connection refused: address not on the feed's allow-list",
                        extra={"feed": feed.name, "peer": peer})
            return
        if len(self._connections) > self.max_connections:
            log.warning("hl7 connection refused: too many connections", extra={"feed": feed.name, "peer": peer})
            return
        frames = FrameReader(self.max_bytes)
        while not self._stopping:
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout=self.idle_timeout)
            except TimeoutError:
                log.info("hl7 connection idle: closing", extra={"feed": feed.name, "peer": peer,
                                                               "idle_seconds": self.idle_timeout})
                return
            if not data:
                garbage = frames.flush_garbage()
                if garbage is not None:
                    log.warning("hl7 bytes outside any MLLP frame", extra={"feed": feed.name, "peer": peer,
                                                                          "bytes": len(garbage.data)})
                if frames.pending:
                    log.warning("hl7 truncated frame at end of connection: not stored, not ACKed",
                                extra={"feed": feed.name, "peer": peer, "bytes": frames.pending})
                return
            pending: list[tuple[_Pending | None, bytes | None]] = []
            for event in frames.feed(data):
                if isinstance(event, Frame):
                    p = _Pending(Inbound(feed, event.payload, peer), asyncio.get_running_loop().create_future(),
                                 time.perf_counter())
                    await self._queue.put(p)
                    pending.append((p, None))
                elif isinstance(event, Oversize):
                    header = _head_header(event.head, feed.charset)
                    log.warning("hl7 frame over the size limit: refused", extra={
                        "feed": feed.name, "peer": peer, "bytes": event.size, "limit": self.max_bytes,
                        "control_id": header.control_id if header else None})
                    text = f"message of {event.size} bytes is over the {self.max_bytes}-byte limit"
                    pending.append((None, self._encode(header, "AR", text, ErrorLocation("MSH", 1, None, "207"),
                                                       feed.charset)))
                    metrics.HL7_RECEIVED.labels(feed.name, "AR").inc()
                elif isinstance(event, Garbage):
                    log.warning("hl7 bytes outside any MLLP frame: answering AR", extra={
                        "feed": feed.name, "peer": peer, "bytes": len(event.data)})
                    pending.append((None, self._encode(None, "AR", "not an MLLP-framed HL7 message",
                                                       ErrorLocation("MSH", 1, None, "100"), feed.charset)))
            for item, ready in pending:
                if item is not None:
                    receipt = await item.future
                    if feed.ack_mode == "processed" and receipt.to_process and receipt.message_id is not None:
                        outcome = await self._processed(receipt.message_id)
                        if outcome is not None and outcome.status == "error":
                            receipt.code, receipt.text = "AE", outcome.note
                            receipt.error = ErrorLocation("MSH", 1, None, "207")
                    ready = self._encode(receipt.header, receipt.code, receipt.text, receipt.error, receipt.charset)
                    metrics.HL7_RECEIVED.labels(feed.name, receipt.code).inc()
                    metrics.HL7_ACK_SECONDS.labels(feed.name).observe(time.perf_counter() - item.started)
                assert ready is not None
                writer.write(ready)
            await writer.drain()

    def _encode(self, header: Header | None, code: str, text: str, error: ErrorLocation | None,
                charset: str) -> bytes:
        ack = build_ack(header or DEFAULT_HEADER, code, now=self.clock.now(), text=text, error=error)
        return frame(ack.encode(charset, errors="replace"))
