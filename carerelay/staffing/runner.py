"""Running feeds: fetch outside any transaction, then apply each delivery in its own unit of work.

``run_forever`` runs in every ``carerelay serve`` process (with the timers): every few seconds it
takes the feeds whose interval has come round — claimed by compare-and-set, so with several nodes
one node fetches each — pulls SFTP files or polls the assignment system, and imports. The CLI
(``carerelay staffing pull``) does the same once, for installations that prefer cron.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx2
from anyio import to_thread

from carerelay.core.clock import Clock
from carerelay.core.db import Database
from carerelay.core.errors import Invalid
from carerelay.staffing import feeds, file_import, sftp
from carerelay.staffing.models import FeedKind
from carerelay.staffing.sync import engine

log = logging.getLogger("carerelay.staffing")

POLL_SECONDS = 10.0
HTTP_TIMEOUT = 20.0


@dataclass
class Outcome:
    feed_id: int
    runs: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files already imported


def _config(db: Database, feed_id: int) -> tuple[str, dict[str, object]]:
    with db.unit_of_work() as session:
        feed = feeds.get_feed(session=session, feed_id=feed_id)
        return feed.kind, dict(feed.config)


def import_remote(db: Database, clock: Clock, feed_id: int, files: list[sftp.RemoteFile], trigger: str,
                  outcome: Outcome) -> list[sftp.RemoteFile]:
    """Each new file in its own unit of work; returns the files whose runs were applied (to archive)."""
    applied = []
    for remote in files:
        with db.unit_of_work() as session:
            feed = feeds.get_feed(session=session, feed_id=feed_id)
            if feeds.seen_file(session=session, feed_id=feed_id, name=remote.name,
                               sha256=file_import.sha256(remote.content)):
                outcome.skipped.append(remote.name)
                continue
            report = file_import.import_file(session=session, clock=clock, feed=feed, name=remote.name,
                                             content=remote.content, trigger=trigger)
            outcome.runs.append(report.run.id)
            if report.run.status in ("ok", "partial"):
                applied.append(remote)
    return applied


def _record_failure(db: Database, clock: Clock, feed_id: int, trigger: str, error: str, outcome: Outcome) -> None:
    with db.unit_of_work() as session:
        feed = feeds.get_feed(session=session, feed_id=feed_id)
        run = feeds.start_run(session, clock, feed, trigger)
        feeds.fail_run(session, clock, feed, run, error)
        outcome.runs.append(run.id)


async def pull_sftp(db: Database, clock: Clock, feed_id: int, trigger: str) -> Outcome:
    outcome = Outcome(feed_id)
    _, config = await to_thread.run_sync(_config, db, feed_id)
    try:
        files = await sftp.fetch(config)
    except sftp.SftpError as exc:
        await to_thread.run_sync(_record_failure, db, clock, feed_id, trigger, str(exc), outcome)
        return outcome
    applied = await to_thread.run_sync(import_remote, db, clock, feed_id, files, trigger, outcome)
    try:
        await sftp.archive(config, applied)
    except sftp.SftpError as exc:
        log.warning("could not archive imported files", extra={"feed_id": feed_id, "error": str(exc)})
    return outcome


def poll_rest(db: Database, clock: Clock, feed_id: int, trigger: str, http: httpx2.Client) -> Outcome:
    outcome = Outcome(feed_id)
    with db.unit_of_work() as session:
        feed = feeds.get_feed(session=session, feed_id=feed_id)
        report = engine.poll(session=session, clock=clock, feed=feed, http=http, trigger=trigger)
        outcome.runs.append(report.run.id)
    return outcome


async def run_feed(db: Database, clock: Clock, feed_id: int, trigger: str, http: httpx2.Client) -> Outcome:
    kind, _ = await to_thread.run_sync(_config, db, feed_id)
    if kind == FeedKind.SFTP_CSV:
        return await pull_sftp(db, clock, feed_id, trigger)
    if kind == FeedKind.REST:
        return await to_thread.run_sync(poll_rest, db, clock, feed_id, trigger, http)
    raise Invalid(f"feed {feed_id} is a push feed: it sends to us", field="feed_id")


def _claim_due(db: Database, clock: Clock) -> list[int]:
    with db.unit_of_work() as session:
        due = feeds.due_feeds(session=session, now=clock.now())
    claimed = []
    for feed_id in due:
        with db.unit_of_work() as session:
            if feeds.claim_due(session=session, clock=clock, feed_id=feed_id):
                claimed.append(feed_id)
    return claimed


async def run_due(db: Database, clock: Clock, http: httpx2.Client) -> list[Outcome]:
    outcomes = []
    for feed_id in await to_thread.run_sync(_claim_due, db, clock):
        try:
            outcomes.append(await run_feed(db, clock, feed_id, "interval", http))
        except Exception:  # one broken feed must not stop the others; its next interval retries
            log.exception("staffing feed run failed", extra={"feed_id": feed_id})
    return outcomes


async def run_forever(db: Database, clock: Clock) -> None:
    with httpx2.Client(timeout=HTTP_TIMEOUT) as http:
        while True:
            try:
                await run_due(db, clock, http)
            except Exception:  # a database hiccup: try again next pass
                log.exception("staffing feed pass failed; retrying")
            await asyncio.sleep(POLL_SECONDS)
