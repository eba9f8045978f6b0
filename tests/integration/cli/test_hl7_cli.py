"""`carerelay hl7 reprocess` and `carerelay hl7 purge` as an interface analyst runs them (both databases)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from carerelay.audit.models import AuditEntry
from carerelay.cli import app
from carerelay.core.clock import FakeClock, SystemClock
from carerelay.core.db import Database
from carerelay.integrations.hl7.feeds import Feed
from carerelay.integrations.hl7.models import Hl7Message
from carerelay.integrations.hl7.store import Inbound, process_pending, receive_messages
from carerelay.patients.models import Patient
from carerelay.patients.service import ResultPolicy
from tests.hl7support import personalise, sample, uniq

runner = CliRunner()
FEED = Feed(name="default", port=0)


def _hl7(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["hl7", *args])
    return result.exit_code, result.output


def _ingest(db: Database, clock: FakeClock, message: bytes) -> int:
    with db.unit_of_work() as session:
        [receipt] = receive_messages(session=session, clock=clock, items=[Inbound(FEED, message, "10.0.0.9:4000")])
    with db.unit_of_work() as session:
        process_pending(session=session, clock=clock, feeds={"default": FEED}, policy=ResultPolicy(),
                        stat_priorities=("S",), limit=100)
    assert receipt.message_id is not None
    return receipt.message_id


def _status(db: Database, message_id: int) -> str | None:
    with db.unit_of_work() as session:
        row = session.get(Hl7Message, message_id)
        return row.status if row is not None else None


def test_reprocess_by_status_by_filter_and_by_id(cli_db: Database) -> None:
    clock = FakeClock(SystemClock().now())
    mrn = uniq("MRN")
    admit = _ingest(cli_db, clock, personalise(sample("adt_a01_admit.hl7"), mrn=mrn, control=uniq("A")))
    result = _ingest(cli_db, clock, personalise(sample("oru_r01_critical_potassium.hl7"), mrn=mrn,
                                                control=uniq("R")))
    with cli_db.unit_of_work() as session:  # as the processor leaves a message it could not apply
        for message_id in (admit, result):
            row = session.get_one(Hl7Message, message_id)
            row.status, row.error = "error", "unit 4W was not set up yet"
    code, output = _hl7("reprocess", "--status", "error", "--type", "ADT")
    assert code == 0, output
    assert "queued 1 message(s); processed: 1 processed" in output
    assert (_status(cli_db, admit), _status(cli_db, result)) == ("processed", "error")
    code, output = _hl7("reprocess")  # no ids and no filter: everything in error
    assert code == 0 and "queued 1 message(s); processed: 1 processed" in output
    assert _status(cli_db, result) == "processed"
    code, output = _hl7("reprocess", str(admit), str(result))  # by id, whatever their status
    assert code == 0 and "queued 2 message(s); processed: 2 processed" in output
    with cli_db.unit_of_work() as session:
        patient = session.execute(select(Patient).where(Patient.mrn == mrn)).scalar_one()
        assert patient.family_name == "DOE"
        actions = list(session.execute(select(AuditEntry.action).where(AuditEntry.action == "hl7.message.reprocess"))
                       .scalars())
    assert len(actions) == 3
    code, output = _hl7("reprocess", "999999999")
    assert code == 1 and "no HL7 message 999999999" in output


def test_purge_by_age_keeps_recent_and_waiting_messages(cli_db: Database) -> None:
    now = SystemClock().now()
    old_clock = FakeClock(now - timedelta(days=100))
    old = _ingest(cli_db, old_clock, personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"), control=uniq("O")))
    recent = _ingest(cli_db, FakeClock(now - timedelta(days=2)),
                     personalise(sample("adt_a01_admit.hl7"), mrn=uniq("MRN"), control=uniq("N")))
    with cli_db.unit_of_work() as session:  # stored long ago, still waiting to be processed
        [waiting] = receive_messages(session=session, clock=old_clock, items=[Inbound(
            FEED, personalise(sample("adt_a03_discharge.hl7"), mrn=uniq("MRN"), control=uniq("W")), None)])
    code, output = _hl7("purge", "--older-than-days", "90")
    assert code == 0 and "deleted 1 message(s) received more than 90 days ago" in output, output
    assert _status(cli_db, old) is None
    assert waiting.message_id is not None and _status(cli_db, waiting.message_id) == "received"  # not yet processed
    assert _status(cli_db, recent) == "processed"
    with cli_db.unit_of_work() as session:
        [entry] = session.execute(select(AuditEntry).where(AuditEntry.action == "hl7.message.purge")).scalars()
        assert entry.actor_name == "hl7-purge" and entry.detail["deleted"] == 1
    code, output = _hl7("purge", "--older-than-days", "0")
    assert code == 1 and "older_than_days must be at least 1" in output
    assert _status(cli_db, recent) == "processed"
