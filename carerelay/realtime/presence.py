"""The node's sweep over its open WebSockets: what each socket used to do for itself every 25 seconds,
done for all of them in a few statements.

An idle socket does nothing on its own. Every ``SWEEP_SECONDS`` the node, in one unit of work:
slides the idle timeout of every personal session with an open socket (an open socket is presence,
``auth.service.keep_sockets_alive``), names the sockets whose session needs its own check (ended,
expired, locked, a shared device past its idle timeout) and reads every connected person's newest
event number. Then it wakes exactly those sockets: the ones to check, and the ones behind their
person's newest event (a wake that never came: the database is the record). With 10,000 sockets on a
node that is a few dozen statements every 25 s, not 10,000 transactions.
"""

from __future__ import annotations

import asyncio
import logging

from carerelay.auth import service as auth
from carerelay.config import Settings
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.realtime import service
from carerelay.realtime.hub import Hub

log = logging.getLogger("carerelay.realtime")

SWEEP_SECONDS = 25.0


async def sweep(db: Database, clock: Clock, settings: Settings, hub: Hub) -> tuple[int, int]:
    """One pass; returns how many sockets' sessions were flagged for a check and how many people were behind."""
    people, sessions = hub.connected()
    if not people:
        return 0, 0

    def work() -> tuple[set[int], dict[int, int]]:
        with db.unit_of_work() as session:
            check = auth.keep_sockets_alive(session=session, clock=clock, settings=settings, session_ids=sessions)
            return check, service.newest_seqs(session=session, person_ids=people)

    check, newest = await db.in_thread(work)
    hub.ask_session_checks(check)
    hub.wake_behind(newest.items())
    return len(check), len(newest)


async def sweep_forever(db: Database, clock: Clock, settings: Settings, hub: Hub) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await sweep(db, clock, settings, hub)
        except Exception:  # a database hiccup: the next pass does the same work
            log.exception("socket sweep failed; retrying")
