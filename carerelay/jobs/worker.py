"""The worker inside every app node: fires due timers and sends queued deliveries, several times a second.

At start it makes sure the escalation auditor has its next run scheduled (one durable timer shared by
every node; see escalation/auditor.py).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from anyio import to_thread

from carerelay.alerts.intake import take_handoffs
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.escalation.auditor import AuditorConfig, ensure_scheduled
from carerelay.jobs.service import fire_due
from carerelay.notifications.channels import Channel
from carerelay.notifications.service import deliver_due

log = logging.getLogger("carerelay.jobs")

TICK_SECONDS = 0.2


async def run_forever(db: Database, clock: Clock, channels: dict[str, Channel],
                      auditor: AuditorConfig | None = None) -> None:
    """Each pass fires due timers, turns clinical hand-offs into alerts, then sends due deliveries."""
    if auditor is not None:
        config = AuditorConfig(auditor.interval_seconds, auditor.max_lag_seconds, auditor.shift_horizon_hours,
                               tuple(sorted(channels)))
        try:
            await to_thread.run_sync(lambda: ensure_scheduled(db=db, clock=clock, config=config))
        except Exception:  # the timers must run even if this start-up write fails; the next start retries
            log.exception("could not schedule the escalation auditor")
    while True:
        try:
            await to_thread.run_sync(lambda: fire_due(db=db, clock=clock, limit=500))
            await to_thread.run_sync(lambda: take_handoffs(db=db, clock=clock))
            await to_thread.run_sync(lambda: deliver_due(db=db, clock=clock, channels=channels))
        except Exception:  # the worker must outlive a database hiccup; each timer retries
            log.exception("worker pass failed; retrying")
        await asyncio.sleep(TICK_SECONDS)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
