"""The worker inside every app node: fires due timers and sends queued deliveries, several times a second;
and, beside it, pulls third-party schedules that are due (every 15 minutes per source).

At start it makes sure the escalation auditor has its next run scheduled (one durable timer shared by
every node; see escalation/auditor.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import suppress

import httpx2
from anyio import to_thread

from carerelay.alerts.intake import take_handoffs
from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.escalation.auditor import AuditorConfig, ensure_scheduled
from carerelay.jobs.service import fire_due, firing_threads
from carerelay.messaging.retention import schedule_daily_purge
from carerelay.notifications.channels import Channel
from carerelay.notifications.service import deliver_due
from carerelay.scheduling.sync import engine as sync_engine

log = logging.getLogger("carerelay.jobs")

TICK_SECONDS = 0.2
SYNC_CHECK_SECONDS = 60.0
SYNC_HTTP_TIMEOUT_SECONDS = 20.0


async def run_forever(db: Database, clock: Clock, channels: dict[str, Channel],
                      also: Sequence[Callable[[], object]] = (), *, schedule_sync: bool = True,
                      auditor: AuditorConfig | None = None, timer_threads: int = 1) -> None:
    """Each pass fires due timers, turns clinical hand-offs into alerts, sends due deliveries, then does
    ``also`` (integrations' own outboxes: WCTP replies to originators). Scheduler syncs run in a task of
    their own, so a slow vendor never delays an escalation.

    The first pass also makes sure the periodic work is planned (the daily retention purge); it is
    done here rather than at start-up so a busy database delays the purge, never the node's readiness.
    """
    if auditor is not None:
        config = AuditorConfig(auditor.interval_seconds, auditor.max_lag_seconds, auditor.shift_horizon_hours,
                               tuple(sorted(channels)))
        try:
            await to_thread.run_sync(lambda: ensure_scheduled(db=db, clock=clock, config=config))
        except Exception:  # the timers must run even if this start-up write fails; the next start retries
            log.exception("could not schedule the escalation auditor")
    syncing = asyncio.create_task(sync_schedules_forever(db, clock), name="schedule-sync") if schedule_sync else None
    planned = False
    firers = firing_threads(db, timer_threads)
    try:
        while True:
            try:
                if not planned:
                    await to_thread.run_sync(schedule_daily_purge, db, clock)
                    planned = True
                await asyncio.gather(*(to_thread.run_sync(lambda: fire_due(db=db, clock=clock, limit=500))
                                       for _ in range(firers)))
                await to_thread.run_sync(lambda: take_handoffs(db=db, clock=clock))
                await to_thread.run_sync(lambda: deliver_due(db=db, clock=clock, channels=channels))
                for work in also:
                    await to_thread.run_sync(work)
            except Exception:  # the worker must outlive a database hiccup; each timer retries
                log.exception("worker pass failed; retrying")
            await asyncio.sleep(TICK_SECONDS)
    finally:
        if syncing is not None:
            await stop(syncing)


def sync_schedules_once(db: Database, clock: Clock) -> int:
    """Pull every third-party schedule that is due (not pulled in 15 minutes); how many were pulled."""
    with httpx2.Client(timeout=SYNC_HTTP_TIMEOUT_SECONDS) as http:
        return len(sync_engine.sync_due(db=db, clock=clock, http=http))


async def sync_schedules_forever(db: Database, clock: Clock) -> None:
    while True:
        try:
            await to_thread.run_sync(lambda: sync_schedules_once(db, clock))
        except Exception:  # a vendor or database hiccup: the source stays due and is tried next pass
            log.exception("scheduler sync pass failed; retrying")
        await asyncio.sleep(SYNC_CHECK_SECONDS)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
