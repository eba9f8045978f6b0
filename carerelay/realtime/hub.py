"""Wakes a node's live WebSocket connections when their person has new events.

The database is the record: each connection can always read its events after its own last
sequence number, so a missed or repeated wake can neither lose nor duplicate anything. To spare
that read on the hot path, a commit on this node also hands the events it wrote to the
connections of their people (``deliver``); a connection sends them directly only when they
continue exactly where it stands (seq = its cursor + 1, without gaps) and reads the database
otherwise. Wakes come from this node's commits (after-commit hook, any thread) and from other
nodes through PostgreSQL NOTIFY, which names each person's newest sequence number so a
connection that already has it, or has it handed over, is not woken again.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from carerelay.realtime.service import WAKE_KEY, committed_events

# (person id, seq, kind, payload) of one committed event
Committed = tuple[int, int, str, dict[str, Any]]

MAX_PENDING = 500


class Subscription:
    def __init__(self, person_id: int, session_id: int | None = None) -> None:
        self.person_id = person_id
        self.session_id = session_id
        self.cursor = 0
        self.check_session = False  # the node's sweep found something for this socket's own session check
        self._event = asyncio.Event()
        self._pending: dict[int, tuple[str, dict[str, Any]]] = {}

    def wake(self) -> None:
        self._event.set()

    def push(self, seq: int, kind: str, payload: dict[str, Any]) -> None:
        if seq > self.cursor and len(self._pending) < MAX_PENDING:
            self._pending[seq] = (kind, payload)
        self._event.set()

    def take(self) -> tuple[list[dict[str, Any]], bool]:
        """Handed-over events that continue exactly at the cursor, and whether that is all there is.

        Not complete (read the database) when nothing was handed over (a wake from another node,
        the node's sweep) or when a gap remains (an event committed elsewhere, or whose hook has not
        run yet).
        """
        pending = self._pending
        for seq in [s for s in pending if s <= self.cursor]:
            del pending[seq]
        frames = []
        seq = self.cursor + 1
        while seq in pending:
            kind, payload = pending.pop(seq)
            frames.append({"type": "event", "seq": seq, "kind": kind, "data": payload})
            seq += 1
        return frames, bool(frames) and not pending

    def behind(self, seq: int) -> bool:
        """Whether the socket still needs ``seq`` from somewhere other than a hand-over it already has."""
        return seq > self.cursor and seq not in self._pending

    async def wait(self) -> None:
        """Until woken: by an event, another node's NOTIFY or the node's sweep; an idle socket costs nothing."""
        await self._event.wait()
        self._event.clear()


class Hub:
    def __init__(self) -> None:
        self._subs: dict[int, set[Subscription]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop

    def subscribe(self, person_id: int, session_id: int | None = None) -> Subscription:
        sub = Subscription(person_id, session_id)
        self._subs[person_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.person_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.person_id]

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def wake(self, person_ids: Iterable[int]) -> None:
        """Call from the event loop."""
        for person_id in person_ids:
            for sub in self._subs.get(person_id, ()):
                sub.wake()

    def wake_behind(self, newest: Iterable[tuple[int, int]]) -> None:
        """Call from the event loop: wake the connections of each person not yet at that seq."""
        for person_id, seq in newest:
            for sub in self._subs.get(person_id, ()):
                if sub.behind(seq):
                    sub.wake()

    def wake_all(self) -> None:
        self.wake(list(self._subs))

    def connected(self) -> tuple[set[int], set[int]]:
        """Call from the event loop: the people and the sessions that have a socket on this node."""
        subs = [sub for group in self._subs.values() for sub in group]
        return {sub.person_id for sub in subs}, {sub.session_id for sub in subs if sub.session_id is not None}

    def ask_session_checks(self, session_ids: set[int]) -> None:
        """Call from the event loop: these sockets check their session now (the sweep found a reason)."""
        for group in self._subs.values():
            for sub in group:
                if sub.session_id in session_ids:
                    sub.check_session = True
                    sub.wake()

    def deliver(self, events: list[Committed]) -> None:
        """Call from the event loop: hand committed events to their people's connections."""
        for person_id, seq, kind, payload in events:
            for sub in self._subs.get(person_id, ()):
                sub.push(seq, kind, payload)

    def wake_threadsafe(self, person_ids: Iterable[int]) -> None:
        loop = self._loop
        ids = list(person_ids)
        if loop is None or not ids or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.wake, ids)

    def after_commit(self, session: Session) -> None:
        """Database hook: hand over (or wake for) what the committed transaction wrote."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        events = committed_events(session)
        woken = session.info.get(WAKE_KEY)
        if events:
            loop.call_soon_threadsafe(self.deliver, events)
        elif woken:
            loop.call_soon_threadsafe(self.wake, list(woken))
