"""The exports loop inside every app node, beside the timer worker but never blocking it.

A slow SFTP server may hold an attempt for its whole timeout; escalation timers must still fire
within a second, so connectors run in a task of their own. Every few seconds it queues what is due
and sends due runs; nodes share the work through the runs' row locks and leases.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from anyio import to_thread

from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.integrations.exports.runner import process_due

log = logging.getLogger("carerelay.exports")

CHECK_SECONDS = 5.0


async def run_forever(db: Database, clock: Clock, every: float = CHECK_SECONDS) -> None:
    while True:
        try:
            await to_thread.run_sync(lambda: process_due(db=db, clock=clock))
        except Exception:  # the loop must outlive a database hiccup; runs are retried from their rows
            log.exception("exports pass failed; retrying")
        await asyncio.sleep(every)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
