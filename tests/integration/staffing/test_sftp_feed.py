"""Assignment files pulled from a real SFTP server (asyncssh, loopback) on the feed's interval."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncssh
import httpx2
import pytest
from sqlalchemy import select

from carerelay.alerts.models import Alert
from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.staffing import feeds, runner
from carerelay.staffing.models import StaffingFeedRun
from tests.integration.staffing.sftp_server import SftpServer, sftp_server
from tests.staffing_support import file_feed, who

GOOD = ("person,unit,room,bed,role,start,end\n"
        "N804,4W,401,A,RN,2026-11-24 07:00,2026-11-24 19:00\n"
        "N804,4W,401,B,RN,2026-11-24 07:00,2026-11-24 19:00\n")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    with sftp_server(tmp_path) as running:
        yield running


def _feed(db: Database, clock: FakeClock, server: SftpServer, **config: Any) -> int:
    with db.unit_of_work() as session:
        return file_feed(session, clock, config={
            "port": server.port, "remote_dir": "/outbox", "pattern": "assign_*.csv", "known_host_key": server.host_key,
            "client_key_file": str(server.client_key_file), **config}).id


def _runs(db: Database, ids: list[int]) -> list[StaffingFeedRun]:
    with db.unit_of_work() as session:
        return [session.get_one(StaffingFeedRun, i) for i in ids]


def test_files_are_pulled_imported_archived_and_not_imported_twice(db: Database, clock: FakeClock,
                                                                    server: SftpServer) -> None:
    feed_id = _feed(db, clock, server, archive_dir="/archive")
    (server.root / "outbox" / "assign_0800.csv").write_text(GOOD)
    (server.root / "outbox" / "readme.txt").write_text("not ours")
    outcome = asyncio.run(runner.pull_sftp(db, clock, feed_id, "test"))
    [run] = _runs(db, outcome.runs)
    assert (run.status, run.applied, run.file_name) == ("ok", 2, "assign_0800.csv"), run.errors
    with db.unit_of_work() as session:
        assert who(session, "location:4W/401/B/nurse", clock.now()) == ["kasante"]
    assert sorted(p.name for p in (server.root / "outbox").iterdir()) == ["readme.txt"]
    assert (server.root / "archive" / "assign_0800.csv").exists()
    # the same file again (someone copied it back) is recognised and skipped
    (server.root / "outbox" / "assign_0800.csv").write_text(GOOD)
    again = asyncio.run(runner.pull_sftp(db, clock, feed_id, "test"))
    assert again.runs == [] and again.skipped == ["assign_0800.csv"]


def test_a_failing_file_applies_nothing_and_tells_the_integration_admins(db: Database, clock: FakeClock,
                                                                        server: SftpServer) -> None:
    feed_id = _feed(db, clock, server, archive_dir="/archive")
    (server.root / "outbox" / "assign_0830.csv").write_text(GOOD + "N999,4W,401,A,RN,,\nN806,4W,402,A,RN,"
                                                             "2026-11-24 19:00,2026-11-24 07:00\n")
    [run] = _runs(db, asyncio.run(runner.pull_sftp(db, clock, feed_id, "test")).runs)
    assert run.status == "rejected" and run.applied == 0
    assert [(e["row"], e["field"]) for e in run.errors] == [(4, "person"), (5, "end")]
    assert "no person with unique_id 'N999'" in run.errors[0]["message"]
    assert (server.root / "outbox" / "assign_0830.csv").exists()  # left for a person to look at
    with db.unit_of_work() as session:
        assert who(session, "location:4W/401/B/nurse", clock.now()) == ["dwhitaker"]  # nothing applied
        alert = session.execute(select(Alert).where(Alert.kind == "staffing_feed_failed")
                                .order_by(Alert.id.desc())).scalars().first()
        assert alert is not None and alert.address == "group:INTEGRATION-ADMINS" and "row 4" in alert.body
        feeds.get_feed(session=session, feed_id=feed_id).apply_valid_rows = True
    (server.root / "outbox" / "assign_0831.csv").write_text(GOOD + "N999,4W,401,A,RN,,\n")
    [partial] = _runs(db, asyncio.run(runner.pull_sftp(db, clock, feed_id, "test")).runs[-1:])
    assert partial.status == "partial" and partial.applied == 2 and len(partial.errors) == 1


def test_an_unknown_host_key_is_refused(db: Database, clock: FakeClock, server: SftpServer) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    feed_id = _feed(db, clock, server, known_host_key=other)
    (server.root / "outbox" / "assign_0900.csv").write_text(GOOD)
    [run] = _runs(db, asyncio.run(runner.pull_sftp(db, clock, feed_id, "test")).runs)
    assert run.status == "failed" and "Host key" in (run.error or ""), run.error
    assert (server.root / "outbox" / "assign_0900.csv").exists()


def test_the_runner_pulls_each_feed_once_per_interval(db: Database, clock: FakeClock, server: SftpServer) -> None:
    feed_id = _feed(db, clock, server)
    (server.root / "outbox" / "assign_1000.csv").write_text(GOOD)

    async def one_pass() -> list[int]:
        with httpx2.Client() as http:
            return [o.feed_id for o in await runner.run_due(db, clock, http)]

    assert feed_id in asyncio.run(one_pass())
    assert feed_id not in asyncio.run(one_pass())  # claimed: not due again for 30 minutes
    clock.advance(timedelta(minutes=30))
    assert feed_id in asyncio.run(one_pass())
    assert len(server.connections) == 2
