"""Polling an assignment system and taking what one pushes: both become runs of ``feeds.apply_items``.

A poll asks each of the feed's units for the next ``window_hours`` (default 24) and is a snapshot of
them: this feed's assignments there that the system no longer lists end. A push carries changes
(``upsert`` or ``end`` by the vendor's assignment id) and ends nothing it does not name. A vendor
failure fails the run and changes nothing.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import httpx2
from sqlalchemy.orm import Session

from carerelay.core.clock import Clock
from carerelay.core.errors import Invalid
from carerelay.staffing import feeds
from carerelay.staffing.feeds import FeedItem, RunReport
from carerelay.staffing.models import FeedKind, StaffingFeed
from carerelay.staffing.sync.base import Adapter, VendorError, read_item
from carerelay.staffing.sync.rauland import ROLE_CODES, RaulandSyncAdapter

ADAPTERS: dict[str, Adapter] = {"rauland_sync": RaulandSyncAdapter()}
MAX_PUSH_ITEMS = 5000


def _describe(feed: StaffingFeed) -> Any:
    return lambda item: f"from {feed.name} ({item.where})"


def poll(*, session: Session, clock: Clock, feed: StaffingFeed, http: httpx2.Client, trigger: str) -> RunReport:
    if feed.kind != FeedKind.REST or feed.adapter not in ADAPTERS:
        raise Invalid(f"feed {feed.name} is not a REST assignment-system feed", field="feed_id")
    run = feeds.start_run(session, clock, feed, trigger)
    now = clock.now()
    until = now + timedelta(hours=float(feed.config.get("window_hours", 24)))
    secret = os.environ.get(feed.config["secret_env"]) if feed.config.get("secret_env") else None
    units = list(feed.config.get("units", []))
    try:
        items: list[FeedItem] = []
        for unit in units:
            items.extend(ADAPTERS[feed.adapter].fetch(http=http, feed=feed, secret=secret, unit=unit, start=now,
                                                      end=until))
    except (VendorError, httpx2.HTTPError) as exc:
        feeds.fail_run(session, clock, feed, run, f"{type(exc).__name__}: {exc}")
        return RunReport(run)
    snapshot = feed.config.get("mode", "snapshot") == "snapshot"
    return feeds.apply_items(session=session, clock=clock, feed=feed, run=run, items=items,
                             source=feeds.feed_source(feed), describe=_describe(feed),
                             snapshot_units=units if snapshot else (), snapshot_until=until)


def push(*, session: Session, clock: Clock, feed: StaffingFeed, payload: list[Any]) -> RunReport:
    """What an assignment system sends us: the same assignment objects a poll returns, each with an
    ``action`` (upsert, the default, or end)."""
    if len(payload) > MAX_PUSH_ITEMS:
        raise Invalid(f"at most {MAX_PUSH_ITEMS} changes per push", field="changes")
    run = feeds.start_run(session, clock, feed, "push")
    items = []
    for n, obj in enumerate(payload):
        item = read_item(obj, f"changes[{n}]")
        mapped = None if item.role.lower() in feed.role_map else ROLE_CODES.get(item.role.upper())
        items.append(FeedItem(**{**item.__dict__, "role": mapped}) if mapped else item)
    return feeds.apply_items(session=session, clock=clock, feed=feed, run=run, items=items,
                             source=feeds.feed_source(feed), describe=_describe(feed))
