"""Two nodes that start together both find a feed they have never heard from, and both record it:
one wins, the other carries on (it used to fail on the feed state's primary key and retry 30 s later)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.models import Hl7FeedState, Hl7Message
from carerelay.integrations.hl7.store import Inbound, check_feeds, receive_messages
from tests.conftest import Backend
from tests.hl7support import uniq


def _waiting_on(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                                 {"pid": pid}).scalar_one())


@pytest.mark.parametrize("first_step", ["check", "touch"])
def test_two_nodes_recording_a_new_feed_at_once_both_succeed(backend: Backend, engine: Engine, clock: FakeClock,
                                                               first_step: str) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the two cannot overlap")
    # refusing ORU, so its messages are stored refused and no later test's processing run takes them
    feed = Feed(name=uniq("feed"), port=0, silence_minutes=5, message_types=("ADT^A01",))
    db = Database(engine)
    errors: list[BaseException] = []

    def record(session: Session, clock: FakeClock) -> None:
        if first_step == "check":  # the feed monitor's first look
            check_feeds(session=session, clock=clock, feeds=[feed])
        else:  # the feed's first message
            frame = (f"MSH|^~\\&|LAB|MAINHOSP|CARERELAY|MAINHOSP|20261124093000||ORU^R01|{uniq('C')}|P|2.5.1\r"
                     f"PID|1||{uniq('M')}^^^MAINHOSP^MR||DOE^JANE").encode()
            receive_messages(session=session, clock=clock, items=[Inbound(feed, frame, "10.0.0.1:1")])

    def second_node() -> None:
        try:
            later = FakeClock(clock.now() + timedelta(seconds=10))  # past this process's "touched lately" memory
            with db.unit_of_work() as session:
                record(session, later)
        except BaseException as exc:  # the assertion below names it
            errors.append(exc)

    with db.unit_of_work() as first:
        pid = first.execute(text("SELECT pg_backend_pid()")).scalar_one()
        record(first, clock)
        other = threading.Thread(target=second_node)
        other.start()
        deadline = time.monotonic() + 30
        while not _waiting_on(engine, pid):  # the second node's insert waits on the first's row
            assert time.monotonic() < deadline, "the second node never reached the feed state row"
            time.sleep(0.02)
    other.join(30)
    assert errors == []
    with db.read_only() as session:
        assert session.execute(select(func.count()).select_from(Hl7Message).where(
            Hl7Message.feed == feed.name, Hl7Message.status == "received")).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(Hl7FeedState)
                               .where(Hl7FeedState.feed == feed.name)).scalar_one() == 1
