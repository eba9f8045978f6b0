"""The timer worker inside every app node: fires due timers within a fraction of a second."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from anyio import to_thread

from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.jobs.service import fire_due

log = logging.getLogger("carerelay.jobs")

TICK_SECONDS = 0.2


async def run_forever(db: Database, clock: Clock) -> None:
    while True:
        try:
            await to_thread.run_sync(lambda: fire_due(db=db, clock=clock, limit=500))
        except Exception:
            log.exception("timer worker pass failed; retrying")
        await asyncio.sleep(TICK_SECONDS)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
