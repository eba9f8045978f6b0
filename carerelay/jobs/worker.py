"""The worker inside every app node: fires due timers and sends queued deliveries, several times a second."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import suppress

from anyio import to_thread

from carerelay.alerts.intake import take_handoffs
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.jobs.service import fire_due
from carerelay.messaging.retention import schedule_daily_purge
from carerelay.notifications.channels import Channel
from carerelay.notifications.service import deliver_due

log = logging.getLogger("carerelay.jobs")

TICK_SECONDS = 0.2


async def run_forever(db: Database, clock: Clock, channels: dict[str, Channel],
                      also: Sequence[Callable[[], object]] = ()) -> None:
    """Each pass fires due timers, turns clinical hand-offs into alerts, sends due deliveries, then does
    ``also`` (integrations' own outboxes: WCTP replies to originators).

    The first pass also makes sure the periodic work is planned (the daily retention purge); it is
    done here rather than at start-up so a busy database delays the purge, never the node's readiness.
    """
    planned = False
    while True:
        try:
            if not planned:
                await to_thread.run_sync(schedule_daily_purge, db, clock)
                planned = True
            await to_thread.run_sync(lambda: fire_due(db=db, clock=clock, limit=500))
            await to_thread.run_sync(lambda: take_handoffs(db=db, clock=clock))
            await to_thread.run_sync(lambda: deliver_due(db=db, clock=clock, channels=channels))
            for work in also:
                await to_thread.run_sync(work)
        except Exception:  # the worker must outlive a database hiccup; each timer retries
            log.exception("worker pass failed; retrying")
        await asyncio.sleep(TICK_SECONDS)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
