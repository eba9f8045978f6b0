"""Wakes a node's live WebSocket connections when their person has new events.

The hub carries no data, only "look again": each connection then reads its events from the
database after its own last sequence number, so a missed or repeated wake can neither lose nor
duplicate anything. Wakes come from this node's commits (after-commit hook, any thread) and from
other nodes through PostgreSQL NOTIFY.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterable
from contextlib import suppress

from sqlalchemy.orm import Session

from carerelay.realtime.service import WAKE_KEY


class Subscription:
    def __init__(self, person_id: int) -> None:
        self.person_id = person_id
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()


class Hub:
    def __init__(self) -> None:
        self._subs: dict[int, set[Subscription]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop

    def subscribe(self, person_id: int) -> Subscription:
        sub = Subscription(person_id)
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

    def wake_all(self) -> None:
        self.wake(list(self._subs))

    def wake_threadsafe(self, person_ids: Iterable[int]) -> None:
        loop = self._loop
        ids = list(person_ids)
        if loop is None or not ids or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.wake, ids)

    def after_commit(self, session: Session) -> None:
        """Database hook: wake whoever the committed transaction wrote events for."""
        woken = session.info.get(WAKE_KEY)
        if woken:
            self.wake_threadsafe(woken)
