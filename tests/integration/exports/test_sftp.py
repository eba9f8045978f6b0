"""SFTP against a real OpenSSH sshd; a failed transfer e-mails the administrators; the next run catches up."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from carerelay.core.clock import FakeClock
from carerelay.core.db import Database
from carerelay.integrations.exports import runner
from carerelay.jobs import service as jobs
from carerelay.notifications.channels.email import SmtpChannel
from carerelay.notifications.service import deliver_due
from carerelay.scheduling import service as scheduling
from tests.exports_helpers import ADMIN, CARD, get_run, make_connector, map_codes, run_now
from tests.exports_peers import Mailbox, Sshd, running_sshd, smtp_server
from tests.scheduling_factories import person
from tests.servers import free_port

ONCALL = {code: {"team_id": "CARD-ONCALL"} for code in CARD}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with running_sshd(tmp_path_factory.mktemp("sftp")) as server:
        yield server


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as box:
        yield box


def _mail(db: Database, clock: FakeClock, port: int) -> None:
    deliver_due(db=db, clock=clock, channels={"email": SmtpChannel("127.0.0.1", port, "carerelay@demo.test")})


def test_a_file_lands_on_the_sftp_server_whole(db: Database, clock: FakeClock, sshd: Sshd) -> None:
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="epic_on_call_finder", departments=["CARD"],
                                   transport=sshd.transport("epic"), file_name="oncall_{run}.csv",
                                   options={"past_days": 0, "future_days": 1})
        map_codes(session, clock, connector, ONCALL)
        cid = connector.id
    run = run_now(db, clock, cid)
    assert run.status == "succeeded", run.error
    landed = sshd.root / "epic" / f"oncall_{run.id}.csv"
    assert landed.read_bytes() == run.payload
    assert run.destination == f"sftp://{sshd.username}@127.0.0.1:{sshd.port}/{landed.as_posix().lstrip('/')}"
    assert not list((sshd.root / "epic").glob("*.part"))


def test_a_broken_target_retries_fails_emails_the_admins_and_the_next_run_catches_up(
    db: Database, clock: FakeClock, sshd: Sshd, mailbox: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, smtp_port = mailbox
    dead_port = free_port()
    broken = {**sshd.transport("kronos"), "port": dead_port}
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="kronos_wfd", departments=["CARD"], transport=broken,
                                   trigger={"kind": "pay_period", "anchor": "2026-11-23", "length_days": 4},
                                   options={"include": {"exempt": ["call"], "non_exempt": ["call"]}},
                                   notify=["interfaces@demo-health.example"], max_attempts=2,
                                   file_name="wfd_{run}.csv")
        map_codes(session, clock, connector, {c: {"segment_type": "Required", "comment": "call"} for c in CARD})
        cid = connector.id

    run = run_now(db, clock, cid)
    assert run.status == "retrying" and f"connection refused by 127.0.0.1:{dead_port}" in (run.error or "")
    _mail(db, clock, smtp_port)
    assert len(box.messages) == 1
    first = box.texts()[0]
    assert "To: interfaces@demo-health.example" in first and "transfer failing" in first
    assert f"connection refused by 127.0.0.1:{dead_port}" in first and "will try again" in first

    clock.advance(run.next_attempt_at - clock.now())  # type: ignore[operator]
    jobs.fire_due(db=db, clock=clock)  # the durable retry timer puts the run back in the queue
    runner.send_due(db=db, clock=clock)
    run = get_run(db, run.id)
    assert run.status == "failed" and run.attempts == 2
    _mail(db, clock, smtp_port)
    assert len(box.messages) == 2 and "run failed" in box.texts()[1] and "gave up" in box.texts()[1]

    # A swap happens while the target is down.
    with db.unit_of_work() as session:
        schedule = scheduling.find_schedule(session=session, department_id=connector.department_ids[0],  # type: ignore[index]
                                            on_date=date(2026, 11, 24))
        assert schedule is not None
        night = next(s for s in scheduling.list_slots(session=session, schedule_id=schedule.id,
                                                      on_date=date(2026, 11, 24))
                     if s.assignment.code == "CARD-CALL1-NIGHT")
        lindqvist = person(session, "tlindqvist")
        scheduling.update_slot(session=session, clock=clock, actor=ADMIN, slot_id=night.id,
                               fields=scheduling.SlotFields(person_id=lindqvist.id))
        # The administrator fixes the port.
        from carerelay.integrations.exports import service
        service.update_connector(session=session, clock=clock, actor=ADMIN, connector_id=cid,
                                 changes={"transport": sshd.transport("kronos")})
    clock.advance(timedelta(minutes=5))
    caught_up = run_now(db, clock, cid)
    assert caught_up.status == "succeeded", caught_up.error
    rows = list(csv.DictReader(io.StringIO((sshd.root / "kronos" / caught_up.file_name).read_text())))  # type: ignore[operator]
    assert caught_up.content == "full" and len(rows) == 16  # nothing was delivered before: everything goes
    assert lindqvist.kronos_id in {r["Employee ID"] for r in rows}
    _mail(db, clock, smtp_port)
    assert "working again" in box.texts()[2]

    after = run_now(db, clock, cid)
    assert after.content == "delta" and after.row_count == 0


def test_an_unknown_host_key_is_refused_and_not_retried(db: Database, clock: FakeClock, sshd: Sshd,
                                                       tmp_path: Path) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    with db.unit_of_work() as session:
        connector = make_connector(session, clock, target="schedule_backup",
                                   transport={**sshd.transport("backup"), "known_hosts": str(other)})
        cid = connector.id
    run = run_now(db, clock, cid)
    assert run.status == "failed" and run.attempts == 1 and "host key" in (run.error or "")
